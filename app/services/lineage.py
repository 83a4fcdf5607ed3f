"""How a run shows its family: `ForkOf` (where a fork came from) and `ForkRef` (one of a run's forks).

What this is: the two answer shapes RunPublic.fork and RunPublic.forks carry (RunSummary.parent
names the parent alone). They live apart from schemas.py so that both it and the fork request
(app.services.forks) can use them without importing each other.
What this is not: the forking (app.services.manager.RunManager.fork) or its checks (forks.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ForkOf(BaseModel):
    """The run is a fork: it went on from `parent`'s stored state at `step`, with `changes` applied."""

    parent: str = Field(description="the parent run's id (it may have been deleted since)")
    step: int = Field(description="the parent's step the fork started from")
    changes: dict[str, Any] = Field(description="the changes applied there (as an intervention's; {}: none)")


class ForkRef(BaseModel):
    """One fork of a run: its id and the step of the parent it started from."""

    id: str
    step: int

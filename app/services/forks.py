"""Forking a run: the request (ForkCreate), its checks against the parent, and the fork's config.

What this is: `ForkCreate` (POST /api/runs/{id}/fork: a stored step and the changes, in
InterventionCreate's shape but possibly none), `fork_config(parent, interventions, step, changes,
name)` (the parent's RunCreate with the knobs as they were at that step, then the changes, checked
by interventions.check_changes: the fork's config reads what it trains with) and `no_snapshot`
(the 422 sentence for a step with no stored state, naming the nearest ones).

A fork starts from the parent's snapshot at that step (taken with the step's probe, before any
intervention applied after that step): the parent's interventions before the step are in its
knobs, those after it are not.

What this is not: the scheduling (RunManager.fork) or the storing (Storage.create_fork).
"""

from __future__ import annotations

import bisect
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.services.interventions import Intervention, InterventionCreate, Refused, check_changes, configured
from app.services.records import utcnow
from app.services.schemas import LIMITS, RunCreate, RunName


class ForkChanges(InterventionCreate):
    """An intervention's changes, or none: a fork with no changes goes on as its parent did."""

    @model_validator(mode="after")
    def _has_a_change(self) -> ForkChanges:
        for name in set(type(self).model_fields) - {"tbptt"}:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep it")
        return self


class ForkCreate(BaseModel):
    """POST /api/runs/{id}/fork: go on from the run's stored state at `step`, with `changes`."""

    model_config = ConfigDict(extra="forbid")
    step: int = Field(ge=0, description="a step with stored state (GET /api/runs/{id}/snapshots)")
    changes: ForkChanges = Field(default_factory=ForkChanges, description="as an intervention's; {}: none")
    name: RunName = None  # else "<parent's name or id> · fork @<step>"


def fork_config(
    parent: RunCreate,
    label: str,
    interventions: list[Intervention],
    step: int,
    changes: dict[str, Any],
    name: str | None = None,
) -> RunCreate:
    """The fork's config: the parent's, with its interventions before `step`, then `changes`
    (Refused if the run cannot take them). Named `name`, else "<label> · fork @<step>" (cut to
    fit a run's name)."""
    before = configured(parent, [item for item in interventions if item.step < step])
    check_changes(before, changes)
    fork = Intervention(id="fork", step=step, changes=changes, applied_at=utcnow())
    suffix = f" · fork @{step}"
    default = label[: LIMITS.name_chars - len(suffix)] + suffix
    return configured(before, [fork]).model_copy(update={"name": name if name is not None else default})


def no_snapshot(run_id: str, step: int, steps: list[int]) -> Refused:
    """The 422 for a step with no stored state: the nearest stored steps, or that there are none."""
    if not steps:
        return Refused(f"run {run_id} has no stored state yet: a fork starts from a probe step")
    i = bisect.bisect_left(steps, step)
    nearest = sorted({s for s in steps[max(0, i - 1) : i + 1]})
    listed = " and ".join(str(s) for s in nearest)
    return Refused(
        f"run {run_id} has no stored state at step {step}: the nearest stored steps are {listed}"
        if len(nearest) > 1
        else f"run {run_id} has no stored state at step {step}: the nearest stored step is {listed}"
    )

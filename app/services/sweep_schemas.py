"""The public shapes of a sweep: what POST /api/sweeps takes (SweepCreate) and GET answers.

What this is: pydantic models with the bounds the API enforces (a grid of at most MAX_GRID_PATHS
paths, each with 1 to MAX_SWEEP_RUNS values; the product's size is checked by
app.services.sweeps.expand), and SweepPreset, a ready-made sweep the catalog serves.
What this is not: the grid's expansion, the figures (app.services.sweeps) or storage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.services.schemas import RunCreate, RunName, RunStatus

MAX_SWEEP_RUNS = 1000
MAX_GRID_PATHS = 8
GridValue = str | int | float | bool | None | dict[str, Any]
Grid = dict[
    Annotated[str, Field(min_length=1, max_length=100)],
    Annotated[list[GridValue], Field(min_length=1, max_length=MAX_SWEEP_RUNS)],
]


class SweepCreate(BaseModel):
    """POST /api/sweeps: a base run and the grid of values to run it over."""

    model_config = ConfigDict(extra="forbid")
    name: RunName = None  # default: 'sweep of cell × init.gain × ...'
    base: RunCreate
    grid: Annotated[Grid, Field(min_length=1, max_length=MAX_GRID_PATHS)]


class SweepRun(BaseModel):
    """One run of a sweep as GET /api/sweeps/{id} shows it (its figures: app.services.sweeps)."""

    id: str
    position: int  # its place in the grid's product
    name: str | None
    params: dict[str, Any]  # path -> value of its grid point
    status: RunStatus
    step: int
    steps: int
    error: str | None
    loss: float | None
    baseline: float
    relative: float | None
    ratio: float | None


class SweepBrief(BaseModel):
    """A sweep in GET /api/sweeps: what it is and how far it got, without its runs."""

    id: str
    name: str
    created_at: datetime
    grid: dict[str, list[Any]]
    total: int  # its runs (a run deleted on its own leaves the sweep)
    done: int  # of them ended (FINISHED)
    counts: dict[str, int]  # status -> runs


class SweepPublic(SweepBrief):
    base: RunCreate
    runs: list[SweepRun]


class SweepPreset(BaseModel):
    """A ready-made sweep (lessons.SWEEPS): `sweep` is what one click starts (POST /api/sweeps with
    it as the body), `full` the larger grid one more click away, `cost` what each took here."""

    name: str
    title: str
    look_for: str  # one sentence: what the phase diagram shows
    sweep: SweepCreate
    full: SweepCreate | None = None
    cost: str  # measured: runs and minutes on this 2-core machine

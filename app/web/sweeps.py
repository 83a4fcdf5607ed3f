"""/api/sweeps: a base run over a grid of values, as one group of queued runs (app.services.sweeps).

What this is: thin routes. POST /api/sweeps makes the grid's runs, checks each against the
server's cost limits and queues them all or none (422 naming the grid path and value, 429 when
the queue cannot take them, 507 below the free-space floor, 503 when storage fails); GET lists
the sweeps (?run= the one holding a run), GET /api/sweeps/{id} has every run's status and
figures; POST .../stop stops its queued and running runs; DELETE deletes its runs and it. The
run rate limit (security.RATE_LIMITED) counts a POST once, however many runs it holds.

What this is not: the grid, the figures or SQL (app.services.sweeps, sweep_store), or the page
(app/web/pages.py, static/js/sweep.js).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from app.services.sweep_schemas import SweepBrief, SweepCreate, SweepPublic
from app.services.sweep_store import SweepStore
from app.services.sweeps import BadSweep, Sweeps
from app.web.deps import DISK_FULL, ManagerDep, SettingsDep, StorageDep, require_token

router = APIRouter(prefix="/api", tags=["sweeps"], dependencies=[Depends(require_token)])

SweepId = Annotated[str, Path(min_length=1, max_length=64, description="the sweep's id")]
NO_SWEEP: dict[int | str, dict[str, Any]] = {404: {"description": "no sweep with this id"}}


def get_sweeps(storage: StorageDep, manager: ManagerDep) -> Sweeps:
    return Sweeps(SweepStore(storage), manager)


SweepsDep = Annotated[Sweeps, Depends(get_sweeps)]


def _missing(sweep_id: str) -> HTTPException:
    return HTTPException(404, f"there is no sweep with id {sweep_id!r}")


@router.post(
    "/sweeps",
    status_code=201,
    responses={
        422: {"description": "a grid path or value makes no valid run, or a run is beyond the cost limits"},
        429: {"description": "too many new runs, or the queue cannot take them all: none was started"},
        503: {"description": "storage failed: none was started"},
        **DISK_FULL,
    },
)
def create_sweep(body: SweepCreate, sweeps: SweepsDep, settings: SettingsDep) -> SweepPublic:
    """Queue every run of the grid (the product of its values, the last path fastest), all or none."""
    try:
        return sweeps.create(body, settings)
    except BadSweep as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/sweeps")
def list_sweeps(
    sweeps: SweepsDep, run: Annotated[str | None, Query(max_length=64, description="a run's id")] = None
) -> list[SweepBrief]:
    """Every sweep, newest first, with its progress; with ?run=, the sweep that holds that run (or none)."""
    return sweeps.list(run)


@router.get("/sweeps/{sweep_id}", responses=NO_SWEEP)
def get_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> SweepPublic:
    """The sweep with every run's status, step and figures (final loss, baseline, gradient ratio)."""
    sweep = sweeps.get(sweep_id)
    if sweep is None:
        raise _missing(sweep_id)
    return sweep


@router.post("/sweeps/{sweep_id}/stop", responses=NO_SWEEP)
def stop_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> SweepPublic:
    """Stop its queued runs at once and its running ones within a second; ended runs stay as they are."""
    sweep = sweeps.stop(sweep_id)
    if sweep is None:
        raise _missing(sweep_id)
    return sweep


@router.delete("/sweeps/{sweep_id}", status_code=204, responses=NO_SWEEP)
def delete_sweep(sweep_id: SweepId, sweeps: SweepsDep, storage: StorageDep) -> Response:
    """Delete every run of the sweep (stopping those that have not ended), then the sweep."""
    if not sweeps.delete(sweep_id):
        raise _missing(sweep_id)
    storage.reclaim()
    return Response(status_code=204)

"""The fork routes under /api: fork a built-in run from a stored step, and list those steps.

What this is: POST /api/runs/{id}/fork (ForkCreate: a step with stored state and the changes,
InterventionCreate's shape, maybe none) answers 201 with the fork's RunPublic (queued or running,
a new id; it links to its parent in `fork`, and the parent lists it in `forks`). GET
/api/runs/{id}/snapshots lists the steps a fork can start from (every probe step the run stored).
Every error answers {"detail": "a sentence"}: 404 unknown run, 409 attached run, 422 a step with
no stored state (naming the nearest ones) or a change out of range (naming the field and bound),
429 a full queue; nothing is created when it refuses. A fork is not re-estimated against the
cost limits: it trains the parent's net on its task for at most the parent's remaining steps.

What this is not: the forking (RunManager.fork, app.services.forks) or the run's other routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from app.services.forks import ForkCreate
from app.services.interventions import Refused
from app.services.schemas import RunPublic
from app.web.deps import DISK_FULL, NOT_FOUND, ManagerDep, RunDep, StorageDep, require_token

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])


class Snapshots(BaseModel):
    """GET /api/runs/{id}/snapshots: the steps with stored training state, in order."""

    steps: list[int]


@router.post(
    "/runs/{run_id}/fork",
    status_code=201,
    responses={
        **NOT_FOUND,
        409: {"description": "an attached run: its training state is not on this server"},
        422: {"description": "a step with no stored state, or a change out of range (named)"},
        429: {"description": "the queue is full"},
        **DISK_FULL,
    },
)
def fork_run(run: RunDep, body: ForkCreate, manager: ManagerDep) -> RunPublic:
    """Start a new run from this run's weights, optimizer state and data-stream position at a
    stored step, with the changes applied (none: it goes on as the parent did, bit for bit on CPU)."""
    try:
        record = manager.fork(run.id, body.step, body.changes.changes(), body.name)
    except Refused as exc:
        raise HTTPException(422, str(exc)) from exc
    return manager.public(record)


@router.get("/runs/{run_id}/snapshots", responses=NOT_FOUND)
def list_snapshots(run: RunDep, storage: StorageDep) -> Snapshots:
    """The steps a fork of this run can start from (none for an attached run)."""
    return Snapshots(steps=storage.snapshot_steps(run.id))

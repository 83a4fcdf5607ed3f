"""The lab bench's routes under /api: pausing, resuming and changing a built-in run.

What this is: thin typed routes over RunManager.pause / resume. A run pauses between two steps:
the answer is the run as it is now ('running' until its worker has paused; GET it to see), then
'paused'; a paused run resumes the same way. Every error answers {"detail": "a sentence"}
(errors.py): 404 for an unknown run, 409 for one that does not run (queued, finished, attached).

An intervention (POST .../interventions, InterventionCreate) is answered 202 with its id; the
worker applies it between two steps and it is then listed (GET .../interventions) with that step.
GET .../knobs answers the knob values the run trains with now (its config with every applied
intervention: interventions.current_knobs), for any built-in run, finished or not.

What this is not: the pausing itself (app.services.manager and worker) or the run's other routes (runs.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from app.services.interventions import (
    Intervention,
    InterventionCreate,
    Knobs,
    Refused,
    check_changes,
    configured,
    current_knobs,
)
from app.services.schemas import RunPublic
from app.web.deps import NOT_FOUND, BuiltInRunDep, ManagerDep, RunDep, StorageDep, require_token

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])
NOT_RUNNING: dict[int | str, dict[str, Any]] = {
    409: {"description": "the run is not running or paused (queued, finished or attached)"}
}


@router.post("/runs/{run_id}/pause", responses={**NOT_FOUND, **NOT_RUNNING})
def pause_run(run: BuiltInRunDep, manager: ManagerDep) -> RunPublic:
    """Pause a running run after the step in progress: its worker keeps its state and waits."""
    return manager.public(manager.pause(run.id))


@router.post("/runs/{run_id}/resume", responses={**NOT_FOUND, **NOT_RUNNING})
def resume_run(run: BuiltInRunDep, manager: ManagerDep) -> RunPublic:
    """Resume a paused run where it stopped."""
    return manager.public(manager.resume(run.id))


class InterventionQueued(BaseModel):
    """The answer to POST .../interventions: its id; it is listed, with its step, once applied."""

    id: str


@router.post(
    "/runs/{run_id}/interventions",
    status_code=202,
    responses={**NOT_FOUND, **NOT_RUNNING, 422: {"description": "a value out of range (named)"}},
)
def intervene(
    run: BuiltInRunDep, body: InterventionCreate, manager: ManagerDep, storage: StorageDep
) -> InterventionQueued:
    """Change a running or paused run between two steps, whole or not at all: lr, clip, tbptt, the
    optimizer; W_hh of a layer rescaled to a spectral radius; a layer re-initialised; the LSTM
    forget-gate bias. What the bounds cannot know is checked against the knobs the run trains
    with now (a layer past the net, forget_bias on another cell, an optimizer switch that keeps
    state): 422, so the worker never refuses one unseen."""
    try:
        check_changes(configured(run.config, storage.interventions(run.id)), body.changes())
    except Refused as exc:
        raise HTTPException(422, str(exc)) from exc
    return InterventionQueued(id=manager.intervene(run.id, body.changes()))


@router.get("/runs/{run_id}/interventions", responses=NOT_FOUND)
def list_interventions(run: RunDep, storage: StorageDep) -> list[Intervention]:
    """The run's applied interventions, each with the step after which it was applied."""
    return storage.interventions(run.id)


@router.get("/runs/{run_id}/knobs", responses={**NOT_FOUND, 409: {"description": "an attached run"}})
def knobs(run: BuiltInRunDep, storage: StorageDep) -> Knobs:
    """The knobs the run trains with now: its config with every applied intervention (lr, optimizer,
    clip, tbptt, forget_bias), each with the step of the intervention that last set it."""
    return current_knobs(run.config, storage.interventions(run.id))

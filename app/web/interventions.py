"""The lab bench's routes under /api: pausing and resuming a built-in run.

What this is: thin typed routes over RunManager.pause / resume. A run pauses between two steps:
the answer is the run as it is now ('running' until its worker has paused; GET it to see), then
'paused'; a paused run resumes the same way. Every error answers {"detail": "a sentence"}
(errors.py): 404 for an unknown run, 409 for one that does not run (queued, finished, attached).

What this is not: the pausing itself (app.services.manager and worker) or the run's other routes (runs.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from app.services.schemas import RunPublic
from app.web.deps import NOT_FOUND, BuiltInRunDep, ManagerDep, require_token

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

"""The runs resource under /api: creating, comparing, listing, reading, stopping and deleting runs.

What this is: thin typed routes over RunManager (built-in runs) and AttachedRuns (attached ones),
with storage reads for the list. The calls block, so the routes are plain `def` (FastAPI runs
them in its thread pool). Every error answers {"detail": "a sentence"} (errors.py).

What this is not: what a run recorded or its weights (api.py), the ingest endpoints (ingest.py),
or logic of its own: validation is in the pydantic models, work in app/services.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.services.manager import QueueFull
from app.services.records import RunRecord
from app.services.schemas import (
    CompareCreate,
    CompareGroup,
    RunCreate,
    RunPublic,
    RunsPublic,
    RunStatus,
)
from app.web.deps import (
    NOT_FOUND,
    AttachedDep,
    ManagerDep,
    RunDep,
    RunId,
    StorageDep,
    require_token,
)

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])


@router.post(
    "/runs",
    status_code=201,
    tags=["runs"],
    responses={429: {"description": "the queue is full"}},
)
def create_run(body: RunCreate, manager: ManagerDep) -> RunPublic:
    """Queue a training run; it starts as soon as fewer than GATESCOPE_MAX_RUNS runs are training."""
    return manager.submit(body).to_public()


@router.post(
    "/compare",
    status_code=201,
    tags=["runs"],
    responses={429: {"description": "the queue is full"}},
)
def compare(body: CompareCreate, manager: ManagerDep) -> CompareGroup:
    """Queue one run per cell, identical but for the cell (same seed: same data and probe input).

    init.forget_bias is dropped for the cells that are not LSTMs. Either all the runs are queued
    or none (429 when the queue cannot take them all)."""
    group = uuid.uuid4().hex[:12]
    records: list[RunRecord] = []
    try:
        for cell in dict.fromkeys(body.cells):  # each cell once, in the order given
            data = body.config.model_dump(mode="json")
            data["cell"] = cell
            if cell != "lstm":
                data["init"]["forget_bias"] = None
            try:
                config = RunCreate.model_validate(data)
            except ValidationError as exc:
                raise RequestValidationError(exc.errors(include_url=False)) from exc
            records.append(manager.submit(config, group=group))
    except (QueueFull, RequestValidationError):
        for record in records:
            manager.delete(record.id)
        raise
    return CompareGroup(group=group, runs=[r.to_public() for r in records])


@router.get("/runs", tags=["runs"])
def list_runs(
    storage: StorageDep,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> RunsPublic:
    """Runs, newest first, optionally only those with one status."""
    records, total = storage.list_runs(status=status, limit=limit, offset=offset)
    return RunsPublic(items=[r.to_public() for r in records], total=total)


@router.get("/runs/{run_id}", tags=["runs"], responses=NOT_FOUND)
def get_run(run: RunDep) -> RunPublic:
    return run.to_public()


@router.post(
    "/runs/{run_id}/stop",
    tags=["runs"],
    responses={**NOT_FOUND, 409: {"description": "the run has already finished"}},
)
def stop_run(run: RunDep, manager: ManagerDep, attached: AttachedDep) -> RunPublic:
    """Stop a queued or running run (a running one stops within a second; GET it to see). An
    attached run is asked to stop: its script sees `watch.should_stop` and ends the run itself."""
    if run.kind == "attached":
        return attached.stop(run.id).to_public()
    return manager.stop(run.id).to_public()


@router.delete("/runs/{run_id}", status_code=204, tags=["runs"], responses=NOT_FOUND)
def delete_run(run_id: RunId, storage: StorageDep, manager: ManagerDep, attached: AttachedDep) -> Response:
    """Stop the run if it is training, then delete it with all its data (an attached run's script
    gets 404 from then on)."""
    record = storage.get_run(run_id)
    if record is not None and record.kind == "attached":
        attached.delete(run_id)
    else:
        manager.delete(run_id)
    return Response(status_code=204)

"""The runs resource under /api: creating, comparing, listing, reading, renaming, stopping and deleting runs.

What this is: thin typed routes over RunManager (built-in runs) and AttachedRuns (attached ones),
with storage reads for the list (a page of RunSummary, filtered by a RunQuery, with the total)
and storage writes for a run's name and tags. Deleting (one run, or several at once: all or
none) gives the disk back (Storage.reclaim). The calls block, so the routes are plain `def`
(FastAPI runs them in its thread pool). Every error answers {"detail": "a sentence"} (errors.py).

The shapes only these routes use (RunsPage, RunPatch, RunsDelete, RunsDeleted) are defined here;
RunCreate, RunPublic and RunSummary are app.services.schemas'.

What this is not: what a run recorded or its weights (api.py), the ingest endpoints (ingest.py),
or logic of its own: validation is in the pydantic models, work in app/services.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from app.core.cells import GATES, MODERN_CELLS, WITHOUT_W_HH, CellName
from app.services.estimates import check_cost
from app.services.manager import RunNotFound
from app.services.run_query import RunQuery
from app.services.schemas import (
    LIMITS,
    CompareCreate,
    CompareGroup,
    RunCreate,
    RunKind,
    RunName,
    RunPublic,
    RunStatus,
    RunSummary,
    Tags,
    TaskName,
)
from app.web.deps import (
    DISK_FULL,
    NOT_FOUND,
    AttachedDep,
    ManagerDep,
    RunDep,
    RunId,
    SettingsDep,
    StorageDep,
    require_token,
)

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])


# -- the shapes of the list, a patch and a bulk delete (RunCreate and RunPublic: schemas.py) -----


class RunsPage(BaseModel):
    """One page of GET /api/runs, newest first, and how many runs match in all."""

    items: list[RunSummary]
    total: int


class RunPatch(BaseModel):
    """PATCH /api/runs/{id}: a new name (null: none) and/or new tags; a field left out is kept."""

    model_config = ConfigDict(extra="forbid")
    name: RunName = None
    tags: Tags | None = None

    @model_validator(mode="after")
    def _has_a_change(self) -> RunPatch:
        if not self.model_fields_set:
            raise ValueError('nothing to change: send "name", "tags" or both')
        if "tags" in self.model_fields_set and self.tags is None:
            raise ValueError("tags must be a list (send [] for none), not null")
        return self


class RunsDelete(BaseModel):
    """POST /api/runs/delete: the runs to delete, all or none."""

    model_config = ConfigDict(extra="forbid")
    ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=LIMITS.runs_page),
    ]


class RunsDeleted(BaseModel):
    deleted: list[str]


@router.post(
    "/runs",
    status_code=201,
    tags=["runs"],
    responses={429: {"description": "the queue is full"}, **DISK_FULL},
)
def create_run(body: RunCreate, manager: ManagerDep, settings: SettingsDep) -> RunPublic:
    """Queue a training run; it starts as soon as fewer than GATESCOPE_MAX_RUNS runs are training.
    A run beyond the server's cost limits (POST /api/runs/estimate) is refused with a 422."""
    check_cost(body, settings)
    return manager.public(manager.submit(body))


@router.post(
    "/compare",
    status_code=201,
    tags=["runs"],
    responses={429: {"description": "the queue is full"}, **DISK_FULL},
)
def compare(body: CompareCreate, manager: ManagerDep, settings: SettingsDep) -> CompareGroup:
    """Queue one run per cell, identical but for the cell (same seed: same data and probe input).

    Where a setting has no meaning for a cell it is dropped for that cell's run (each run's config
    says what it trained): init.forget_bias for the cells without a forget gate (rnn_*, gru,
    mingru), init scheme and gain for minGRU and minLSTM (no W_hh: the default at gain 1),
    bidirectional for the one-way cells (minGRU, minLSTM, sLSTM) and `slstm` for the cells that
    are not sLSTM. Either all the runs are queued or none (422 when
    one is beyond the cost limits or cannot be built, 429 when the queue cannot take them all)."""
    configs: list[RunCreate] = []
    for cell in dict.fromkeys(body.cells):  # each cell once, in the order given
        data = body.config.model_dump(mode="json")
        data["cell"] = cell
        if body.config.name is not None:  # one name for the group: each run's says its cell
            data["name"] = f"{body.config.name} · {cell}"
        if "f" not in GATES[cell]:
            data["init"]["forget_bias"] = None
        if cell in WITHOUT_W_HH:
            data["init"]["scheme"], data["init"]["gain"] = "default", 1.0
        if cell != "slstm":
            data["slstm"] = None
        if cell in MODERN_CELLS:  # one way only
            data["bidirectional"] = False
        try:
            config = RunCreate.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        check_cost(config, settings)
        configs.append(config)
    group = uuid.uuid4().hex[:12]
    records = manager.submit_group(configs, group)
    return CompareGroup(group=group, runs=[manager.public(r) for r in records])


@router.get("/runs", tags=["runs"])
def list_runs(
    storage: StorageDep,
    manager: ManagerDep,
    status: Annotated[list[RunStatus] | None, Query(description="any of these (repeat it)")] = None,
    kind: RunKind | None = None,
    cell: CellName | None = None,
    task: Annotated[TaskName | None, Query(description="a built-in run's task")] = None,
    group: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tag: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=LIMITS.tag_chars)]] | None,
        Query(max_length=LIMITS.tags, description="every one of these (repeat it)"),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=LIMITS.name_chars, description="in the name, the id or a tag")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LIMITS.runs_page)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> RunsPage:
    """A page of runs, newest first, with how many match in all (`total`). Filters combine; an
    item's config is brief (no custom text): GET /api/runs/{id} has the whole run."""
    query = RunQuery(
        statuses=tuple(status or ()), kind=kind, cell=cell, task=task, group=group, tags=tuple(tag or ()), q=q
    )
    items, total = storage.list_runs(query, limit=limit, offset=offset)
    ahead = {run_id: n for n, run_id in enumerate(manager.queued())}  # the queued runs' positions
    items = [i.model_copy(update={"queue_position": ahead[i.id]}) if i.id in ahead else i for i in items]
    return RunsPage(items=items, total=total)


@router.post(
    "/runs/delete",
    tags=["runs"],
    responses={404: {"description": "some ids name no run: nothing was deleted"}},
)
def delete_runs(
    body: RunsDelete, storage: StorageDep, manager: ManagerDep, attached: AttachedDep
) -> RunsDeleted:
    """Delete several runs as DELETE /api/runs/{id} does each: all of them, or (when an id names
    no run) none, with a 404 that names the unknown ids."""
    ids = list(dict.fromkeys(body.ids))
    missing = storage.missing(ids)
    if missing:
        raise HTTPException(404, f"no run has the id {', '.join(map(repr, missing))}: nothing was deleted")
    deleted = []
    for run_id in ids:
        try:
            _delete(run_id, storage, manager, attached)
        except RunNotFound:
            continue  # deleted by someone else meanwhile: gone all the same
        deleted.append(run_id)
    storage.reclaim()
    return RunsDeleted(deleted=deleted)


@router.get("/runs/{run_id}", tags=["runs"], responses=NOT_FOUND)
def get_run(run: RunDep, manager: ManagerDep) -> RunPublic:
    return manager.public(run)


@router.patch("/runs/{run_id}", tags=["runs"], responses=NOT_FOUND)
def patch_run(run: RunDep, body: RunPatch, storage: StorageDep, manager: ManagerDep) -> RunPublic:
    """Rename a run (null: no name) or set its tags (the list replaces the old one)."""
    record = storage.update_run(run.id, **{field: getattr(body, field) for field in body.model_fields_set})
    if record is None:
        raise HTTPException(404, f"there is no run with id {run.id!r}")
    return manager.public(record)


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
    return manager.public(manager.stop(run.id))


@router.delete("/runs/{run_id}", status_code=204, tags=["runs"], responses=NOT_FOUND)
def delete_run(run_id: RunId, storage: StorageDep, manager: ManagerDep, attached: AttachedDep) -> Response:
    """Stop the run if it is training, then delete it with all its data and give the disk back
    (an attached run's script gets 404 from then on)."""
    _delete(run_id, storage, manager, attached)
    storage.reclaim()
    return Response(status_code=204)


def _delete(run_id: str, storage: StorageDep, manager: ManagerDep, attached: AttachedDep) -> None:
    """Delete one run by the service of its kind; RunNotFound if there is none."""
    record = storage.get_run(run_id)
    if record is not None and record.kind == "attached":
        attached.delete(run_id)
    else:
        manager.delete(run_id)

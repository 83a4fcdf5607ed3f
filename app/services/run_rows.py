"""A run's row in the runs table, as Storage reads and writes it.

What this is: RUN_COLUMNS (the columns a RunRecord is read from, in order), BRIEF_COLUMNS (the
same with the config brief for the run list), UPDATABLE (RunRecord field -> column, for
Storage.update_run), `column_value` (a field's value as stored) and `record(row)` (a row of
RUN_COLUMNS as a RunRecord, without its forks or bytes, which Storage adds).

What this is not: queries (app.services.storage) or the record itself (app.services.records).
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from app.services.database import as_datetime, iso
from app.services.executors import ExecutorName
from app.services.lineage import ForkOf
from app.services.records import RunRecord, brief
from app.services.schemas import RunKind, RunStatus

RUN_COLUMNS = (
    "id, status, config, created_at, started_at, finished_at, step, steps, error, grp, kind, name, tags, "
    "parent, fork_step, fork_changes, storage_mb, notes, executor, node"
)
BRIEF_COLUMNS = RUN_COLUMNS.replace("config", "brief")  # the run list reads the brief, not the config
UPDATABLE = {
    "status": "status",
    "config": "config",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "step": "step",
    "steps": "steps",
    "error": "error",
    "group": "grp",
    "name": "name",
    "tags": "tags",
    "executor": "executor",
    "node": "node",
}


def column_value(name: str, value: Any) -> Any:
    """A RunRecord field's value as its column stores it ("brief": `value` is the whole config)."""
    if name in ("started_at", "finished_at"):
        return iso(value)
    if name in ("config", "tags", "notes"):
        return orjson.dumps(value).decode()
    if name == "brief":
        return orjson.dumps(brief(value)).decode()
    return value


def record(row: tuple[Any, ...]) -> RunRecord:
    """A row of RUN_COLUMNS (or BRIEF_COLUMNS) as a RunRecord."""
    (
        run_id,
        status,
        config,
        created_at,
        started_at,
        finished_at,
        step,
        steps,
        error,
        group,
        kind,
        name,
        tags,
        parent,
        fork_step,
        fork_changes,
        storage_mb,
        notes,
        executor,
        node,
    ) = row
    created = as_datetime(created_at)
    assert created is not None
    return RunRecord(
        id=run_id,
        status=cast(RunStatus, status),
        config=orjson.loads(config),
        created_at=created,
        started_at=as_datetime(started_at),
        finished_at=as_datetime(finished_at),
        step=step,
        steps=steps,
        error=error,
        group=group,
        kind=cast(RunKind, kind),
        name=name,
        tags=orjson.loads(tags),
        fork=ForkOf(parent=parent, step=fork_step, changes=orjson.loads(fork_changes)) if parent else None,
        storage_mb=storage_mb,
        notes=orjson.loads(notes),
        executor=cast(ExecutorName | None, executor),
        node=node,
    )

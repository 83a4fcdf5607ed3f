"""RunQuery: every filter of a run list, alone and together, against a real Storage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.services.records import RunRecord
from app.services.run_query import RunQuery
from app.services.schemas import AttachCreate, AttachedConfig, RunCreate
from app.services.storage import Storage

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MODULE = {
    "path": "rnn",
    "cell": "gru",
    "input_size": 3,
    "hidden_size": 5,
    "num_layers": 1,
    "bidirectional": False,
    "batch_first": True,
    "bias": True,
    "dropout": 0.0,
}
# id: (cell, task, status, name, tags, group)
RUNS: dict[str, tuple[str, str, str, str | None, list[str], str | None]] = {
    "r0": ("lstm", "adding", "completed", "Baseline LSTM", ["sweep", "lr:3e-3"], "g1"),
    "r1": ("gru", "adding", "completed", "gru 100%", ["sweep"], "g1"),
    "r2": ("rnn_tanh", "copy", "failed", None, ["Sweep", "bad"], None),
    "r3": ("lstm", "char_lm", "running", "hello_world", [], None),
    "r4": ("lstm", "copy", "queued", "copy task", ["long/T:100"], None),
}


def _config(cell: str, task: str, name: str | None, tags: list[str]) -> RunCreate:
    spec: dict[str, Any] = {"name": task}
    if task == "char_lm":
        spec["corpus"] = "hello"
    return RunCreate.model_validate({"cell": cell, "task": spec, "name": name, "tags": tags})


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with Storage(tmp_path) as s:
        for i, (run_id, (cell, task, status, name, tags, group)) in enumerate(RUNS.items()):
            record = RunRecord.new(run_id, _config(cell, task, name, tags), group)
            record.created_at = T0 + timedelta(minutes=i)
            record.status = status  # type: ignore[assignment]
            s.create_run(record)
        attach = AttachCreate.model_validate({"name": "my sweep script", "modules": [MODULE]})
        watched = RunRecord.attached("a0", AttachedConfig.of(attach, attach.modules[0]), group="w")
        watched.created_at = T0 + timedelta(minutes=10)
        s.create_run(watched)
        yield s


def ids(storage: Storage, query: RunQuery, limit: int = 50, offset: int = 0) -> tuple[list[str], int]:
    items, total = storage.list_runs(query, limit=limit, offset=offset)
    return [r.id for r in items], total


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (RunQuery(), ["a0", "r4", "r3", "r2", "r1", "r0"]),
        (RunQuery(statuses=("completed", "failed")), ["r2", "r1", "r0"]),
        (RunQuery(kind="attached"), ["a0"]),
        (RunQuery(kind="built-in", cell="lstm"), ["r4", "r3", "r0"]),
        (RunQuery(cell="gru"), ["a0", "r1"]),  # an attached run's cell is its module's
        (RunQuery(task="copy"), ["r4", "r2"]),
        (RunQuery(group="g1"), ["r1", "r0"]),
        (RunQuery(tags=("sweep",)), ["r2", "r1", "r0"]),  # a tag matches without regard to case
        (RunQuery(tags=("sweep", "bad")), ["r2"]),  # every tag given
        (RunQuery(tags=("swe",)), []),  # a tag is matched whole
        (RunQuery(q="lstm"), ["r0"]),  # in the name, any case
        (RunQuery(q="R3"), ["r3"]),  # in the id
        (RunQuery(q="t:100"), ["r4"]),  # in a tag
        (RunQuery(q="sweep"), ["a0", "r2", "r1", "r0"]),  # names and tags
        (RunQuery(q="100%"), ["r1"]),  # % is a character, not a wildcard
        (RunQuery(q="o_w"), ["r3"]),  # and so is _
        (RunQuery(q="%"), ["r1"]),
        (RunQuery(q="sweep", statuses=("completed",), cell="gru"), ["r1"]),
        (RunQuery(statuses=("stopped",)), []),
    ],
)
def test_each_filter(storage: Storage, query: RunQuery, expected: list[str]) -> None:
    assert ids(storage, query) == (expected, len(expected))


def test_pages_of_a_filtered_list_cover_it_once_with_its_total(storage: Storage) -> None:
    query = RunQuery(kind="built-in")
    pages = [ids(storage, query, limit=2, offset=offset) for offset in (0, 2, 4)]
    assert pages == [(["r4", "r3"], 5), (["r2", "r1"], 5), (["r0"], 5)]
    assert ids(storage, query, limit=2, offset=6) == ([], 5)


def test_where_passes_values_as_parameters() -> None:
    sql, args = RunQuery(q="x'; DROP TABLE runs; --", tags=("a'b",)).where()
    assert "DROP" not in sql and "a'b" not in sql
    assert args == (
        "a'b",
        "%x'; DROP TABLE runs; --%",
        "%x'; DROP TABLE runs; --%",
        "%x'; DROP TABLE runs; --%",
    )
    assert RunQuery().where() == ("", ())

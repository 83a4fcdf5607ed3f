"""Storage: runs CRUD, paging, metrics, probes, checkpoints, cascades, recovery, errors, threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.core.engine import StepMetrics
from app.core.frames import MAX_T, Frame
from app.core.tasks import MAX_TEXT_CHARS
from app.services import migrations
from app.services import storage as storage_module
from app.services.lineage import ForkOf
from app.services.records import RunRecord, brief
from app.services.run_query import RunQuery
from app.services.schemas import AttachCreate, AttachedConfig, RunCreate, RunPublic
from app.services.storage import INTERRUPTED_ERROR, METRIC_FIELDS, Storage, StorageError
from tests.core.test_frames import probe_frame

CONFIG = RunCreate.model_validate(
    {"cell": "lstm", "hidden_size": 8, "task": {"name": "adding", "seq_len": 6}, "steps": 20}
)
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MODULE = {
    "path": "encoder.rnn",
    "cell": "gru",
    "input_size": 3,
    "hidden_size": 5,
    "num_layers": 2,
    "bidirectional": True,
    "batch_first": False,
    "bias": True,
    "dropout": 0.1,
}
_ATTACH = AttachCreate.model_validate(
    {"name": "mine", "script": "train.py", "every": 10, "modules": [MODULE], "parameters": {"w": [2, 3]}}
)
ATTACHED = AttachedConfig.of(_ATTACH, _ATTACH.modules[0])


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with Storage(tmp_path / "data") as s:
        yield s


def _record(run_id: str, minutes: int = 0, status: str = "queued", group: str | None = None) -> RunRecord:
    record = RunRecord.new(run_id, CONFIG, group)
    record.created_at = T0 + timedelta(minutes=minutes)
    record.status = status  # type: ignore[assignment]
    return record


def _step(step: int, loss: float = 1.0) -> dict[str, Any]:
    return {
        "step": step,
        "loss": loss,
        "metric": loss / 2,
        "grad_norm": 3.0,
        "grad_norm_clipped": 1.0,
        "clipped": step % 2 == 0,
        "param_grad_norms": {"rnn.weight_hh_l0": 2.0, "readout.bias": 0.5},
        "update_ratio": 1e-3,
        "lr": 3e-3,
        "seconds": 0.01,
    }


def _count(path: Path, table: str, run_id: str) -> int:
    with sqlite3.connect(path) as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()
    conn.close()
    return int(n)


def test_the_database_is_a_wal_file_in_the_data_dir(tmp_path: Path) -> None:
    with Storage(tmp_path / "a" / "b") as s:
        assert s.path == tmp_path / "a" / "b" / "gatescope.db" and s.path.exists()
        conn = sqlite3.connect(s.path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


def test_create_get_update_and_public(storage: Storage) -> None:
    record = _record("r1", group="g")
    storage.create_run(record)
    got = storage.get_run("r1")
    assert got == record
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert storage.get_run("nope") is None

    started = datetime(2024, 5, 1, 14, 0, 0, 123, tzinfo=UTC)
    updated = storage.update_run("r1", status="running", started_at=started)
    assert updated is not None and updated.status == "running" and updated.started_at == started
    assert storage.update_run("nope", status="running") is None
    with pytest.raises(TypeError, match="cannot set colour"):
        storage.update_run("r1", colour="red")
    naive = datetime(2024, 5, 1, 15, 0)  # naive datetimes are read as UTC
    done = storage.update_run("r1", status="failed", finished_at=naive, error="boom", step=7)
    assert done is not None and done.finished_at == naive.replace(tzinfo=UTC)

    public = done.to_public()
    assert isinstance(public, RunPublic)
    assert public.id == "r1" and public.status == "failed" and public.error == "boom" and public.group == "g"
    assert public.config == CONFIG and public.step == 7 and public.steps == 20

    with pytest.raises(StorageError, match="already exists"):
        storage.create_run(_record("r1"))


def test_list_runs_newest_first_with_paging_and_filter(storage: Storage) -> None:
    for i in range(7):
        storage.create_run(_record(f"r{i}", minutes=i, status="completed" if i % 2 else "queued"))
    runs, total = storage.list_runs()
    assert [r.id for r in runs] == [f"r{i}" for i in reversed(range(7))] and total == 7
    page, total = storage.list_runs(limit=3, offset=2)
    assert [r.id for r in page] == ["r4", "r3", "r2"] and total == 7
    done, total = storage.list_runs(RunQuery(statuses=("completed",)), limit=2)
    assert [r.id for r in done] == ["r5", "r3"] and total == 3
    assert storage.list_runs(RunQuery(statuses=("running",))) == ([], 0)
    assert storage.list_runs(offset=10) == ([], 7)
    # runs created in the same microsecond keep their insertion order (newest first)
    storage.create_run(_record("same-a", minutes=100))
    storage.create_run(_record("same-b", minutes=100))
    assert [r.id for r in storage.list_runs(limit=2)[0]] == ["same-b", "same-a"]
    with pytest.raises(ValueError, match="negative"):
        storage.list_runs(limit=-1)


def test_names_and_tags_are_stored_listed_and_changed(storage: Storage) -> None:
    config = RunCreate.model_validate({**CONFIG.model_dump(), "name": " first ", "tags": ["a", "b", "a"]})
    assert (config.name, config.tags) == ("first", ["a", "b"])
    storage.create_run(RunRecord.new("n1", config))
    storage.create_run(_record("plain"))
    got = storage.get_run("n1")
    assert got is not None and (got.name, got.tags) == ("first", ["a", "b"])
    renamed = storage.update_run("n1", name="second", tags=["c"])
    assert renamed is not None and (renamed.name, renamed.tags) == ("second", ["c"])
    public = renamed.to_public()  # the current name and tags, in the config too
    assert isinstance(public.config, RunCreate)
    assert (public.name, public.tags, public.config.name, public.config.tags) == (
        "second",
        ["c"],
        "second",
        ["c"],
    )
    assert renamed.config["name"] == "first"  # the stored config stays as it was created
    items, _ = storage.list_runs()
    assert [(r.id, r.name, r.tags, r.config["name"]) for r in items] == [
        ("n1", "second", ["c"], "second"),  # created now, "plain" in 2024
        ("plain", None, [], None),
    ]
    cleared = storage.update_run("n1", name=None, tags=[])
    assert cleared is not None and (cleared.to_public().name, cleared.tags) == (None, [])
    attached = RunRecord.attached("att", ATTACHED, group="g")  # an attached run is named by its watch
    storage.create_run(attached)
    stored = storage.get_run("att")
    assert stored is not None and stored.name == "mine" and stored.to_public().config.name == "mine"
    assert storage.missing(["att", "nope", "n1", "gone"]) == ["nope", "gone"]


def test_the_list_carries_no_custom_text(storage: Storage) -> None:
    text = ("abcdefgh ij\n" * 83_334)[:MAX_TEXT_CHARS]  # 1 MB, the most a run may have
    big = RunCreate.model_validate(
        {"cell": "gru", "task": {"name": "char_lm", "corpus": "custom", "text": text, "seq_len": 20}}
    )
    storage.create_run(RunRecord.new("big", big))
    storage.create_run(RunRecord.attached("att", ATTACHED, group="g"))
    items, total = storage.list_runs()
    assert total == 2
    listed = orjson.dumps([item.model_dump(mode="json") for item in items])
    assert len(listed) < 3000, len(listed)  # not 1 MB
    summary = {item.id: item for item in items}
    assert summary["big"].config["task"] == {"name": "char_lm", "corpus": "custom", "seq_len": 20}
    assert "parameters" not in summary["att"].config and summary["att"].config["module"] == "encoder.rnn"
    record = storage.get_run("big")
    assert record is not None
    shown = record.to_public().config
    assert isinstance(shown, RunCreate) and shown.task.params["text"] == text  # the run has it
    storage.update_run("big", config={**record.config, "steps": 7})  # a new config makes a new brief
    assert storage.list_runs()[0][1].config["steps"] == 7


def _disk_bytes(path: Path) -> int:
    """The database's bytes on disk: the file and its write-ahead log."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_deleting_a_big_run_gives_the_disk_back(storage: Storage) -> None:
    storage.create_run(_record("keep"))
    storage.add_probe("keep", 0, b"k" * 100_000)
    storage.create_run(_record("big"))
    for step in range(40):
        storage.add_probe("big", step, bytes([step]) * 500_000)  # 20 MB
    storage.reclaim()  # the log checkpointed: the file holds everything
    before = _disk_bytes(storage.path)
    assert before > 20_000_000
    assert storage.delete_run("big") is True
    storage.reclaim()
    after = _disk_bytes(storage.path)
    assert after < 1_000_000, (before, after)  # the 20 MB went back to the disk
    assert storage.probe("keep", 0) == b"k" * 100_000
    (free,) = storage._writer.execute("PRAGMA freelist_count").fetchone()
    assert free == 0


def test_an_older_file_is_switched_to_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "gatescope.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")  # as versions 1 to 3 made it: no auto-vacuum
    conn.executescript(migrations.SCHEMA)
    conn.execute("CREATE TABLE filler (x BLOB)")
    conn.executemany("INSERT INTO filler VALUES (?)", [(b"f" * 100_000,)] * 50)
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    conn.close()
    with Storage(tmp_path) as storage:
        assert storage._writer.execute("PRAGMA auto_vacuum").fetchone() == (migrations.INCREMENTAL,)
        storage._writer.execute("DROP TABLE filler")
        storage.reclaim()
        assert _disk_bytes(path) < 500_000
    with Storage(tmp_path) as storage:  # a current file is opened without a VACUUM
        assert storage._writer.execute("PRAGMA auto_vacuum").fetchone() == (migrations.INCREMENTAL,)


def test_steps_metrics_and_run_step(storage: Storage) -> None:
    storage.create_run(_record("r"))
    storage.add_steps("r", [_step(1), _step(2), _step(3)])
    storage.add_steps("r", [])
    rows = storage.metrics("r")
    assert [m["step"] for m in rows] == [1, 2, 3]
    assert rows[0] == _step(1) and set(rows[0]) == set(METRIC_FIELDS)
    assert tuple(StepMetrics.__dataclass_fields__) == METRIC_FIELDS
    assert rows[1]["clipped"] is True and rows[0]["clipped"] is False
    assert [m["step"] for m in storage.metrics("r", since=2)] == [3]
    record = storage.get_run("r")
    assert record is not None and record.step == 3
    storage.add_steps("r", [_step(2, loss=9.0)])  # a step written twice keeps the last write
    assert storage.metrics("r")[1]["loss"] == 9.0
    record = storage.get_run("r")
    assert record is not None and record.step == 3  # runs.step never goes back
    with pytest.raises(StorageError):
        storage.add_steps("ghost", [_step(1)])  # a run's rows need the run


def test_probes_and_checkpoints(storage: Storage) -> None:
    storage.create_run(_record("r"))
    assert storage.probe("r") is None and storage.probe_steps("r") == [] and storage.checkpoint("r") is None
    for step in (10, 0, 20):
        storage.add_probe("r", step, b"frame%d" % step)
    assert storage.probe_steps("r") == [0, 10, 20]
    assert storage.probe("r") == b"frame20" and storage.probe("r", None) == b"frame20"
    assert storage.probe("r", 10) == b"frame10" and storage.probe("r", 5) is None
    storage.save_checkpoint("r", 10, b"w10")
    storage.save_checkpoint("r", 20, b"w20")
    assert storage.checkpoint("r") == b"w20"


def test_probes_at_full_and_display_resolution(storage: Storage) -> None:
    storage.create_run(_record("r"))
    storage.add_probe("r", 0, b"small")  # no display frame: it is the frame itself
    storage.add_probe("r", 10, b"full10", b"shown10")
    assert storage.probe("r", 0, "display") == b"small" == storage.probe("r", 0, "full")
    assert storage.probe("r", 10) == b"full10" and storage.probe("r", 10, "display") == b"shown10"
    assert storage.probe("r", None, "display") == b"shown10" and storage.probe("r", 5, "display") is None
    storage.add_probe("r", 10, b"again")  # replacing a frame replaces its display frame too
    assert storage.probe("r", 10, "display") == b"again"
    with pytest.raises(ValueError, match="resolution must be 'full' or 'display'"):
        storage.probe("r", 10, "thumbnail")  # type: ignore[arg-type]


V8_RUNS = ["storage_mb", "notes"]  # the columns version 8 gave runs
V9_RUNS = ["executor", "node"]  # and version 9
V8_SCHEMA = migrations.SCHEMA.replace(
    "    notes TEXT NOT NULL DEFAULT '[]',\n    executor TEXT,\n    node TEXT\n",
    "    notes TEXT NOT NULL DEFAULT '[]'\n",
)
V7_SCHEMA = V8_SCHEMA.replace(
    "    fork_changes TEXT,\n    storage_mb INTEGER,\n    notes TEXT NOT NULL DEFAULT '[]'\n",
    "    fork_changes TEXT\n",
).split("CREATE TABLE IF NOT EXISTS history")[0]
V6_SCHEMA = V7_SCHEMA.replace(
    "    brief TEXT NOT NULL DEFAULT '{}',\n    parent TEXT,\n    fork_step INTEGER,\n"
    "    fork_changes TEXT\n",
    "    brief TEXT NOT NULL DEFAULT '{}'\n",
)
V3_SCHEMA = V6_SCHEMA.replace(
    "'built-in',\n    name TEXT,\n    tags TEXT NOT NULL DEFAULT '[]',\n"
    "    brief TEXT NOT NULL DEFAULT '{}'\n",
    "'built-in'\n",
)
V2_SCHEMA = V3_SCHEMA.replace("    grp TEXT,\n    kind TEXT NOT NULL DEFAULT 'built-in'\n", "    grp TEXT\n")


def _old_run_row(scratch_dir: Path, run_id: str) -> tuple[Any, ...]:
    """A run row as versions 1 and 2 wrote it (no kind)."""
    with Storage(scratch_dir) as scratch:
        scratch.create_run(_record(run_id))
        reader = sqlite3.connect(scratch.path)
        (row,) = reader.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchall()
        reader.close()
    return tuple(row[:10])


def test_a_version_1_database_is_migrated_once(tmp_path: Path) -> None:
    v1 = V2_SCHEMA.replace("    display BLOB,\n", "")
    assert v1 != V2_SCHEMA != V3_SCHEMA != V6_SCHEMA != migrations.SCHEMA
    small = Frame.from_probe("old", probe_frame("gru")).to_bytes()
    large = Frame.from_probe("old", probe_frame("gru", seq_len=MAX_T + 20)).to_bytes()
    path = tmp_path / "gatescope.db"
    conn = sqlite3.connect(path)
    conn.executescript(v1 + "; PRAGMA user_version = 1;")
    row = _old_run_row(tmp_path / "scratch", "old")
    conn.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
    conn.executemany(
        "INSERT INTO probes VALUES (?, ?, ?)", [("old", 0, small), ("old", 1, large), ("old", 2, b"garbage")]
    )
    conn.commit()
    conn.close()
    for _ in range(2):  # the second open finds the column and changes nothing
        with Storage(tmp_path) as storage:
            assert storage.probe_steps("old") == [0, 1, 2]
            assert storage.probe("old", 0, "display") == small and storage.probe("old", 1) == large
            shown = storage.probe("old", 1, "display")
            assert shown is not None and shown != large
            frame = Frame.from_bytes(shown)
            assert frame.header["pool"] == {"T": MAX_T + 20, "units": 4, "t_width": 2, "unit_width": 1}
            assert frame.sizes() == (MAX_T // 2 + 10, 4)
            assert storage.probe("old", 2, "display") == b"garbage"  # unreadable frames stay as stored
            record = storage.get_run("old")
            assert record is not None and record.kind == "built-in"
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA user_version").fetchone() == (migrations.SCHEMA_VERSION,)
            nulls = check.execute("SELECT step FROM probes WHERE display IS NULL ORDER BY step").fetchall()
            assert nulls == [(0,), (2,)]
        check.close()


def test_a_version_2_database_gains_the_run_kind(tmp_path: Path) -> None:
    path = tmp_path / "gatescope.db"
    conn = sqlite3.connect(path)
    conn.executescript(V2_SCHEMA + "; PRAGMA user_version = 2;")
    conn.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _old_run_row(tmp_path / "scratch", "v2")
    )
    conn.execute(
        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("v2", 1, *[0.5] * 4, 0, *[0.1] * 3, "{}"),
    )
    conn.commit()
    conn.close()
    for _ in range(2):  # the second open finds the column and changes nothing
        with Storage(tmp_path) as storage:
            record = storage.get_run("v2")
            assert record is not None and record.kind == "built-in"
            public = record.to_public()
            assert (
                public.kind == "built-in" and isinstance(public.config, RunCreate) and public.config == CONFIG
            )
            assert [m["step"] for m in storage.metrics("v2")] == [1]
            storage.create_run(RunRecord.attached(f"att{_}", ATTACHED, group="g"))
            assert [r.kind for r in storage.list_runs()[0]] == ["attached"] * (_ + 1) + ["built-in"]
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA user_version").fetchone() == (migrations.SCHEMA_VERSION,)
            columns = [row[1] for row in check.execute("PRAGMA table_info(runs)")]
            old = ["kind", "name", "tags", "brief", "parent", "fork_step", "fork_changes"]
            assert columns[-11:] == [*old, *V8_RUNS, *V9_RUNS]
        check.close()


def test_a_version_3_database_gains_names_tags_and_briefs(tmp_path: Path) -> None:
    path = tmp_path / "gatescope.db"
    conn = sqlite3.connect(path)
    conn.executescript(V3_SCHEMA + "; PRAGMA user_version = 3;")
    built_in = (*_old_run_row(tmp_path / "scratch", "v3"), "built-in")
    attached = (
        "a3",
        "completed",
        orjson.dumps(ATTACHED.model_dump(mode="json")).decode(),
        *built_in[3:9],
        "watch",
        "attached",
    )
    conn.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * 11)})", [built_in, attached])
    conn.commit()
    conn.close()
    for _ in range(2):  # the second open finds the columns and changes nothing
        with Storage(tmp_path) as storage:
            old, watched = storage.get_run("v3"), storage.get_run("a3")
            assert old is not None and (old.name, old.tags) == (None, [])
            assert watched is not None and (watched.name, watched.tags) == ("mine", [])  # its watch's name
            items, total = storage.list_runs(RunQuery(q="MIN"))
            assert total == 1 and items[0].id == "a3" and "parameters" not in items[0].config
            assert storage.list_runs(RunQuery(cell="lstm"))[0][0].config == {
                **brief(old.config),
                "name": None,
                "tags": [],
            }
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA user_version").fetchone() == (migrations.SCHEMA_VERSION,)
        check.close()


def test_attached_runs_are_stored_with_their_kind_and_config(storage: Storage) -> None:
    storage.create_run(RunRecord.attached("a1", ATTACHED, group="watch1"))
    storage.add_steps("a1", [_step(1), _step(2)])
    record = storage.get_run("a1")
    assert record is not None
    assert (record.kind, record.status, record.group, record.step) == ("attached", "running", "watch1", 2)
    assert record.started_at is not None and record.started_at == record.created_at
    public = record.to_public()
    assert public.kind == "attached" and public.config == ATTACHED and public.steps == 2
    again = RunPublic.model_validate_json(public.model_dump_json())  # a client reads it back
    assert again == public and isinstance(again.config, type(ATTACHED))
    storage.update_run("a1", config={**record.config, "stop_requested": True})
    updated = storage.get_run("a1")
    assert updated is not None and updated.to_public().config.model_dump()["stop_requested"] is True
    with pytest.raises(ValueError, match="an attached run's config must be an AttachedConfig"):
        RunPublic.model_validate({**public.model_dump(), "config": CONFIG.model_dump()})


def test_delete_cascades(storage: Storage) -> None:
    for run_id in ("keep", "drop"):
        storage.create_run(_record(run_id))
        storage.add_steps(run_id, [_step(1), _step(2)])
        storage.add_probe(run_id, 0, b"p")
        storage.save_checkpoint(run_id, 2, b"w")
    assert storage.delete_run("drop") is True
    assert storage.delete_run("drop") is False
    assert storage.get_run("drop") is None
    for table in ("metrics", "probes", "checkpoints"):
        assert _count(storage.path, table, "drop") == 0, table
        assert _count(storage.path, table, "keep") > 0, table
    assert storage.metrics("drop") == [] and storage.probe("drop") is None


def test_recover_interrupts_running_and_returns_queued_oldest_first(tmp_path: Path) -> None:
    with Storage(tmp_path) as s:
        s.create_run(_record("q2", minutes=2))
        s.create_run(_record("q1", minutes=1))
        s.create_run(_record("run", minutes=0, status="running"))
        s.create_run(_record("done", minutes=3, status="completed"))
        s.add_steps("done", [_step(1)])
    with Storage(tmp_path) as s:  # the next server start
        assert s.recover() == ["q1", "q2"]
        run = s.get_run("run")
        assert run is not None and run.status == "interrupted" and run.error == INTERRUPTED_ERROR
        assert run.finished_at is not None and run.finished_at > T0
        done = s.get_run("done")
        assert done is not None and done.status == "completed" and done.error is None and done.step == 1
        assert len(s.metrics("done")) == 1
        assert s.recover() == ["q1", "q2"]  # idempotent


def test_recover_keeps_the_runs_it_is_told_to_and_lists_the_unfinished(tmp_path: Path) -> None:
    with Storage(tmp_path) as s:
        for i, run_id in enumerate(["on-ray", "paused", "local"]):
            s.create_run(_record(run_id, minutes=i, status="paused" if run_id == "paused" else "running"))
        s.update_run("on-ray", executor="ray", node="10.0.0.2/ab12cd34")
        s.create_run(_record("done", minutes=3, status="completed"))
        assert s.unfinished() == [("on-ray", "ray"), ("paused", None), ("local", None)]
        assert s.recover(keep=["on-ray", "paused"]) == []
        assert {r: (s.get_run(r) or _record(r)).status for r in ("on-ray", "paused", "local", "done")} == {
            "on-ray": "running",
            "paused": "paused",
            "local": "interrupted",
            "done": "completed",
        }
        kept = s.get_run("on-ray")
        assert kept is not None and (kept.executor, kept.node, kept.error) == (
            "ray",
            "10.0.0.2/ab12cd34",
            None,
        )
        assert s.unfinished() == [("on-ray", "ray"), ("paused", None)]


def test_concurrent_writers_and_readers(storage: Storage) -> None:
    runs = [f"r{i}" for i in range(4)]
    for run_id in runs:
        storage.create_run(_record(run_id))
    failures: list[BaseException] = []

    def write(run_id: str) -> None:
        try:
            for step in range(1, 201, 10):
                storage.add_steps(run_id, [_step(s) for s in range(step, step + 10)])
                storage.add_probe(run_id, step, b"x" * 1000)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    def read() -> None:
        try:
            for _ in range(50):
                for run_id in runs:
                    steps = [m["step"] for m in storage.metrics(run_id)]
                    assert steps == list(range(1, len(steps) + 1))  # a transaction is all or nothing
                storage.list_runs()
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(r,)) for r in runs] + [
        threading.Thread(target=read) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    for run_id in runs:
        record = storage.get_run(run_id)
        assert record is not None and record.step == 200 and len(storage.metrics(run_id)) == 200


def test_a_locked_database_is_a_storage_error(tmp_path: Path) -> None:
    with Storage(tmp_path, busy_timeout=0.05) as s:
        other = sqlite3.connect(s.path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StorageError, match=r"the database is locked .*gatescope\.db"):
                s.create_run(_record("r"))
            other.execute("ROLLBACK")
        finally:
            other.close()
        s.create_run(_record("r"))  # and it works again once the lock is gone


def test_a_full_disk_is_a_storage_error(storage: Storage) -> None:
    storage.create_run(_record("r"))
    (pages,) = storage._writer.execute("PRAGMA page_count").fetchone()
    storage._writer.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk with two pages left
    with pytest.raises(
        StorageError, match=r"^the disk is full: .*gatescope\.db \(while storing a probe frame\)"
    ):
        storage.add_probe("r", 0, b"x" * 1_000_000)
    assert storage.probe("r") is None  # the transaction was rolled back


def test_unusable_paths_and_closed_storage(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create the data directory"):
        Storage(tmp_path / "file" / "data")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "gatescope.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="damaged"):
        Storage(tmp_path / "junk")
    s = Storage(tmp_path / "ok")
    s.close()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.get_run("r")


def test_stored_texts_are_bounded_dropping_the_least_recently_saved(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "TEXTS_KEPT_CHARS", 10)
    storage.save_text("a", "aaaa")
    storage.save_text("b", "bbbb")
    storage.save_text("a", "aaaa")  # saved again: now the most recent
    storage.save_text("c", "cccc")  # 12 characters in all: the oldest goes
    assert [storage.text(i) for i in "abc"] == ["aaaa", None, "cccc"]


def _fork(run_id: str, parent: str, step: int, changes: dict[str, Any] | None = None) -> RunRecord:
    record = _record(run_id)
    record.fork = ForkOf(parent=parent, step=step, changes=changes or {})
    return record


def test_snapshots_forks_and_run_bytes(storage: Storage) -> None:
    storage.create_run(_record("p"))
    for step in (10, 0, 20):
        storage.add_probe("p", step, b"f" * 30, b"d" * 7 if step == 0 else None, bytes([step]) * 100)
    storage.save_checkpoint("p", 20, b"w" * 5)
    assert storage.snapshot_steps("p") == [0, 10, 20]
    assert storage.snapshot("p", 10) == bytes([10]) * 100 and storage.snapshot("p", 5) is None
    assert storage.run_bytes("p") == 300 + 30 + 7 + 30 + 30 + 5
    storage.create_run(_fork("f1", "p", 10, {"lr": 0.1}))
    storage.create_run(_fork("f2", "p", 0))
    assert (
        storage.snapshot_steps("f1") == [10] and storage.snapshot("f1", 10) == bytes([10]) * 100
    )  # its own copy
    parent, fork = storage.get_run("p"), storage.get_run("f1")
    assert parent is not None and fork is not None
    assert [(r.id, r.step) for r in parent.forks] == [("f1", 10), ("f2", 0)]  # oldest first
    assert fork.fork == ForkOf(parent="p", step=10, changes={"lr": 0.1}) and fork.forks == []
    public = fork.to_public()
    assert public.fork == fork.fork and parent.to_public().forks == parent.forks
    summaries = {s.id: s for s in storage.list_runs()[0]}
    assert (summaries["f1"].parent, summaries["p"].parent) == ("p", None)
    updated = storage.update_run("p", status="running")
    assert updated is not None and updated.forks == parent.forks  # update_run answers with them too
    with pytest.raises(StorageError, match="run p has no stored state at step 5"):
        storage.create_run(_fork("f3", "p", 5))
    assert storage.get_run("f3") is None  # nothing half-stored
    assert storage.delete_run("p")
    assert _count(storage.path, "snapshots", "p") == 0 and storage.run_bytes("p") == 0
    kept = storage.get_run("f1")
    assert kept is not None and kept.fork is not None and kept.fork.parent == "p"  # the link stays
    assert storage.snapshot_steps("f1") == [10]


def test_a_version_8_database_gains_executor_and_node(tmp_path: Path) -> None:
    """Built-in runs that started so far trained locally; the node is not known."""
    assert V8_SCHEMA != migrations.SCHEMA
    path = tmp_path / "gatescope.db"
    conn = sqlite3.connect(path)
    conn.executescript(V8_SCHEMA + "; PRAGMA user_version = 8;")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(path)  # rows as version 8 wrote them: its columns, no executor or node
    with Storage(tmp_path / "scratch") as scratch:
        scratch.create_run(_record("started", status="completed"))
        scratch.update_run("started", started_at=datetime(2024, 1, 1, tzinfo=UTC))
        scratch.create_run(_record("waiting"))
        scratch.create_run(RunRecord.attached("att", ATTACHED, group="g"))
        reader = sqlite3.connect(scratch.path)
        rows = reader.execute("SELECT * FROM runs").fetchall()
        reader.close()
    conn.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * 19)})", [r[:19] for r in rows])
    conn.commit()
    conn.close()
    for _ in range(2):  # the second open finds the columns and changes nothing
        with Storage(tmp_path) as storage:
            found = {r: storage.get_run(r) for r in ("started", "waiting", "att")}
            assert {r: (v.executor, v.node) for r, v in found.items() if v} == {
                "started": ("local", None),
                "waiting": (None, None),
                "att": (None, None),
            }
            public = storage.get_run("started")
            assert public is not None and public.to_public().executor == "local"


def test_a_version_6_database_gains_snapshots_and_fork_links(tmp_path: Path) -> None:
    path = tmp_path / "gatescope.db"
    row = (*_old_run_row(tmp_path / "scratch", "v6"), "built-in", None, "[]", "{}")
    conn = sqlite3.connect(path)
    conn.executescript(
        V6_SCHEMA.split("CREATE TABLE IF NOT EXISTS snapshots")[0] + "; PRAGMA user_version = 6;"
    )
    conn.execute(f"INSERT INTO runs VALUES ({', '.join('?' * 14)})", row)
    conn.commit()
    conn.close()
    for _ in range(2):  # the second open finds the columns and changes nothing
        with Storage(tmp_path) as storage:
            old = storage.get_run("v6")
            assert old is not None and old.fork is None and len(old.forks) == _
            storage.add_probe("v6", 0, b"p", None, b"s")
            storage.create_run(_fork(f"f{_}", "v6", 0))
            assert [f.id for f in (storage.get_run("v6") or old).forks] == [f"f{i}" for i in range(_ + 1)]
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA user_version").fetchone() == (migrations.SCHEMA_VERSION,)
            indexes = {r[1] for r in check.execute("PRAGMA index_list(runs)")}
            assert "runs_by_parent" in indexes
        check.close()

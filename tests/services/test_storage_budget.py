"""The storage budget: thinning in Storage.add_probe, history rows, notes, the v8 migration, the
free-space floor (app.services.disk) and a real run kept within its budget (RunManager)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.frames import Frame
from app.services import migrations
from app.services.disk import DiskFull, DiskGuard
from app.services.lineage import ForkOf
from app.services.records import RunRecord
from app.services.storage import Storage
from app.services.thinning import MB
from tests.core.test_frames import probe_frame
from tests.services.test_manager import (
    LONG,
    Make,
    _config,
    make,  # noqa: F401  (the fixture)
    wait_finished,
    wait_for,
)
from tests.services.test_storage import V7_SCHEMA, _old_run_row, _record, _step

FRAME = Frame.from_probe("r", probe_frame("lstm", layers=2))
SNAPSHOT = b"s" * 20_000


def _frame(step: int) -> bytes:
    return Frame({**FRAME.header, "step": step}, FRAME.arrays).to_bytes()


def _budgeted(run_id: str, mb: int | None) -> RunRecord:
    record = _record(run_id)
    record.storage_mb = mb
    return record


def test_a_run_probed_every_step_stays_within_its_budget_and_keeps_endpoints_and_fork_points(
    tmp_path: Path,
) -> None:
    with Storage(tmp_path) as storage:
        storage.create_run(_budgeted("r", 1))
        storage.add_steps("r", [_step(s) for s in range(1, 301)])
        for step in range(301):  # 301 x ~25 kB: 7 MB against a budget of 1 MB
            storage.add_probe("r", step, _frame(step), None, SNAPSHOT)
            if step == 120:
                fork = _record("f")
                fork.fork = ForkOf(parent="r", step=120, changes={})
                storage.create_run(fork)
            assert storage.run_bytes("r") <= 1 * MB
        steps = storage.probe_steps("r")
        assert {0, 120, 300} <= set(steps) and len(steps) < 301 // 4
        assert storage.snapshot_steps("r") == steps  # frames and snapshots thinned together
        assert storage.history_steps("r") == list(range(301))  # the history is never thinned
        assert len(storage.metrics("r")) == 300  # nor are metrics
        record = storage.get_run("r")
        assert record is not None and record.storage_bytes == storage.run_bytes("r")
        public = record.to_public()
        assert (public.storage_mb, public.storage_bytes, public.notes) == (1, storage.run_bytes("r"), [])
        storage.create_run(_budgeted("free", None))  # no budget: nothing thinned
        for step in range(50):
            storage.add_probe("free", step, _frame(step), None, SNAPSHOT)
        assert len(storage.probe_steps("free")) == 50


def test_notes_are_appended_and_shown(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        storage.create_run(_record("r"))
        assert storage.add_note("r", "One.") is not None
        updated = storage.add_note("r", 'Two, with "quotes".')
        assert updated is not None and updated.to_public().notes == ["One.", 'Two, with "quotes".']
        assert storage.add_note("nobody", "x") is None


def test_a_version_7_database_gains_budgets_notes_and_history_rows(tmp_path: Path) -> None:
    path = tmp_path / "gatescope.db"
    row = (*_old_run_row(tmp_path / "scratch", "v7"), "built-in", None, "[]", "{}", None, None, None)
    conn = sqlite3.connect(path)
    conn.executescript(V7_SCHEMA + "; PRAGMA user_version = 7;")
    conn.execute(f"INSERT INTO runs VALUES ({', '.join('?' * 17)})", row)
    conn.execute("INSERT INTO probes VALUES ('v7', 0, ?, NULL)", (_frame(0),))
    conn.execute("INSERT INTO probes VALUES ('v7', 5, ?, NULL)", (b"unreadable",))
    conn.commit()
    conn.close()
    for _ in range(2):  # the second open finds the columns and changes nothing
        with Storage(tmp_path) as storage:
            old = storage.get_run("v7")
            assert old is not None and (old.storage_mb, old.notes) == (None, [])
            assert storage.history_steps("v7") == [0]  # the unreadable frame has none, as before
            history = storage.history("v7", 0)
            assert history is not None and Frame.from_bytes(history).step == 0
            assert storage.probe_steps("v7") == [0, 5]
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA user_version").fetchone() == (migrations.SCHEMA_VERSION,)
        check.close()


def test_the_guard_says_how_much_is_free_below_the_floor(tmp_path: Path) -> None:
    free = {"bytes": 600 * MB}
    guard = DiskGuard(tmp_path, 512, lambda _: free["bytes"])
    assert guard.shortage() is None
    guard.check()
    free["bytes"] = 100 * MB
    shortage = guard.shortage()
    assert shortage == f"the disk holding {tmp_path} has 100 MB free, below the server's floor of 512 MB " + (
        "(GATESCOPE_MIN_FREE_MB)"
    )
    with pytest.raises(DiskFull, match=r"no new run can start: the disk .* delete runs to free space"):
        guard.check()
    assert DiskGuard(tmp_path).shortage() is None  # this machine's own disk has room


def test_a_real_run_keeps_its_budget_and_a_full_disk_stops_frames_not_the_run(
    make: Make,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    manager, storage, _ = make()
    free = {"bytes": 10**6 * MB}
    manager.disk = DiskGuard(tmp_path, 512, lambda _: free["bytes"])
    run = manager.submit(_config(steps=300, probe_every=1, storage_mb=1))
    assert run.storage_mb == 1 and manager.submit(_config(steps=1)).storage_mb == manager.storage_mb
    done = wait_finished(storage, run.id)
    assert done.status == "completed" and storage.run_bytes(run.id) <= 1 * MB
    steps = storage.probe_steps(run.id)
    assert steps[0] == 0 and steps[-1] == 300 and len(steps) < 301
    assert storage.history_steps(run.id) == list(range(301))
    long = manager.submit(_config(steps=LONG, probe_every=1))
    wait_for(lambda: len(storage.probe_steps(long.id)) >= 3, what="a few frames")
    free["bytes"] = 0
    wait_for(lambda: bool((storage.get_run(long.id) or done).notes), what="the note")
    frames, trained = storage.probe_steps(long.id), (storage.get_run(long.id) or done).step
    wait_for(lambda: (storage.get_run(long.id) or done).step > trained + 20, what="more steps")
    record = storage.get_run(long.id)
    assert record is not None and record.status == "running"  # still training, metrics recorded
    assert storage.probe_steps(long.id) == frames and storage.snapshot_steps(long.id) == frames
    assert record.notes[0].startswith(f"Frames and snapshots stopped being recorded at step {frames[-1] + 1}")
    assert "0 MB free, below the server's floor of 512 MB" in record.notes[0]
    with pytest.raises(DiskFull, match="no new run can start"):
        manager.submit(_config(steps=1))
    with pytest.raises(DiskFull):
        manager.fork(run.id, 300, {})
    manager.stop(long.id)
    assert wait_finished(storage, long.id).status == "stopped"
    assert storage.probe(run.id, 300) is not None and len(storage.metrics(run.id)) == 300  # still readable

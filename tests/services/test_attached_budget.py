"""The storage budget of attached runs (app.services.attached): each run gets the attach body's
storage_mb or the service's, its stored frames are thinned like a built-in run's, and below the
free-space floor attach and import store nothing while a streaming run stops storing frames (with
a note) and goes on.

Frames are real attached frames (tests.services.test_attached): an LSTM 2x32 bidirectional at T=100,
287 kB each, so a 1 MB budget keeps a few of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.attached import AttachedRuns
from app.services.disk import DiskFull, DiskGuard
from app.services.messages import Message, ProbeMessage, StatusMessage
from app.services.schemas import AttachCreate, EndCreate
from app.services.storage import Storage
from app.services.thinning import MB
from tests.services.test_attached import attached_frame, module, steps, write_runfile

BIG = module(hidden=32)
T = 100


class Disk:
    """A disk whose free bytes the test sets."""

    def __init__(self) -> None:
        self.free = 10**15

    def __call__(self, path: Path) -> int:
        return self.free


def _service(storage: Storage, messages: list[tuple[str, Message]], disk: Disk) -> AttachedRuns:
    guard = DiskGuard(storage.path.parent, min_free_mb=512, free=disk)
    return AttachedRuns(storage, lambda rid, m: messages.append((rid, m)), storage_mb=7, disk=guard)


def _attach(runs: AttachedRuns, **fields: object) -> str:
    body = AttachCreate.model_validate({"name": "mine", "modules": [BIG], **fields})
    return runs.attach(body).runs[0].id


def test_an_attached_run_gets_a_budget_and_its_frames_are_thinned_within_it(tmp_path: Path) -> None:
    messages: list[tuple[str, Message]] = []
    with Storage(tmp_path) as storage:
        runs = _service(storage, messages, Disk())
        assert storage.get_run(_attach(runs)).storage_mb == 7  # type: ignore[union-attr]  # the server's
        run_id = _attach(runs, storage_mb=1)
        assert runs.storage.get_run(run_id).storage_mb == 1  # type: ignore[union-attr]
        sent = list(range(1, 13))
        for step in sent:
            runs.add_steps(run_id, steps(step))
            reply = runs.add_frame(run_id, attached_frame(run_id, BIG, step, T).to_bytes())
        assert reply.frames == 12
        kept = storage.probe_steps(run_id)
        assert kept[0] == 1 and kept[-1] == 12 and 2 <= len(kept) < len(sent)  # thinned, endpoints kept
        assert storage.run_bytes(run_id) <= 1 * MB
        assert storage.history_steps(run_id) == sent  # never thinned
        assert [r["step"] for r in storage.metrics(run_id)] == sent
        assert sum(isinstance(m, ProbeMessage) for _, m in messages) == 12  # every frame reached viewers
        with pytest.raises(ValueError, match="less than or equal to 100000"):
            AttachCreate.model_validate({"modules": [BIG], "storage_mb": 100_001})


def test_below_the_floor_attach_and_import_store_nothing(tmp_path: Path) -> None:
    disk = Disk()
    data = write_runfile(tmp_path / "run.gsrun", [module()])
    with Storage(tmp_path / "db") as storage:
        runs = _service(storage, [], disk)
        disk.free = 300 * MB
        for call in (lambda: _attach(runs), lambda: runs.import_file(data)):
            with pytest.raises(DiskFull) as refused:
                call()
            assert str(refused.value).startswith("no new run can start: the disk holding")
            assert "has 300 MB free, below the server's floor of 512 MB" in str(refused.value)
        assert storage.list_runs()[1] == 0
        disk.free = 10**15
        group = runs.import_file(data)  # the same file above the floor: its runs are budgeted
        assert group.runs[0].storage_mb == 7 and storage.probe_steps(group.runs[0].id) == [1, 2, 4]


def test_a_streaming_run_below_the_floor_stops_storing_frames_and_says_so(tmp_path: Path) -> None:
    disk = Disk()
    messages: list[tuple[str, Message]] = []
    with Storage(tmp_path) as storage:
        runs = _service(storage, messages, disk)
        run_id = _attach(runs)
        for step in range(1, 6):
            if step == 3:
                disk.free = 100 * MB
            runs.add_steps(run_id, steps(step))
            runs.add_frame(run_id, attached_frame(run_id, BIG, step, T).to_bytes())
        assert storage.probe_steps(run_id) == [1, 2]
        assert [r["step"] for r in storage.metrics(run_id)] == [1, 2, 3, 4, 5]  # metrics still are
        note = (
            f"Frames stopped being recorded at step 3: the disk holding {tmp_path} has 100 MB free, "
            "below the server's floor of 512 MB (GATESCOPE_MIN_FREE_MB). Metrics still are."
        )
        assert storage.get_run(run_id).notes == [note]  # type: ignore[union-attr]  # once
        statuses = [m.run for _, m in messages if isinstance(m, StatusMessage)]
        assert statuses[-1].notes == [note] and statuses[-1].status == "running"
        assert [m.step for _, m in messages if isinstance(m, ProbeMessage)] == [1, 2, 3, 4, 5]
        done = runs.end(run_id, EndCreate(status="completed"))
        assert done.status == "completed" and done.notes == [note]

"""The run manager with real spawned workers: completion, stop, queueing, kill -9, divergence, restarts.

Each worker process spends ~2 s importing torch, so the tests share that cost: tiny runs, and
several runs per test where the story allows.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from app.core.engine import Trainer
from app.core.frames import Frame
from app.services import manager as manager_module
from app.services.handles import SHUTDOWN_ERROR
from app.services.interventions import Refused
from app.services.manager import DELETED_ERROR, QueueFull, RunManager, RunNotFound, WrongState
from app.services.messages import EndMessage, Message, ProbeMessage, StatusMessage, StepMessage
from app.services.records import RunRecord
from app.services.schemas import FINISHED, RunCreate, to_train_config
from app.services.storage import INTERRUPTED_ERROR, Storage
from tests.services.test_storage import ATTACHED

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 6},
    "batch_size": 8,
    "steps": 30,
    "probe_every": 10,
}
LONG = 100_000  # steps: a run that only ends when it is stopped, killed or shut down
_STEP: dict[str, Any] = {
    "step": 1,
    "loss": 0.5,
    "metric": 0.5,
    "grad_norm": 1.0,
    "grad_norm_clipped": 1.0,
    "clipped": False,
    "param_grad_norms": {"rnn.weight_hh_l0": 1.0},
    "update_ratio": 1e-3,
    "lr": 3e-3,
    "seconds": 0.01,
}


def _config(**overrides: Any) -> RunCreate:
    return RunCreate.model_validate(BASE | overrides)


@dataclass
class Recorder:
    """A publish callback that keeps every message, in order, from any thread."""

    messages: list[tuple[str, Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, run_id: str, message: Message) -> None:
        with self.lock:
            self.messages.append((run_id, message))

    def of(self, run_id: str) -> list[Message]:
        with self.lock:
            return [m for r, m in self.messages if r == run_id]

    def ended(self, run_id: str) -> bool:
        return any(isinstance(m, EndMessage) for m in self.of(run_id))


Make = Callable[..., tuple[RunManager, Storage, Recorder]]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """make(max_runs, data_dir) -> a started manager, its storage and its recorder; all shut at the end."""
    made: list[tuple[RunManager, Storage]] = []

    def factory(max_runs: int = 2, data_dir: Path | None = None) -> tuple[RunManager, Storage, Recorder]:
        storage = Storage(data_dir or tmp_path / "data")
        recorder = Recorder()
        manager = RunManager(storage, max_runs, recorder)
        manager.start()
        made.append((manager, storage))
        return manager, storage, recorder

    yield factory
    for manager, _ in made:
        manager.shutdown()
    for _, storage in made:
        storage.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0, what: str = "condition") -> float:
    """Poll until `predicate()`; the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


def wait_finished(storage: Storage, run_id: str, timeout: float = 120.0) -> RunRecord:
    def finished() -> bool:
        record = storage.get_run(run_id)
        return record is not None and record.status in FINISHED

    wait_for(finished, timeout, f"run {run_id} to finish")
    record = storage.get_run(run_id)
    assert record is not None
    return record


def wait_steps(storage: Storage, run_id: str, steps: int) -> None:
    def trained() -> bool:
        record = storage.get_run(run_id)
        return record is not None and record.step >= steps

    wait_for(trained, what=f"run {run_id} to train {steps} steps")


def _load(data: bytes | None) -> dict[str, Any]:
    assert data is not None
    loaded: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    return loaded


def test_runs_complete_diverge_or_fail(make: Make) -> None:
    """Three runs at once: one completes with everything stored, one diverges, one is killed -9."""
    manager, storage, recorder = make(max_runs=3)
    config = _config()
    record = manager.submit(config)
    killed = manager.submit(_config(steps=LONG))
    diverging = manager.submit(
        _config(
            cell="rnn_relu",
            init={"scheme": "identity", "gain": 3.0},
            optimizer={"name": "sgd", "lr": 10.0},
            clip={"mode": "off"},
            steps=50,
        )
    )
    assert record.status == "running" and record.started_at is not None and record.steps == 30

    # kill -9 of a worker fails its run; the others go on
    wait_steps(storage, killed.id, 1)
    pid = manager.worker_pid(killed.id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    failed = wait_finished(storage, killed.id)
    assert failed.status == "failed" and failed.error == "worker exited with code -9" and failed.step >= 1
    wait_for(lambda: recorder.ended(killed.id), what="the killed run's end message")
    end = recorder.of(killed.id)[-1]
    assert isinstance(end, EndMessage) and end.run.status == "failed"

    wait_for(lambda: recorder.ended(record.id), what="the end message")
    done = storage.get_run(record.id)
    assert done is not None and done.status == "completed" and done.error is None and done.step == 30
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at

    assert [m["step"] for m in storage.metrics(record.id)] == list(range(1, 31))
    assert storage.probe_steps(record.id) == [0, 10, 20, 30]
    latest = Frame.from_bytes(storage.probe(record.id) or b"")
    assert latest.header["run_id"] == record.id and latest.step == 30

    messages = recorder.of(record.id)
    first, *middle, status, end = messages
    assert isinstance(first, StatusMessage) and first.run.status == "running"
    assert [m.metrics["step"] for m in middle if isinstance(m, StepMessage)] == list(range(1, 31))
    probes = [m for m in middle if isinstance(m, ProbeMessage)]
    assert [m.step for m in probes] == [0, 10, 20, 30]
    assert all(m.display == storage.probe(record.id, m.step, "display") for m in probes)  # what was stored
    assert isinstance(status, StatusMessage) and isinstance(end, EndMessage)
    assert status.run.status == end.run.status == "completed" and end.run.step == 30

    # the checkpoint: the run's latest weights, loadable without pickle into plain torch.nn modules
    wait_for(lambda: manager.worker_pid(record.id) is None, what="the worker to be reaped")
    data = manager.checkpoint(record.id)
    assert data == storage.checkpoint(record.id)
    ckpt = _load(data)
    assert ckpt["step"] == 30 and ckpt["config"] == config.model_dump(mode="json")
    lstm = torch.nn.LSTM(input_size=2, hidden_size=8, batch_first=True)
    lstm.load_state_dict(ckpt["state_dict"])
    readout = torch.nn.Linear(8, 1)
    readout.load_state_dict(ckpt["readout"])
    trainer = Trainer(to_train_config(config))  # the same run again, in this process: bit for bit
    for _ in range(30):
        trainer.train_step()
    x = trainer.probe_sample.inputs
    with torch.no_grad():
        assert torch.equal(readout(lstm(x)[0]), trainer.net(x)[0])

    diverged = wait_finished(storage, diverging.id)
    assert diverged.status == "diverged"
    assert diverged.error is not None and "NaN or inf at step" in diverged.error
    assert diverged.step < 50 and len(storage.metrics(diverging.id)) == diverged.step  # before it blew up

    with pytest.raises(WrongState, match="already ended"):
        manager.stop(record.id)
    for call in (manager.stop, manager.delete, manager.checkpoint):
        with pytest.raises(RunNotFound):
            call("nope")
    manager.delete(record.id)
    assert storage.get_run(record.id) is None and storage.metrics(record.id) == []
    assert storage.checkpoint(record.id) is None and storage.probe_steps(record.id) == []


def test_queue_stop_and_delete(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_runs=1: runs wait their turn; stop ends a queued run at once and a running one within 1 s;
    delete takes a running run away with all its data."""
    monkeypatch.setattr(manager_module, "MAX_QUEUED", 2)
    manager, storage, recorder = make(max_runs=1)
    a = manager.submit(_config(steps=LONG, probe_every=0))
    b = manager.submit(_config(steps=LONG, probe_every=2), group="g")
    c = manager.submit(_config(steps=LONG))
    assert [a.status, b.status, c.status] == ["running", "queued", "queued"] and b.group == "g"
    assert manager.running() == [a.id] and manager.queued() == [b.id, c.id]
    with pytest.raises(QueueFull, match="queue is full"):
        manager.submit(_config())

    stopped = manager.stop(c.id)  # queued: at once
    assert stopped.status == "stopped" and stopped.finished_at is not None and manager.queued() == [b.id]
    *announced, status, end = recorder.of(c.id)  # a's start may have announced c's place first
    assert all(isinstance(m, StatusMessage) and m.run.status == "queued" for m in announced)
    assert isinstance(status, StatusMessage) and status.run.status == "stopped"
    assert isinstance(end, EndMessage)

    wait_steps(storage, a.id, 5)
    assert storage.get_run(b.id).status == "queued"  # type: ignore[union-attr]
    started = time.monotonic()
    assert manager.stop(a.id).status == "running"  # the worker stops after the step in progress
    final = wait_finished(storage, a.id)
    took = time.monotonic() - started
    assert final.status == "stopped" and final.error is None and 5 <= final.step < LONG
    assert took < 1.0, f"stop took {took:.2f} s"
    assert [m["step"] for m in storage.metrics(a.id)] == list(range(1, final.step + 1))
    assert _load(manager.checkpoint(a.id))["step"] == final.step  # the final weights were kept

    # b began only once a had ended: its "running" follows a's end
    wait_steps(storage, b.id, 3)
    ra, rb = storage.get_run(a.id), storage.get_run(b.id)
    assert ra is not None and rb is not None and rb.status == "running"
    assert ra.finished_at is not None and rb.started_at is not None and rb.started_at >= ra.finished_at
    order = [
        (r, type(m).__name__, getattr(getattr(m, "run", None), "status", None)) for r, m in recorder.messages
    ]
    assert order.index((a.id, "EndMessage", "stopped")) < order.index((b.id, "StatusMessage", "running"))

    # deleting a running run: its worker goes, its data goes, its viewers get an end
    manager.delete(b.id)
    assert storage.get_run(b.id) is None
    wait_for(lambda: manager.running() == [], what="b's worker to go")
    assert (
        storage.metrics(b.id) == [] and storage.probe_steps(b.id) == [] and storage.checkpoint(b.id) is None
    )
    ends = [m for m in recorder.of(b.id) if isinstance(m, EndMessage)]
    assert len(ends) == 1 and ends[0].run.status == "stopped" and ends[0].run.error == DELETED_ERROR

    # a worker still importing torch is terminated rather than waited for
    d = manager.submit(_config(steps=LONG))
    assert d.status == "running"
    started = time.monotonic()
    manager.stop(d.id)
    final = wait_finished(storage, d.id)
    took = time.monotonic() - started
    assert final.status == "stopped" and final.step == 0 and took < 1.0, f"stop took {took:.2f} s"
    wait_for(lambda: recorder.ended(d.id), what="d's end message")


def test_shutdown_interrupts_and_restart_recovers(make: Make, tmp_path: Path) -> None:
    data = tmp_path / "restart"
    m1, s1, r1 = make(max_runs=1, data_dir=data)
    b = m1.submit(_config(steps=LONG, probe_every=0))
    # beside it, as a crash would leave them: a finished run, one left 'running', one 'queued'
    finished = RunRecord.new("finished", _config(steps=2))
    finished.status = "completed"
    s1.create_run(finished)
    s1.add_steps("finished", [{**m, "step": i} for i, m in enumerate([_STEP, _STEP], start=1)])
    s1.add_probe("finished", 2, b"frame")
    s1.save_checkpoint("finished", 2, b"weights")
    crashed = RunRecord.new("crashed", _config())
    crashed.status = "running"
    s1.create_run(crashed)
    wait_steps(s1, b.id, 3)
    s1.create_run(RunRecord.new("waiting", _config(steps=5)))

    m1.shutdown()
    rb = s1.get_run(b.id)
    assert rb is not None and rb.status == "interrupted" and rb.error == SHUTDOWN_ERROR and rb.step >= 3
    assert isinstance(r1.of(b.id)[-1], EndMessage) and m1.running() == []
    assert _load(s1.checkpoint(b.id))["step"] == rb.step  # the weights of its last step
    before = {run_id: s1.get_run(run_id) for run_id in ("finished", b.id)}
    finished_metrics = s1.metrics("finished")
    s1.close()

    m2, s2, _ = make(max_runs=1, data_dir=data)  # the next server start
    rc = s2.get_run("crashed")
    assert rc is not None and rc.status == "interrupted" and rc.error == INTERRUPTED_ERROR
    assert rc.finished_at is not None
    assert m2.running() == ["waiting"]  # requeued and started
    m2.stop("waiting")
    assert wait_finished(s2, "waiting").status == "stopped"
    assert {run_id: s2.get_run(run_id) for run_id in before} == before  # finished runs are intact
    assert s2.metrics("finished") == finished_metrics and len(finished_metrics) == 2
    assert s2.probe("finished") == b"frame" and s2.checkpoint("finished") == b"weights"
    assert len(s2.metrics(b.id)) == rb.step


_SERVER = """
import sys, time
from pathlib import Path
from app.services.manager import RunManager
from app.services.schemas import RunCreate
from app.services.storage import Storage

storage = Storage(Path(sys.argv[1]))
manager = RunManager(storage, 1)
manager.start()
run = manager.submit(RunCreate.model_validate_json(sys.argv[2]))
while storage.get_run(run.id).step < 3:
    time.sleep(0.01)
print(run.id, manager.worker_pid(run.id), flush=True)
time.sleep(600)
"""


def _exited(pid: int) -> bool:
    """True once `pid` is gone or a zombie (an orphan may wait for a reaper that never comes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_crashed_server_leaves_no_worker_and_its_run_is_interrupted(tmp_path: Path, make: Make) -> None:
    data = tmp_path / "crash"
    config = _config(steps=LONG, probe_every=0).model_dump_json()
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    log = tmp_path / "server.log"  # its stderr: the orphaned resource tracker reports the Event it frees
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(data), config],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        ) as server,
    ):
        assert server.stdout is not None
        line = server.stdout.readline()
        server.kill()  # kill -9 of the server itself
        server.wait()
    assert line, f"the server subprocess failed:\n{log.read_text()}"
    run_id, pid = line.split()
    wait_for(lambda: _exited(int(pid)), timeout=60, what="the orphaned worker to exit")

    _, storage, _ = make(data_dir=data)
    record = storage.get_run(run_id)
    assert record is not None and record.status == "interrupted" and record.error == INTERRUPTED_ERROR
    assert record.step >= 3 and len(storage.metrics(run_id)) == record.step


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_pause_holds_the_worker_without_cpu_then_resume_and_stop(make: Make) -> None:
    manager, storage, recorder = make(max_runs=1)
    record = manager.submit(_config(steps=LONG, probe_every=0))
    queued = manager.submit(_config())
    with pytest.raises(WrongState, match=r"only a running or paused run can pause: run \w+ is queued"):
        manager.pause(queued.id)
    wait_steps(storage, record.id, 2)
    assert manager.pause(record.id).id == record.id
    wait_for(lambda: (storage.get_run(record.id) or record).status == "paused", what="the pause")
    pid = manager.worker_pid(record.id)
    assert pid is not None
    step, cpu = (storage.get_run(record.id) or record).step, _cpu_seconds(pid)
    time.sleep(1.0)
    assert (storage.get_run(record.id) or record).step == step  # not a step while paused
    assert _cpu_seconds(pid) - cpu < 0.1  # waits on its pipe
    statuses = [m.run.status for m in recorder.of(record.id) if isinstance(m, StatusMessage)]
    assert statuses == ["running", "paused"]
    manager.resume(record.id)
    wait_steps(storage, record.id, step + 2)
    assert (storage.get_run(record.id) or record).status == "running"
    manager.pause(record.id)
    wait_for(lambda: (storage.get_run(record.id) or record).status == "paused", what="the second pause")
    manager.stop(record.id)  # a paused run stops
    stopped = wait_finished(storage, record.id, timeout=10)
    assert stopped.status == "stopped" and stopped.error is None
    assert [m["step"] for m in storage.metrics(record.id)] == list(range(1, stopped.step + 1))
    with pytest.raises(WrongState, match=r"only a running or paused run can resume: run \w+ is stopped"):
        manager.resume(record.id)
    with pytest.raises(RunNotFound):
        manager.pause("nosuchrun")
    wait_finished(storage, queued.id)


def test_a_queued_fork_outlives_its_parent_and_a_restart_and_trains_on_from_its_step(
    make: Make, tmp_path: Path
) -> None:
    data = tmp_path / "forks"
    m1, s1, _ = make(max_runs=1, data_dir=data)
    parent = m1.submit(_config())
    assert wait_finished(s1, parent.id).status == "completed"
    assert s1.snapshot_steps(parent.id) == [0, 10, 20, 30]
    with pytest.raises(
        Refused, match=f"run {parent.id} has no stored state at step 5: the nearest stored steps are 0 and 10"
    ):
        m1.fork(parent.id, 5, {})
    with pytest.raises(RunNotFound):
        m1.fork("nosuchrun", 0, {})
    s1.create_run(RunRecord.attached("att", ATTACHED, group="g"))
    with pytest.raises(WrongState, match="run att has no stored training state; forks are for built-in runs"):
        m1.fork("att", 0, {})
    blocker = m1.submit(_config(steps=LONG, probe_every=0))  # holds the only slot
    wait_steps(s1, blocker.id, 1)
    fork = m1.fork(parent.id, 10, {"lr": 0.01})
    assert fork.status == "queued" and fork.step == 10 and m1.queued() == [fork.id]
    assert fork.fork is not None and (fork.fork.parent, fork.fork.step) == (parent.id, 10)
    assert fork.to_public().config == _config(
        optimizer={"name": "adam", "lr": 0.01}, name=f"{parent.id} · fork @10"
    )
    m1.delete(parent.id)  # the fork keeps its own copy of the snapshot
    m1.shutdown()
    s1.close()

    m2, s2, _ = make(max_runs=1, data_dir=data)  # the next start requeues it
    done = wait_finished(s2, fork.id)
    assert done.status == "completed" and done.step == 30
    assert [m["step"] for m in s2.metrics(fork.id)] == list(range(11, 31))
    replay = Trainer(to_train_config(_config()))
    for _ in range(10):
        assert replay.train_step() is not None
    replay.apply({"lr": 0.01})
    for _ in range(20):
        assert replay.train_step() is not None
    weights = _load(m2.checkpoint(fork.id))["state_dict"]
    assert all(torch.equal(weights[k], v) for k, v in replay.net.rnn.state_dict().items())
    assert s2.snapshot_steps(fork.id) == [10, 20, 30]
    assert s2.run_bytes(fork.id) > sum(len(s2.snapshot(fork.id, k) or b"") for k in (10, 20, 30)) > 0

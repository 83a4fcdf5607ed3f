"""The Ray executor on a real local Ray cluster: a head and a second node started with `ray start` on
loopback by the module's fixture (1 CPU each), and always stopped.

Runs train end to end through the manager and through the real app (API + websocket); stop,
pause/resume and an intervention reach the actor; a killed actor process and a lost node end the
run with a sentence; a new manager on the same database reattaches a run still training (after
the first one shut down, and after a kill -9 of a server process) and it completes with every
step; an unreachable cluster leaves the server serving stored runs with a 503 for new ones (in a
subprocess: this process is connected to the fixture's cluster).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
import torch
from starlette.testclient import TestClient

from app.main import create_app
from app.services.executors.ray_actor import RayExecutor
from app.services.manager import RunManager
from app.services.messages import InterventionMessage, ProbeMessage, StepMessage
from app.services.storage import Storage
from app.settings import Settings
from tests.services.test_manager import LONG, REPO_ROOT, Recorder, _config, wait_finished, wait_for
from tests.web.test_ws import Stream

RAY = str(Path(sys.executable).parent / "ray")
ENV = {
    **os.environ,
    "RAY_USAGE_STATS_ENABLED": "0",
    # a lost node is noticed in a few seconds, not the default ~30
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}
OBJECT_STORE = str(100 * 2**20)
DIED = "the Ray actor training this run died: "


@dataclass
class Cluster:
    address: str
    second_port: int  # the second node's raylet port (--node-manager-port): how the test finds it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray(*args: str) -> None:
    subprocess.run([RAY, *args], env=ENV, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    port, second = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="gsr", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", f"--object-store-memory={OBJECT_STORE}"]
    try:
        head = ["--head", f"--port={port}", "--include-dashboard=false", "--disable-usage-stats"]
        _ray("start", *head, *common, f"--temp-dir={temp}")
        _ray("start", f"--address=127.0.0.1:{port}", *common, f"--node-manager-port={second}")
        yield Cluster(f"127.0.0.1:{port}", second)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def manager(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[RunManager, Recorder]]:
    recorder = Recorder()
    executor = RayExecutor(cluster.address, None)
    assert executor.error is None
    run_manager = RunManager(Storage(tmp_path), executor.capacity(), recorder, executor=executor)
    run_manager.start()
    try:
        yield run_manager, recorder
    finally:
        for run_id in run_manager.running():
            run_manager.stop(run_id)
        wait_for(lambda: not run_manager.running(), timeout=30, what="the runs to stop")
        run_manager.shutdown()
        run_manager.storage.close()


def _node_ids() -> set[str]:
    return {n["NodeID"][:8] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]


def _wait_steps(storage: Storage, run_id: str, steps: int, timeout: float = 60) -> None:
    def trained() -> bool:
        record = storage.get_run(run_id)
        return record is not None and record.step >= steps

    wait_for(trained, timeout=timeout, what=f"{steps} steps of run {run_id}")


def _steps(storage: Storage, run_id: str) -> list[int]:
    return [int(m["step"]) for m in storage.metrics(run_id)]


def test_a_run_trains_on_ray_with_live_steps_frames_and_its_node(
    manager: tuple[RunManager, Recorder],
) -> None:
    run_manager, recorder = manager
    assert run_manager.max_runs == 2  # MAX_RUNS: the cluster's CPUs
    record = run_manager.submit(_config(steps=60, probe_every=20))
    done = wait_finished(run_manager.storage, record.id, timeout=60)
    assert (done.status, done.error, done.step, done.executor) == ("completed", None, 60, "ray")
    assert done.node is not None and done.node.split("/")[1] in _node_ids()
    assert _steps(run_manager.storage, record.id) == list(range(1, 61))
    assert run_manager.storage.probe_steps(record.id) == [0, 20, 40, 60]
    live = recorder.of(record.id)
    assert [m.step for m in live if isinstance(m, ProbeMessage)] == [0, 20, 40, 60]
    assert sum(isinstance(m, StepMessage) for m in live) == 60
    checkpoint = run_manager.checkpoint(record.id)
    assert checkpoint is not None and torch.load(io.BytesIO(checkpoint), weights_only=True)["step"] == 60
    name = f"run-{record.id}"
    wait_for(lambda: _actor_gone(name), timeout=20, what="the actor to exit itself after its end")


def _actor_gone(name: str) -> bool:
    try:
        ray.get_actor(name, namespace="gatescope")
    except ValueError:
        return True
    return False


def test_pause_intervene_resume_and_stop_reach_the_actor(manager: tuple[RunManager, Recorder]) -> None:
    run_manager, recorder = manager
    storage = run_manager.storage
    record = run_manager.submit(_config(steps=LONG, probe_every=0))
    wait_for(lambda: (storage.get_run(record.id) or record).step >= 20, timeout=60, what="steps")
    run_manager.pause(record.id)
    wait_for(lambda: (storage.get_run(record.id) or record).status == "paused", timeout=20, what="a pause")
    step = (storage.get_run(record.id) or record).step
    intervention = run_manager.intervene(record.id, {"lr": 0.01})
    wait_for(lambda: bool(storage.interventions(record.id)), timeout=20, what="the intervention")
    (applied,) = storage.interventions(record.id)
    assert (applied.id, applied.step, applied.changes) == (intervention, step, {"lr": 0.01})
    assert any(isinstance(m, InterventionMessage) for m in recorder.of(record.id))
    time.sleep(0.5)
    assert (storage.get_run(record.id) or record).step == step  # no step while paused
    run_manager.resume(record.id)
    wait_for(lambda: (storage.get_run(record.id) or record).step > step + 10, timeout=20, what="steps again")
    assert storage.metrics(record.id)[-1]["lr"] == pytest.approx(0.01)
    run_manager.stop(record.id)
    done = wait_finished(storage, record.id, timeout=30)
    assert (done.status, done.error) == ("stopped", None)
    assert _steps(storage, record.id) == list(range(1, done.step + 1))


def test_a_killed_actor_process_fails_the_run_with_a_sentence(manager: tuple[RunManager, Recorder]) -> None:
    run_manager, _ = manager
    record = run_manager.submit(_config(steps=LONG, probe_every=0))
    wait_for(lambda: (run_manager.storage.get_run(record.id) or record).step >= 5, timeout=60, what="steps")
    pid = run_manager.worker_pid(record.id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the actor's process: it is on this machine, like both nodes
    done = wait_finished(run_manager.storage, record.id, timeout=30)
    assert done.status == "failed" and done.error is not None and done.error.startswith(DIED), done.error


def test_a_new_manager_reattaches_a_run_still_training(cluster: Cluster, tmp_path: Path) -> None:
    first = RunManager(Storage(tmp_path), 2, Recorder(), executor=RayExecutor(cluster.address, None))
    first.start()
    record = first.submit(_config(steps=3000, probe_every=1000))
    wait_for(lambda: (first.storage.get_run(record.id) or record).step >= 50, timeout=60, what="steps")
    first.shutdown()  # the server goes away: the actor trains on, buffering
    left = first.storage.get_run(record.id)
    assert left is not None and left.status == "running" and left.step < 3000
    first.storage.close()
    recorder = Recorder()
    second = RunManager(Storage(tmp_path), 2, recorder, executor=RayExecutor(cluster.address, None))
    second.start()
    try:
        assert second.running() == [record.id]
        done = wait_finished(second.storage, record.id, timeout=60)
        assert (done.status, done.error, done.step) == ("completed", None, 3000)
        assert _steps(second.storage, record.id) == list(range(1, 3001))  # nothing lost, nothing twice
        assert second.storage.probe_steps(record.id) == [0, 1000, 2000, 3000]
        assert done.node == left.node
        wait_for(lambda: _actor_gone(f"run-{record.id}"), timeout=20, what="the actor to exit after its end")
    finally:
        second.shutdown()
        second.storage.close()


CRASHING = """
import sys, time
from pathlib import Path
from app.services.executors.ray_actor import RayExecutor
from app.services.manager import RunManager
from app.services.storage import Storage
from tests.services.test_manager import _config

storage = Storage(Path(sys.argv[1]))
manager = RunManager(storage, 2, None, executor=RayExecutor(sys.argv[2], None))
manager.start()
run = manager.submit(_config(steps=3000, probe_every=1000))
deadline = time.monotonic() + 60
while (storage.get_run(run.id) or run).step < 50 and time.monotonic() < deadline:
    time.sleep(0.02)
print(run.id, flush=True)
time.sleep(120)  # killed before
"""


def test_a_run_outlives_a_killed_server_and_is_reattached(cluster: Cluster, tmp_path: Path) -> None:
    """kill -9 of the server: what it had received but not stored comes again, once."""
    with subprocess.Popen(
        [sys.executable, "-c", CRASHING, str(tmp_path), cluster.address],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            run_id = server.stdout.readline().strip()  # within 60 s of its start (the script's deadline)
        finally:
            server.kill()
            server.wait(30)
    assert run_id, "the server made no run"
    second = RunManager(Storage(tmp_path), 2, Recorder(), executor=RayExecutor(cluster.address, None))
    second.start()
    try:
        assert second.running() == [run_id]
        done = wait_finished(second.storage, run_id, timeout=60)
        assert (done.status, done.error, done.step) == ("completed", None, 3000)
        assert _steps(second.storage, run_id) == list(range(1, 3001))
        wait_for(lambda: _actor_gone(f"run-{run_id}"), timeout=20, what="the actor to exit after its end")
    finally:
        second.shutdown()
        second.storage.close()


def test_the_api_and_websocket_serve_a_run_trained_on_ray(cluster: Cluster, tmp_path: Path) -> None:
    body = {**_config(steps=40, probe_every=20).model_dump(mode="json")}
    with TestClient(create_app(Settings(data_dir=tmp_path, ray_address=cluster.address))) as client:
        health = client.get("/api/health").json()
        assert (health["executor"], health["executor_error"]) == ("ray", None)
        submitted = time.monotonic()
        run_id = client.post("/api/runs", json=body).json()["id"]
        with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            stream = Stream().read(ws)
        # promptly: the earlier tests' actors have all exited, none holds a CPU waiting for its
        # end to be acknowledged (reap waits for the actor to take it)
        assert time.monotonic() - submitted < 60
        assert stream.steps() == list(range(1, 41))
        assert [m["frame"].step for m in stream.of("probe")][-1] == 40
        run = stream.messages[-1]["run"]
        assert (run["status"], run["executor"]) == ("completed", "ray") and run["node"]
        assert client.get(f"/api/runs/{run_id}").json()["node"] == run["node"]
        checkpoint = client.get(f"/api/runs/{run_id}/checkpoint")
        assert checkpoint.status_code == 200 and torch.load(io.BytesIO(checkpoint.content), weights_only=True)
        inspected = client.post(f"/api/runs/{run_id}/inspect?format=json", json={"probe": True})
        assert inspected.status_code == 200, inspected.text


UNREACHABLE = """
import json, sys
from pathlib import Path
from starlette.testclient import TestClient
from app.main import create_app
from app.settings import Settings
from tests.web.conftest import HELLO, seed_run
from app.services.storage import Storage

data, address = Path(sys.argv[1]), sys.argv[2]
with Storage(data) as storage:
    stored = seed_run(storage, HELLO)
with TestClient(create_app(Settings(data_dir=data, ray_address=address))) as client:
    created = client.post("/api/runs", json=HELLO)
    print(json.dumps({
        "health": client.get("/api/health").json(),
        "stored": client.get(f"/api/runs/{stored}").json()["status"],
        "frames": client.get(f"/api/runs/{stored}/probes").status_code,
        "created": [created.status_code, created.json()["detail"], created.headers.get("retry-after")],
        "ray": "ray" in sys.modules,
    }))
"""


def test_an_unreachable_cluster_still_serves_stored_runs_and_refuses_new_ones(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", UNREACHABLE, str(tmp_path), address],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert time.monotonic() - started < 60
    assert answer["ray"]  # configured, it is imported (test_executors: not otherwise)
    assert answer["stored"] == "completed" and answer["frames"] == 200
    status, detail, retry = answer["created"]
    assert status == 503 and retry is None  # no use retrying: the server must be restarted
    assert detail.startswith(f"no run can start: the Ray cluster at {address} is unreachable: "), detail
    assert answer["health"]["executor"] == "ray" and address in answer["health"]["executor_error"]
    assert out.stderr.count("the Ray cluster at") == 1  # the one clear error in the log, not one per refusal


def _processes_of_node(port: int) -> list[int]:
    """The pids of the node whose raylet listens on `port`, and of everything under it."""
    raylets = [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and f"--node_manager_port={port}" in _cmdline(int(pid))
    ]
    found, todo = [], list(raylets)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(child for child in _children(pid) if child not in found)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return [int(c) for t in tasks for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except OSError:
        return []


def test_a_lost_node_ends_its_run_with_a_sentence(
    manager: tuple[RunManager, Recorder], cluster: Cluster
) -> None:
    """Last in the module: the cluster has one node less afterwards."""
    run_manager, _ = manager
    storage = run_manager.storage
    records = [run_manager.submit(_config(steps=LONG, probe_every=0)) for _ in range(2)]  # one per node
    for r in records:
        _wait_steps(storage, r.id, 5)
    pids = _processes_of_node(cluster.second_port)
    assert pids, "the second node's raylet"
    on_second = [r.id for r in records if run_manager.worker_pid(r.id) in pids]
    assert len(on_second) == 1, "one run on each node"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    lost = wait_finished(storage, on_second[0], timeout=60)
    assert lost.status in ("failed", "interrupted") and lost.error and lost.error.startswith(DIED), lost.error
    (other,) = [r.id for r in records if r.id != on_second[0]]
    step = (storage.get_run(other) or records[0]).step
    wait_for(lambda: (storage.get_run(other) or records[0]).step > step, timeout=20, what="the other run")

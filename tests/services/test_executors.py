"""The executor interface with the local executor (real spawned workers), and that nothing imports Ray
unless GATESCOPE_RAY_ADDRESS is set. The Ray executor's tests are in test_ray.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.services.executors import RunWorker, make_executor
from app.services.executors.local import LocalExecutor
from app.settings import Settings
from tests.services.test_manager import LONG, REPO_ROOT, _config


def _messages(run: RunWorker, until: str, timeout: float = 60.0) -> list[tuple[Any, ...]]:
    """The worker's messages up to the first of kind `until` (or its end)."""
    got: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = run.recv(0.05)
        if message is not None:
            got.append(message)
            if message[0] in (until, "end", "error"):
                return got
    raise AssertionError(f"no {until!r} message within {timeout} s")


def test_the_local_executor_runs_a_worker_and_says_how_it_ended(tmp_path: Path) -> None:
    executor = make_executor(Settings(data_dir=tmp_path, max_runs=3))
    assert isinstance(executor, LocalExecutor) and (executor.name, executor.capacity()) == ("local", 3)
    assert not executor.detaches and executor.reattach("any") == "its worker process ended with the server"
    executor.check()  # never refuses
    done = executor.launch("done", _config(steps=12, probe_every=6).model_dump_json(), None)
    assert done.where == ("local", socket.gethostname()) and done.pid is None
    done.start()
    assert done.pid is not None
    kinds = [m[0] for m in _messages(done, "end")]
    assert kinds.count("step") == 12 and kinds.count("probe") == 3 and kinds[-1] == "end"
    done.committed()  # nothing buffered: a no-op
    assert done.reap(5.0) == "worker exited with code 0"

    paused = executor.launch("paused", _config(steps=LONG, probe_every=0).model_dump_json(), None)
    paused.start()
    _messages(paused, "step")
    paused.control(("pause",))
    assert _messages(paused, "paused")[-1][0] == "paused"
    paused.terminate()  # SIGTERM, whatever it is doing
    assert paused.reap(5.0) == "worker exited with code -15"

    never = executor.launch("never", _config().model_dump_json(), None)
    assert never.reap(1.0) == "the worker never started"


def test_stop_sets_the_flag_the_worker_stops_on(tmp_path: Path) -> None:
    run = LocalExecutor(1).launch("stop", _config(steps=LONG, probe_every=0).model_dump_json(), None)
    run.start()
    _messages(run, "step")
    run.stop()
    end = _messages(run, "end")[-1]
    assert end[:2] == ("end", "stopped")
    assert run.reap(5.0) == "worker exited with code 0"


NO_RAY = """
import sys
from pathlib import Path
from starlette.testclient import TestClient
from app.main import create_app
from app.settings import Settings

with TestClient(create_app(Settings(data_dir=Path(sys.argv[1])))) as client:
    assert client.get("/api/health").json()["executor"] == "local"
print("ray" in sys.modules)
"""


def test_nothing_imports_ray_unless_it_is_configured(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_RAY, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"

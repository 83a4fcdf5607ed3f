"""The examples/ scripts, run as a person runs them, against a live server and through a run file.

Each example trains a few steps in its own interpreter (`python examples/x.py --server URL`), and
its run must then be on the server: attached, completed, every step's metrics, probe frames at
step 1 and every `--every` steps. The character LSTM's frames carry its characters as tokens
(labels=); the GRU's are of its fixed probe. `--server none` writes a run file, and
`python -m app import FILE --server URL` brings it in with every step and frame.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import REPO_ROOT, LiveServer, serve

STEPS, EVERY = 12, 5
PROBED = [1, 5, 10]  # step 1 and every multiple of EVERY
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("examples-server")) as live:
        yield live


def run(*args: str) -> str:
    """Run a command of the repository in a fresh interpreter; its stdout (stderr on failure)."""
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def example(script: str, server: str, *extra: str) -> str:
    return run(f"examples/{script}", "--server", server, "--steps", str(STEPS), "--every", str(EVERY),
               "--threads", "1", *extra)  # fmt: skip


def attached_runs(http: httpx.Client, name: str) -> dict[str, dict[str, Any]]:
    items = http.get("/api/runs", params={"limit": 500}).json()["items"]
    return {r["id"]: r for r in items if r["kind"] == "attached" and r["config"]["name"] == name}


def check_run(http: httpx.Client, run: dict[str, Any], cell: str) -> dict[str, Any]:
    """The run is complete on the server; its frame at the last probed step, as JSON."""
    assert run["status"] == "completed" and run["config"]["cell"] == cell
    metrics = http.get(f"/api/runs/{run['id']}/metrics").json()
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    assert all(m["loss"] is not None and m["grad_norm"] is not None for m in metrics)
    assert http.get(f"/api/runs/{run['id']}/probes").json() == PROBED
    frame: dict[str, Any] = http.get(
        f"/api/runs/{run['id']}/probes/{PROBED[-1]}", params={"format": "json"}
    ).json()
    return frame


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


def test_the_character_lstm_streams_to_a_live_server(server: LiveServer, http: httpx.Client) -> None:
    out = example("char_lstm.py", server.url)
    (run_id, record), *others = attached_runs(http, "char-lstm").items()
    assert not others and run_id in out  # the script prints its run's id
    assert record["config"]["num_layers"] == 2 and record["config"]["module"] == "lstm"
    frame = check_run(http, record, "lstm")
    tokens = frame["tokens"]
    assert len(tokens) == 64 and all(isinstance(t, str) and len(t) == 1 for t in tokens)  # characters


def test_the_timeseries_gru_streams_its_fixed_probe(server: LiveServer, http: httpx.Client) -> None:
    example("timeseries_gru.py", server.url)
    ((_, record),) = attached_runs(http, "timeseries-gru").items()
    assert record["config"]["batch_first"] is False and record["config"]["probe"] == "fixed"
    frame = check_run(http, record, "gru")
    assert frame["source"] == "fixed" and len(frame["inputs"]) == 120


def test_a_run_file_imports_with_every_step_and_frame(
    server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "gru.gsrun"
    example("timeseries_gru.py", "none", "--out", str(path))
    assert path.stat().st_size > 0
    before = set(attached_runs(http, "timeseries-gru"))
    run("-m", "app", "import", str(path), "--server", server.url)
    new = {k: v for k, v in attached_runs(http, "timeseries-gru").items() if k not in before}
    ((_, record),) = new.items()
    check_run(http, record, "gru")

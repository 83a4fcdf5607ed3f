"""Forking through the API (app/web/forks.py): a fork with no changes reproduces its parent's later
steps bit for bit on CPU; changes apply from the fork's first step; the links both ways; the
refusals (404, 409, 422 with a sentence) create nothing."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from app.core.frames import Frame
from tests.services.test_attached import module
from tests.web.conftest import SLOW, make_app, wait_for
from tests.web.test_ingest import attach

PARENT: dict[str, Any] = {
    "name": "parent",
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 8},
    "batch_size": 8,
    "optimizer": {"name": "adam", "lr": 0.01},
    "clip": {"mode": "norm", "threshold": 0.5},
    "steps": 30,
    "probe_every": 10,
}
TIMING = {"seconds", "time"}  # wall-clock fields: the only ones a fork may not repeat


def _steps(client: TestClient, run_id: str, after: int) -> list[dict[str, Any]]:
    rows = client.get(f"/api/runs/{run_id}/metrics").json()
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows if row["step"] > after]


def _arrays(client: TestClient, run_id: str, step: int) -> dict[str, np.ndarray]:
    answer = client.get(f"/api/runs/{run_id}/probes/{step}")
    assert answer.status_code == 200, answer.text
    return Frame.from_bytes(answer.content).arrays


def _fork(client: TestClient, run_id: str, body: dict[str, Any]) -> Any:
    answer = client.post(f"/api/runs/{run_id}/fork", json=body)
    assert answer.status_code == 201, answer.text
    return wait_for(client, answer.json()["id"])  # the fork, finished


def test_a_fork_with_no_changes_reproduces_its_parents_later_steps_bit_for_bit(client: TestClient) -> None:
    parent = client.post("/api/runs", json=PARENT).json()["id"]
    assert wait_for(client, parent)["status"] == "completed"
    assert client.get(f"/api/runs/{parent}/snapshots").json() == {"steps": [0, 10, 20, 30]}
    fork = _fork(client, parent, {"step": 10})
    assert fork["status"] == "completed" and fork["step"] == 30
    assert fork["fork"] == {"parent": parent, "step": 10, "changes": {}}
    assert fork["name"] == "parent · fork @10"
    assert fork["config"] == {
        **client.get(f"/api/runs/{parent}").json()["config"],
        "name": "parent · fork @10",
    }
    mine, theirs = _steps(client, fork["id"], 10), _steps(client, parent, 10)
    assert len(mine) == 20 and mine == theirs  # losses, metrics, grad norms (global and per parameter), ...
    assert client.get(f"/api/runs/{fork['id']}/probes").json() == [10, 20, 30]
    for step in (10, 20, 30):
        a, b = _arrays(client, fork["id"], step), _arrays(client, parent, step)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a), step
    assert client.get(f"/api/runs/{parent}").json()["forks"] == [{"id": fork["id"], "step": 10}]
    listed = {run["id"]: run["parent"] for run in client.get("/api/runs").json()["items"]}
    assert listed == {fork["id"]: parent, parent: None}
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{fork['id']}/export").content)) as archive:
        assert json.loads(archive.read("fork.json")) == fork["fork"]  # the export keeps the link


def test_a_forks_changes_apply_from_its_first_step_and_its_config_says_so(client: TestClient) -> None:
    parent = client.post("/api/runs", json={**PARENT, "steps": 20}).json()["id"]
    wait_for(client, parent)
    changes = {
        "lr": 0.1,
        "clip": {"mode": "off", "threshold": 1.0},
        "optimizer": {"name": "sgd", "reset_state": True},
    }
    fork = _fork(client, parent, {"step": 10, "changes": changes, "name": "hotter"})
    assert fork["name"] == "hotter" and fork["fork"]["changes"] == changes
    assert fork["config"]["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.0}
    assert fork["config"]["clip"] == {"mode": "off", "threshold": 1.0}
    mine, theirs = _steps(client, fork["id"], 10), _steps(client, parent, 10)
    assert {row["lr"] for row in mine} == {0.1} and not any(row["clipped"] for row in mine)
    assert mine[0]["loss"] == theirs[0]["loss"]  # step 11's loss comes before its update ...
    assert mine[1]["loss"] != theirs[1]["loss"]  # ... and the update was another one


def test_refused_forks_say_why_and_create_nothing(client: TestClient) -> None:
    parent = client.post("/api/runs", json={**PARENT, "cell": "gru", "steps": 20}).json()["id"]
    wait_for(client, parent)
    (attached,) = attach(client, module())
    before = client.get("/api/runs").json()["total"]
    for run_id, body, status, words in [
        ("nosuchrun", {"step": 0}, 404, "nosuchrun"),
        (
            attached,
            {"step": 0},
            409,
            f"run {attached} has no stored training state; forks are for built-in runs",
        ),
        (
            parent,
            {"step": 15},
            422,
            f"run {parent} has no stored state at step 15: the nearest stored steps are 10 and 20",
        ),
        (parent, {"step": 99}, 422, "the nearest stored step is 20"),
        (parent, {"step": 10, "changes": {"lr": 20}}, 422, "10"),
        (
            parent,
            {"step": 10, "changes": {"forget_bias": 1.0}},
            422,
            "forget_bias applies to the cells with a forget gate (lstm, minlstm, slstm), and this run is gru",
        ),
        (
            parent,
            {"step": 10, "changes": {"rescale": {"layer": 1, "radius": 1.0}}},
            422,
            "rescale.layer must be at most 0",
        ),
        (
            parent,
            {"step": 10, "changes": {"optimizer": {"name": "sgd"}}},
            422,
            "optimizer.reset_state must be true",
        ),
        (parent, {"step": 10, "changes": {"lr": None}}, 422, "lr cannot be null"),
        (parent, {"step": 10, "extra": 1}, 422, "extra"),
    ]:
        answer = client.post(f"/api/runs/{run_id}/fork", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in json.dumps(answer.json()["detail"]), (body, answer.text)
    assert client.get("/api/runs").json()["total"] == before
    assert client.get(f"/api/runs/{parent}").json()["forks"] == []
    assert client.get(f"/api/runs/{attached}/snapshots").json() == {"steps": []}


def test_a_running_run_forks_from_a_step_it_has_stored(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=2)) as http:
        parent = http.post("/api/runs", json=SLOW).json()["id"]
        deadline = time.monotonic() + 120
        while not (steps := http.get(f"/api/runs/{parent}/snapshots").json()["steps"]):
            assert time.monotonic() < deadline, "no snapshot yet"
            time.sleep(0.1)
        answer = http.post(f"/api/runs/{parent}/fork", json={"step": steps[-1]})
        assert answer.status_code == 201, answer.text
        fork = answer.json()
        assert fork["status"] in ("queued", "running") and fork["step"] == steps[-1]
        assert http.get(f"/api/runs/{parent}").json()["status"] == "running"  # the parent trains on
        for run_id in (fork["id"], parent):
            http.post(f"/api/runs/{run_id}/stop")
            assert wait_for(http, run_id)["status"] == "stopped"

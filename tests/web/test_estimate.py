"""POST /api/runs/estimate, the cost limits at run creation, and queue positions, in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.web.conftest import ADDING, SLOW, make_app, wait_for

# the run: 3 layers, bidirectional, H=512, T=1000 (~90 s per step and 10 GB, measured)
MONSTER: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 512,
    "num_layers": 3,
    "bidirectional": True,
    "task": {"name": "adding", "seq_len": 1000},
}


def test_an_estimate_has_time_memory_eta_and_the_limits(client: TestClient) -> None:
    body = client.post("/api/runs/estimate", json=ADDING).json()
    assert set(body) == {
        "seconds_per_step",
        "train_seconds",
        "probe_seconds",
        "memory_bytes",
        "eta_seconds",
        "factor",
        "limits",
        "problems",
    }
    assert 0 < body["train_seconds"] <= body["seconds_per_step"] < 1
    assert body["eta_seconds"] > ADDING["steps"] * body["seconds_per_step"]
    assert 100 * 2**20 < body["memory_bytes"] < 2**30
    assert body["limits"] == {"seconds_per_step": 10.0, "memory_bytes": 4096 * 2**20}  # the defaults
    assert body["problems"] == [] and body["factor"] == 2.0


def test_a_run_beyond_the_limits_is_refused_with_what_to_lower(client: TestClient) -> None:
    problems = client.post("/api/runs/estimate", json=MONSTER).json()["problems"]
    assert len(problems) == 2
    time, memory = problems
    assert "per step, beyond this server's limit of 10 s (GATESCOPE_MAX_STEP_SECONDS)" in time
    assert "lower hidden size, layers, bidirectional, batch size or the task's sequence length" in time
    assert "MB of memory, beyond this server's limit of 4,096 MB (GATESCOPE_MAX_RUN_MEMORY_MB)" in memory
    assert memory.endswith("or set truncated BPTT")
    answer = client.post("/api/runs", json=MONSTER)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "; ".join(problems)}
    compared = client.post("/api/compare", json={"config": MONSTER})
    assert compared.status_code == 422 and "GATESCOPE_MAX_STEP_SECONDS" in compared.json()["detail"]
    grouped = client.post(
        "/api/groups", json={"runs": [{"name": "a", "config": ADDING}, {"name": "b", "config": MONSTER}]}
    )
    assert grouped.status_code == 422 and "GATESCOPE_MAX_RUN_MEMORY_MB" in grouped.json()["detail"]
    assert client.get("/api/runs").json()["total"] == 0  # nothing half-stored


def test_the_limits_are_the_servers_settings(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_step_seconds=1e-4, max_run_memory_mb=100_000)) as client:
        body = client.post("/api/runs/estimate", json=ADDING).json()
        assert body["limits"] == {"seconds_per_step": 1e-4, "memory_bytes": 100_000 * 2**20}
        assert len(body["problems"]) == 1 and "limit of 0.0001 s" in body["problems"][0]
        assert client.post("/api/runs", json=ADDING).status_code == 422
        probing = {**ADDING, "probe_every": 1, "task": {"name": "copy", "seq_len": 20}}
        assert "probe less (a larger probe every" in client.post("/api/runs", json=probing).json()["detail"]


def test_an_invalid_config_is_answered_as_at_creation(client: TestClient) -> None:
    answer = client.post("/api/runs/estimate", json={**ADDING, "hidden_size": 513})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "hidden_size"] and "512" in error["msg"]


def test_queued_runs_know_how_many_are_ahead_everywhere(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as client:
        first, second, third = (client.post("/api/runs", json=SLOW).json() for _ in range(3))
        assert (second["queue_position"], third["queue_position"]) == (0, 1)
        assert client.get(f"/api/runs/{first['id']}").json()["queue_position"] is None  # running
        assert client.get(f"/api/runs/{third['id']}").json()["queue_position"] == 1
        listed = {r["id"]: r["queue_position"] for r in client.get("/api/runs").json()["items"]}
        assert listed == {first["id"]: None, second["id"]: 0, third["id"]: 1}
        with client.websocket_connect(f"/ws/runs/{third['id']}") as ws:
            snapshot = json.loads(ws.receive_text())
            assert snapshot["type"] == "snapshot" and snapshot["run"]["queue_position"] == 1
            client.post(f"/api/runs/{first['id']}/stop")  # the queue moves up: the viewer is told
            status = json.loads(ws.receive_text())  # the first run's end starts the second
            assert status["type"] == "status" and status["run"]["queue_position"] == 0
        wait_for(client, second["id"], statuses=frozenset({"running"}))
        assert client.get(f"/api/runs/{third['id']}").json()["queue_position"] == 0
        for run in (second, third):
            client.post(f"/api/runs/{run['id']}/stop")

"""/api/sweeps: create (201, 422 naming the path and value or the count, 429, 507, the rate limit
counting a sweep once, the token), list (?run=), get, stop and delete, and 404 sentences."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.services import manager as manager_module
from tests.web.conftest import SLOW, make_app

TINY: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 4,
    "task": {"name": "recall", "seq_len": 5},
    "batch_size": 4,
    "steps": 12,
    "probe_every": 5,
}


def total(client: TestClient) -> int:
    return int(client.get("/api/runs").json()["total"])


def test_a_sweep_is_made_listed_read_stopped_and_deleted(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as client:
        answer = client.post(
            "/api/sweeps", json={"base": SLOW, "grid": {"seed": [0, 1, 2], "init.gain": [0.5, 2]}}
        )
        assert answer.status_code == 201, answer.text
        sweep = answer.json()
        assert sweep["name"] == "seed × init.gain" and sweep["total"] == 6
        assert sweep["base"]["cell"] == "lstm" and sweep["grid"] == {"seed": [0, 1, 2], "init.gain": [0.5, 2]}
        assert [r["name"] for r in sweep["runs"][:2]] == ["seed 0 · gain 0.5", "seed 0 · gain 2"]
        assert sweep["counts"]["queued"] >= 5  # one training slot
        first = client.get(f"/api/runs/{sweep['runs'][0]['id']}").json()
        assert first["group"] == sweep["id"] and first["config"]["init"]["gain"] == 0.5
        listed = client.get("/api/sweeps").json()
        assert [(s["id"], s["total"]) for s in listed] == [(sweep["id"], 6)] and "runs" not in listed[0]
        assert client.get(f"/api/sweeps?run={first['id']}").json()[0]["id"] == sweep["id"]
        assert client.get("/api/sweeps?run=nothing").json() == []
        got = client.get(f"/api/sweeps/{sweep['id']}").json()
        assert [r["id"] for r in got["runs"]] == [r["id"] for r in sweep["runs"]]
        assert {"loss", "baseline", "relative", "ratio", "step", "steps", "params"} <= set(got["runs"][0])

        stopped = client.post(f"/api/sweeps/{sweep['id']}/stop")
        assert stopped.status_code == 200 and "queued" not in stopped.json()["counts"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/sweeps/{sweep['id']}").json()["done"] < 6:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.get(f"/api/sweeps/{sweep['id']}").json()["counts"] == {"stopped": 6}

        assert client.delete(f"/api/sweeps/{sweep['id']}").status_code == 204
        assert total(client) == 0 and client.get("/api/sweeps").json() == []
        for method, path in (("get", ""), ("post", "/stop"), ("delete", "")):
            gone = getattr(client, method)(f"/api/sweeps/{sweep['id']}{path}")
            assert (
                gone.status_code == 404
                and gone.json()["detail"] == f"there is no sweep with id {sweep['id']!r}"
            )


def test_a_finished_sweep_has_every_runs_figures(client: TestClient) -> None:
    sweep = client.post("/api/sweeps", json={"base": TINY, "grid": {"cell": ["rnn_tanh", "gru"]}}).json()
    deadline = time.monotonic() + 90
    while (got := client.get(f"/api/sweeps/{sweep['id']}").json())["done"] < 2:
        assert time.monotonic() < deadline, got["counts"]
        time.sleep(0.1)
    assert got["counts"] == {"completed": 2}
    for run in got["runs"]:
        assert run["step"] == run["steps"] == 12
        assert run["loss"] > 0 and run["relative"] == pytest.approx(run["loss"] / run["baseline"])
        assert run["ratio"] > 0


@pytest.mark.parametrize(
    ("grid", "says"),
    [
        ({"nope": [1]}, "grid path 'nope': a run's config has no field 'nope'"),
        (
            {"init.gain": [0.5, -1]},
            "grid value init.gain = -1 makes an invalid run (init.gain: Input should be greater than 0)",
        ),
        (
            {"seed": list(range(100)), "init.gain": [1.0] * 11},
            "the grid makes 1,100 runs (100 seed × 11 init.gain)",
        ),
        ({"name": ["a"]}, "the grid may not set name"),
    ],
)
def test_a_bad_sweep_is_a_422_sentence_and_starts_no_run(
    client: TestClient, grid: dict[str, Any], says: str
) -> None:
    answer = client.post("/api/sweeps", json={"base": TINY, "grid": grid})
    assert answer.status_code == 422 and says in answer.json()["detail"], answer.text
    assert total(client) == 0 and client.get("/api/sweeps").json() == []


def test_an_empty_or_unknown_body_is_a_422(client: TestClient) -> None:
    for body in (
        {"base": TINY, "grid": {}},
        {"base": TINY, "grid": {"seed": []}},
        {"grid": {"seed": [1]}},
        {"base": TINY, "grid": {"seed": [1]}, "x": 1},
    ):
        assert client.post("/api/sweeps", json=body).status_code == 422, body
    assert total(client) == 0


def test_a_sweep_the_queue_cannot_take_is_a_429_and_starts_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "MAX_QUEUED", 4)
    with TestClient(make_app(tmp_path, max_runs=1)) as client:
        answer = client.post("/api/sweeps", json={"base": SLOW, "grid": {"seed": list(range(5))}})
        assert answer.status_code == 429
        assert answer.json()["detail"].startswith(
            "the queue is full: 0 of its 4 places are taken and these 5 runs"
        )
        assert total(client) == 0 and client.get("/api/sweeps").json() == []


def test_below_the_disk_floor_a_sweep_is_a_507(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, min_free_mb=10**12)) as client:
        answer = client.post("/api/sweeps", json={"base": TINY, "grid": {"seed": [0, 1]}})
        assert answer.status_code == 507 and answer.json()["detail"].startswith("no new run can start")
        assert total(client) == 0 and client.get("/api/sweeps").json() == []


def test_the_rate_limit_counts_a_sweep_once(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1, run_rate=1, run_burst=1)) as client:
        made = client.post("/api/sweeps", json={"base": SLOW, "grid": {"seed": [0, 1, 2]}})
        assert made.status_code == 201 and made.json()["total"] == 3
        limited = client.post("/api/sweeps", json={"base": SLOW, "grid": {"seed": [0]}})
        assert limited.status_code == 429 and limited.json()["detail"].startswith("too many new runs")
        assert total(client) == 3


def test_the_token_guards_sweeps(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, token="secret")) as client:
        assert client.post("/api/sweeps", json={"base": TINY, "grid": {"seed": [0]}}).status_code == 401
        assert client.get("/api/sweeps").status_code == 401
        assert client.get("/api/sweeps", headers={"Authorization": "Bearer secret"}).json() == []

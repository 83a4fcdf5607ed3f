"""POST /api/groups: several named runs queued as one group, all of them or none (422 and 429
leave nothing behind), the request counted once by the run rate limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.services import manager as manager_module
from tests.web.conftest import ADDING, SLOW, make_app


def group(*configs: dict[str, Any]) -> dict[str, Any]:
    return {"runs": [{"name": f"run {i}", "config": c} for i, c in enumerate(configs)]}


def total(client: TestClient) -> int:
    return int(client.get("/api/runs").json()["total"])


def test_a_group_queues_every_run_in_order_with_its_name(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as client:
        body = {
            "runs": [
                {"name": "  tanh RNN ", "config": SLOW},
                {"name": "GRU", "config": {**SLOW, "cell": "gru"}},
                {"name": "adding", "config": {**ADDING, "name": "adding"}},  # the same name twice is fine
            ]
        }
        answer = client.post("/api/groups", json=body)
        assert answer.status_code == 201, answer.text
        runs = answer.json()["runs"]
        assert [r["name"] for r in runs] == ["tanh RNN", "GRU", "adding"]
        assert [r["config"]["cell"] for r in runs] == ["lstm", "gru", "gru"]
        assert {r["group"] for r in runs} == {answer.json()["group"]}
        assert [r["status"] for r in runs[1:]] == ["queued", "queued"]  # one training slot
        for run in runs:
            stored = client.get(f"/api/runs/{run['id']}").json()
            assert stored["name"] == run["name"] and stored["config"]["name"] == run["name"]
        assert total(client) == 3


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (group(ADDING, {**ADDING, "hidden_size": 0}), '"runs",1,"config","hidden_size"'),
        ({"runs": [{"name": " ", "config": ADDING}]}, "must not be blank"),
        ({"runs": [{"name": "a", "config": {**ADDING, "name": "b"}}]}, "give it once"),
        ({"runs": [{"config": ADDING}]}, '"runs",0,"name"'),
        (group(*[ADDING] * 9), "at most 8"),
        ({"runs": []}, "at least 1"),
        ({"runs": [{"name": "a", "config": ADDING}], "extra": 1}, "extra"),
    ],
)
def test_a_bad_group_starts_no_run(client: TestClient, body: dict[str, Any], says: str) -> None:
    answer = client.post("/api/groups", json=body)
    assert answer.status_code == 422 and says in answer.text, answer.text
    assert total(client) == 0


def test_a_group_the_queue_cannot_take_starts_no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager_module, "MAX_QUEUED", 2)
    with TestClient(make_app(tmp_path, max_runs=1)) as client:
        answer = client.post("/api/groups", json=group(SLOW, SLOW, SLOW))
        assert answer.status_code == 429
        assert answer.json()["detail"].startswith(
            "the queue is full: 0 of its 2 places are taken and these 3 runs"
        )
        assert total(client) == 0


def test_the_rate_limit_counts_a_group_once(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1, run_rate=1, run_burst=2)) as client:
        for _ in range(2):  # 3 runs each, one request each: the burst of 2 takes both
            assert client.post("/api/groups", json=group(SLOW, SLOW, SLOW)).status_code == 201
        limited = client.post("/api/groups", json=group(SLOW))
        assert limited.status_code == 429 and limited.json()["detail"].startswith("too many new runs")
        assert total(client) == 6  # the refused group left nothing


HUGE: dict[str, Any] = {  # ~90 s a step and 10 GB (the example): beyond the default limits
    "cell": "lstm",
    "hidden_size": 512,
    "num_layers": 3,
    "bidirectional": True,
    "task": {"name": "adding", "seq_len": 1000},
    "batch_size": 512,
}


def test_a_group_with_a_run_beyond_the_cost_limits_starts_no_run(client: TestClient) -> None:
    answer = client.post(
        "/api/groups", json={"runs": [{"name": "small", "config": ADDING}, {"name": "huge", "config": HUGE}]}
    )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith("runs[1] ('huge'): this run would ") and "lower" in detail
    assert detail.endswith("None of the runs was started")
    assert total(client) == 0

"""The view service and its routes: gradient-flow history, task views, sparklines, the caches' bounds."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from app.core.flow import FlowRows, keep_rows
from app.core.frames import Frame
from app.services.storage import Storage
from app.services.views import LRU, Views, bucket_means
from tests.web.conftest import Served, make_app, wait_for

LONG: dict[str, Any] = {  # T = 1200 > MAX_T: stored with a display frame of 400 columns
    "cell": "gru",
    "hidden_size": 4,
    "task": {"name": "adding", "seq_len": 1200},
    "batch_size": 2,
    "steps": 2,
    "probe_every": 1,
}


def frame_json(client: TestClient, run_id: str, step: int, resolution: str = "full") -> Any:
    answer = client.get(f"/api/runs/{run_id}/probes/{step}?format=json&resolution={resolution}")
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- pure helpers -------------------------------------------------------------------------------


def test_keep_rows_spreads_evenly_and_keeps_first_and_last() -> None:
    assert keep_rows(5, 10) == [0, 1, 2, 3, 4]
    rows = keep_rows(1001, 400)
    assert rows[0] == 0 and rows[-1] == 1000
    assert len(rows) == 400 and rows == sorted(set(rows))
    assert keep_rows(3, 2) == [0, 2]


def test_bucket_means_keeps_the_last_value() -> None:
    steps = array("q", range(1, 101))
    loss = array("d", [float(i) for i in range(100)])
    line = bucket_means(steps, loss, 10)
    assert len(line.loss) == 10 and line.steps[0] == 1 and line.steps[-1] == 100 and line.loss[-1] == 99.0
    assert line.loss[0] == pytest.approx(np.mean(range(11)))


def test_the_lru_is_bounded_in_bytes_and_drops_the_least_recent() -> None:
    cache: LRU[str, bytes] = LRU(10, len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # now "b" is the least recent
    cache.put("c", b"1234")
    assert cache.get("b") is None and cache.get("a") is not None and cache.nbytes == 8
    cache.put("huge", b"x" * 11)  # larger than the bound: not kept, nothing else dropped
    assert cache.get("huge") is None and len(cache) == 2
    cache.put("a", b"123456")  # re-measured when put again
    assert cache.nbytes == 10 and cache.pop("a") == b"123456" and cache.nbytes == 4
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


# -- the gradient-flow history ------------------------------------------------------------------


def test_gradflow_has_a_row_per_probe_frame(served: Served) -> None:
    client = served.client
    steps = client.get(f"/api/runs/{served.hello}/probes").json()
    flow = client.get(f"/api/runs/{served.hello}/gradflow").json()
    assert flow["steps"] == steps and flow["total_rows"] == len(steps)
    assert flow["T"] == 4 and flow["width"] == 1 and flow["t"] == [0, 1, 2, 3] and flow["layer"] == 0
    last = frame_json(client, served.hello, steps[-1])
    assert flow["z"][-1] == pytest.approx(last["grad_h_last"][0])
    assert flow["last_step"] == last["last_step"] == 3
    total = client.get(f"/api/runs/{served.hello}/gradflow?kind=total").json()
    assert total["kind"] == "total" and total["z"][-1] == pytest.approx(last["grad_h"][0])
    assert set(flow["saturation"]) == {"i", "f", "g", "o"}
    assert len(flow["saturation"]["f"]["high"]) == len(steps)
    assert flow["saturation"]["f"]["high"][-1] == last["saturation"]["f"]["high"][0]
    top = client.get(f"/api/runs/{served.hello}/gradflow?layer=5").json()
    assert top["layer"] == 0 and top["z"] == flow["z"]  # one layer: the top one is layer 0


def test_gradflow_thins_rows_keeping_step_zero_and_the_last(served: Served) -> None:
    steps = served.client.get(f"/api/runs/{served.adding}/probes").json()
    assert len(steps) > 3
    flow = served.client.get(f"/api/runs/{served.adding}/gradflow?max_rows=3").json()
    assert flow["steps"][0] == 0 == steps[0] and flow["steps"][-1] == steps[-1] and len(flow["steps"]) == 3
    assert flow["total_rows"] == len(steps) > len(flow["steps"])  # how a page knows rows were thinned
    assert len(flow["z"]) == 3 and all(len(row) == 6 for row in flow["z"])


def test_gradflow_since_answers_only_the_newer_rows(served: Served) -> None:
    client = served.client
    steps = client.get(f"/api/runs/{served.adding}/probes").json()
    whole = client.get(f"/api/runs/{served.adding}/gradflow").json()
    newer = client.get(f"/api/runs/{served.adding}/gradflow?since={steps[1]}").json()
    assert newer["steps"] == steps[2:] and newer["z"] == whole["z"][2:]
    assert newer["saturation"]["z"]["low"] == whole["saturation"]["z"]["low"][2:]
    assert newer["total_rows"] == len(steps) and newer["T"] == whole["T"] and newer["t"] == whole["t"]
    between = client.get(f"/api/runs/{served.adding}/gradflow?since={steps[1] + 1}").json()
    assert between["steps"] == steps[2:]  # a step between two frames
    none = client.get(f"/api/runs/{served.adding}/gradflow?since={steps[-1]}").json()
    assert none["steps"] == [] and none["z"] == [] and none["total_rows"] == len(steps)


def test_gradflow_of_a_long_run_is_at_display_width(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        run = client.post("/api/runs", json=LONG).json()
        assert wait_for(client, run["id"])["status"] == "completed"
        flow = client.get(f"/api/runs/{run['id']}/gradflow").json()
        assert (
            flow["T"] == 1200 and flow["width"] == 3 and flow["t"][:3] == [0, 3, 6] and len(flow["t"]) == 400
        )
        assert all(len(row) == 400 for row in flow["z"]) and flow["last_step"] == 1199
        full = np.array(frame_json(client, run["id"], flow["steps"][-1])["grad_h_last"][0], np.float32)
        row = np.array(flow["z"][-1], np.float32)  # the JSON holds float32 values, shortest form
        np.testing.assert_array_equal(row, full.reshape(400, 3).max(axis=1))
        shown = frame_json(client, run["id"], flow["steps"][-1], "display")
        assert flow["z"][-1] == pytest.approx(shown["grad_h_last"][0])


def test_gradflow_of_a_run_without_frames_is_empty(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as client:
        storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
        run = client.post("/api/runs", json={**LONG, "steps": 1}).json()
        wait_for(client, run["id"])
        with storage._write("test") as conn:
            for table in ("probes", "history"):  # the view reads the history rows
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run["id"],))
        client.app.state.views.flows.clear()  # type: ignore[attr-defined]
        flow = client.get(f"/api/runs/{run['id']}/gradflow").json()
        assert flow == {
            "kind": "last",
            "layer": 0,
            "T": 0,
            "width": 1,
            "t": [],
            "steps": [],
            "z": [],
            "saturation": {},
            "total_rows": 0,
            "last_step": None,
        }


def test_gradflow_refuses_bad_queries_and_unknown_runs(served: Served) -> None:
    client = served.client
    assert client.get("/api/runs/nope/gradflow").status_code == 404
    for query in ("kind=middle", "max_rows=1", "since=-1", "layer=-1"):
        answer = client.get(f"/api/runs/{served.adding}/gradflow?{query}")
        assert answer.status_code == 422, query


def test_the_display_route_is_gone(served: Served) -> None:
    assert served.client.get(f"/api/runs/{served.hello}/display/latest").status_code == 404
    assert not [p for p in served.client.get("/openapi.json").json()["paths"] if "/display/" in p]


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[Storage, str, list[int]]]:
    """A storage that a finished run of LONG left behind (the app closed)."""
    with TestClient(make_app(tmp_path)) as client:
        run_id = client.post("/api/runs", json={**LONG, "steps": 3}).json()["id"]
        wait_for(client, run_id)
        steps = client.get(f"/api/runs/{run_id}/probes").json()
    storage = Storage(tmp_path)
    yield storage, run_id, steps
    storage.close()


def test_remembered_frames_are_never_read_again(
    stored: tuple[Storage, str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, run_id, steps = stored
    views = Views(storage)
    for step in steps:
        data = storage.probe(run_id, step, resolution="display")
        assert data is not None
        views.remember(run_id, step, data)
    reads: list[int | None] = []
    real = storage.history  # what the view reads: the history rows

    def counted(run: str, step: int) -> bytes | None:
        reads.append(step)
        return real(run, step)

    monkeypatch.setattr(storage, "history", counted)
    flow = views.gradflow(run_id, "last", 0, 2000)
    assert flow.steps == steps and reads == []  # every row from the cache
    cold = Views(storage)
    assert cold.gradflow(run_id, "last", 0, 2000).steps == steps and reads == steps  # read once each
    cold.gradflow(run_id, "total", 0, 2000)
    assert reads == steps  # the other kind comes from the same cached rows


def test_the_flow_cache_holds_its_byte_bound(stored: tuple[Storage, str, list[int]]) -> None:
    storage, run_id, steps = stored
    data = storage.probe(run_id, steps[0], resolution="display")
    assert data is not None
    one = FlowRows.of(Frame.from_bytes(data, names=("grad_h", "grad_h_last")))
    assert one.nbytes > one.grad_h.nbytes + one.grad_h_last.nbytes
    views = Views(storage, flow_bytes=2 * one.nbytes + 1)
    flow = views.gradflow(run_id, "last", 0, 2000)
    assert len(flow.steps) == len(steps) > 2  # answered whole, though the cache keeps only two frames
    assert len(views.flows) == 2 and views.flows.nbytes <= views.flows.max_bytes
    views.close()
    assert len(views.flows) == 0


def test_a_live_run_fills_the_cache_as_it_publishes(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        run = client.post("/api/runs", json={**LONG, "steps": 3}).json()
        wait_for(client, run["id"])
        views: Views = client.app.state.views  # type: ignore[attr-defined]
        steps = client.get(f"/api/runs/{run['id']}/probes").json()
        assert all(views.flows.get((run["id"], s)) is not None for s in steps)
    assert len(views.flows) == 0  # closed with the app


# -- the run's task and its probe text ----------------------------------------------------------


def test_task_baseline_and_probe_text_at_the_runs_own_parameters(served: Served) -> None:
    hello = served.client.get(f"/api/runs/{served.hello}/task").json()
    assert hello["name"] == "char_lm" and hello["vocab"] == ["h", "e", "l", "o"]
    assert hello["baseline_metric"] == pytest.approx(hello["baseline_loss"] / math.log(2))
    assert hello["probe_text"] == "hell"  # the probe reads h, e, l, l and predicts e, l, l, o
    adding = served.client.get(f"/api/runs/{served.adding}/task").json()
    assert adding["baseline_loss"] == pytest.approx(1 / 6) and adding["seq_len"] == 6
    assert adding["vocab"] is None and adding["probe_text"] is None
    assert adding["input_value"] == {"channel": 0, "low": 0.0, "high": 1.0} and adding["spans"] == []
    assert hello["input_value"] is None  # the characters are the input


def test_copy_baseline_depends_on_the_run_parameters(client: TestClient) -> None:
    config = {
        "cell": "gru",
        "hidden_size": 4,
        "task": {"name": "copy", "seq_len": 5, "n_symbols": 2},
        "steps": 2,
    }
    run = client.post("/api/runs", json=config).json()
    wait_for(client, run["id"])
    task = client.get(f"/api/runs/{run['id']}/task").json()
    default = next(t for t in client.get("/api/catalog").json()["tasks"] if t["name"] == "copy")
    assert task["baseline_loss"] == pytest.approx(2 * math.log(8) / (5 + 4))
    assert task["baseline_loss"] != pytest.approx(default["baseline_loss"])
    assert task["spans"] == [  # at the run's own delay and symbol count
        {"start": 0, "stop": 2, "label": "symbols to copy"},
        {"start": 7, "stop": 9, "label": "recall window"},
    ]


def test_custom_text_without_a_corpus_is_trained_on_and_probed(client: TestClient) -> None:
    text = "the cat sat on the mat. " * 4
    config = {
        "cell": "gru",
        "hidden_size": 4,
        "task": {"name": "char_lm", "text": text, "seq_len": 12},
        "steps": 2,
    }
    run = client.post("/api/runs", json=config).json()
    assert run["config"]["task"] == {"name": "char_lm", "text": text, "seq_len": 12, "corpus": "custom"}
    wait_for(client, run["id"])
    task = client.get(f"/api/runs/{run['id']}/task").json()
    assert (
        set(task["vocab"]) == set(text) and len(task["probe_text"]) == 12 and task["probe_text"] in text * 2
    )
    own = client.post("/api/runs", json={**config, "probe_text": "the mat sat"}).json()
    assert client.get(f"/api/runs/{own['id']}/task").json()["probe_text"] == "the mat sat"


def test_text_with_a_bundled_corpus_is_a_422_that_says_what_to_do(client: TestClient) -> None:
    config = {"cell": "gru", "task": {"name": "char_lm", "corpus": "hello", "text": "my own text"}}
    answer = client.post("/api/runs", json=config)
    assert answer.status_code == 422
    assert "char_lm.text is read only when char_lm.corpus is 'custom'" in answer.text
    assert "set corpus to 'custom'" in answer.text
    assert client.get("/api/runs").json()["total"] == 0


# -- sparklines ---------------------------------------------------------------------------------


def test_sparklines_bucket_each_runs_loss(served: Served) -> None:
    lines = served.client.get(f"/api/sparklines?ids={served.hello},{served.adding},unknown&points=5").json()
    assert set(lines) == {served.hello, served.adding}
    metrics = served.client.get(f"/api/runs/{served.hello}/metrics").json()
    assert len(lines[served.hello]["loss"]) == 5
    assert lines[served.hello]["loss"][-1] == pytest.approx(metrics[-1]["loss"])
    assert lines[served.hello]["steps"][-1] == metrics[-1]["step"]
    again = served.client.get(f"/api/sparklines?ids={served.hello}&points=500").json()[served.hello]
    assert again["loss"] == pytest.approx([m["loss"] for m in metrics])  # from the cache, complete
    assert served.client.get("/api/sparklines").json() == {}


def test_a_sparkline_reads_only_the_steps_it_has_not_read(
    stored: tuple[Storage, str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, run_id, _ = stored
    views = Views(storage)
    asked: list[int] = []
    real = storage.metrics

    def counted(run: str, since: int = 0) -> list[dict[str, Any]]:
        asked.append(since)
        return real(run, since)

    monkeypatch.setattr(storage, "metrics", counted)
    first = views.sparkline(run_id, 10)
    second = views.sparkline(run_id, 10)
    assert first == second and asked == [0, first.steps[-1]]

"""Display endpoints and helpers: gradient-flow history, pooled frames, task baselines, sparklines."""

from __future__ import annotations

import math
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from app.core.engine import Trainer
from app.core.probes import ProbeFrame
from app.services.frames import decode_probe, encode_probe, probe_public
from app.services.schemas import RunCreate, to_train_config
from app.web import display
from tests.web.conftest import Served, make_app, wait_for


def test_keep_rows_spreads_evenly_and_keeps_first_and_last() -> None:
    assert display.keep_rows(5, 10) == [0, 1, 2, 3, 4]
    rows = display.keep_rows(1001, 400)
    assert rows[0] == 0 and rows[-1] == 1000
    assert len(rows) == 400 and rows == sorted(set(rows))
    assert display.keep_rows(3, 2) == [0, 2]


def test_pool_by_max_and_mean_with_a_short_last_bin() -> None:
    a = np.array([[1, 5, 2, 0, 7]], np.float32)
    assert display.pool(a, 1, 2, "max").tolist() == [[5, 2, 7]]
    assert display.pool(a, 1, 2, "mean").tolist() == [[3, 1, 7]]
    assert display.pool(a, 1, 1, "max") is a
    assert (
        display.bin_width(1000, 500) == 2
        and display.bin_width(501, 500) == 2
        and display.bin_width(10, 500) == 1
    )


def test_bucket_means_keeps_the_last_value() -> None:
    steps = array("q", range(1, 101))
    loss = array("d", [float(i) for i in range(100)])
    line = display.bucket_means(steps, loss, 10)
    assert len(line.loss) == 10 and line.steps[0] == 1 and line.steps[-1] == 100 and line.loss[-1] == 99.0
    assert line.loss[0] == pytest.approx(np.mean(range(11)))


def test_gradflow_has_a_row_per_probe_frame(served: Served) -> None:
    client = served.client
    steps = client.get(f"/api/runs/{served.hello}/probes").json()
    flow = client.get(f"/api/runs/{served.hello}/gradflow").json()
    assert flow["steps"] == steps and flow["total_rows"] == len(steps)
    assert flow["T"] == 4 and flow["width"] == 1 and flow["t"] == [0, 1, 2, 3]
    last = client.get(f"/api/runs/{served.hello}/probes/{steps[-1]}").json()
    assert flow["z"][-1] == pytest.approx(last["grad_h_last"])
    total = client.get(f"/api/runs/{served.hello}/gradflow?kind=total").json()
    assert total["z"][-1] == pytest.approx(last["grad_h"][0])
    assert set(flow["saturation"]) == {"i", "f", "g", "o"}
    assert len(flow["saturation"]["f"]["high"]) == len(steps)
    assert flow["saturation"]["f"]["high"][-1] == last["saturation"]["f"]["high"][0]


def test_gradflow_downsamples_rows_keeping_step_zero_and_the_last(served: Served) -> None:
    steps = served.client.get(f"/api/runs/{served.adding}/probes").json()
    assert len(steps) > 3
    flow = served.client.get(f"/api/runs/{served.adding}/gradflow?max_rows=3&max_cols=4").json()
    assert flow["steps"][0] == 0 == steps[0] and flow["steps"][-1] == steps[-1] and len(flow["steps"]) == 3
    assert flow["width"] == 2 and flow["t"] == [0, 2, 4]  # T = 6 pooled by max into 3 columns
    full = served.client.get(f"/api/runs/{served.adding}/probes/{steps[-1]}").json()["grad_h_last"]
    assert flow["z"][-1] == pytest.approx([max(full[i : i + 2]) for i in range(0, 6, 2)])


def test_display_frame_equals_the_rest_frame_when_small(served: Served) -> None:
    client = served.client
    for run_id in (served.hello, served.adding):
        shown = client.get(f"/api/runs/{run_id}/display/latest").json()
        rest = client.get(f"/api/runs/{run_id}/probes/latest").json()
        extra = {k: shown.pop(k) for k in ("T", "units", "t_width", "unit_width", "t_index", "unit_index")}
        assert shown == rest
        assert extra["t_width"] == 1 == extra["unit_width"] and extra["t_index"] == list(range(extra["T"]))


def _frame(config: dict[str, Any]) -> bytes:
    trainer = Trainer(to_train_config(RunCreate.model_validate(config)))
    for event in trainer.events():
        if isinstance(event, ProbeFrame):
            return encode_probe("x", event)
    raise AssertionError("no probe frame")


def test_display_frame_pools_long_and_wide_frames() -> None:
    data = _frame(
        {
            "cell": "lstm",
            "hidden_size": 6,
            "task": {"name": "adding", "seq_len": 11},
            "steps": 1,
            "batch_size": 2,
        }
    )
    header, arrays = decode_probe(data)
    shown = display.display_frame(data, max_t=4, max_units=4)
    assert shown["T"] == 11 and shown["t_width"] == 3 and shown["t_index"] == [0, 3, 6, 9]
    assert shown["units"] == 6 and shown["unit_width"] == 2 and shown["unit_index"] == [0, 2, 4]
    h = np.array(shown["h"])
    assert h.shape == (1, 4, 3)
    assert h[0, 0, 0] == pytest.approx(arrays["h"][0, 0:3, 0:2].mean(), abs=1e-6)
    assert h[0, 3, 2] == pytest.approx(arrays["h"][0, 9:11, 4:6].mean(), abs=1e-6)
    assert shown["grad_h_last"] == pytest.approx(
        [arrays["grad_h_last"][0, i : i + 3].max() for i in (0, 3, 6, 9)]
    )
    assert np.array(shown["gates"]["f"]).shape == (1, 4, 3)
    assert len(shown["tokens"]) == 4 and shown["tokens"][1] == header["tokens"][3]
    assert set(shown) >= set(probe_public(data))


def test_display_of_a_missing_frame_is_404(served: Served) -> None:
    response = served.client.get(f"/api/runs/{served.hello}/display/999999")
    assert response.status_code == 404 and "no probe frame" in response.json()["detail"]
    assert served.client.get("/api/runs/nope/display/latest").status_code == 404
    assert served.client.get("/api/runs/nope/gradflow").status_code == 404


def test_task_baseline_at_the_runs_own_parameters(served: Served) -> None:
    hello = served.client.get(f"/api/runs/{served.hello}/task").json()
    assert hello["name"] == "char_lm" and hello["vocab"] == ["h", "e", "l", "o"]
    assert hello["baseline_metric"] == pytest.approx(hello["baseline_loss"] / math.log(2))
    adding = served.client.get(f"/api/runs/{served.adding}/task").json()
    assert (
        adding["baseline_loss"] == pytest.approx(1 / 6) and adding["seq_len"] == 6 and adding["vocab"] is None
    )


def test_copy_baseline_depends_on_the_run_parameters(tmp_path: Path) -> None:
    config = {
        "cell": "gru",
        "hidden_size": 4,
        "task": {"name": "copy", "seq_len": 5, "n_symbols": 2},
        "steps": 2,
    }
    with TestClient(make_app(tmp_path)) as client:
        run = client.post("/api/runs", json=config).json()
        wait_for(client, run["id"])
        task = client.get(f"/api/runs/{run['id']}/task").json()
        default = next(t for t in client.get("/api/catalog").json()["tasks"] if t["name"] == "copy")
        assert task["baseline_loss"] == pytest.approx(2 * math.log(8) / (5 + 4))
        assert task["baseline_loss"] != pytest.approx(default["baseline_loss"])


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

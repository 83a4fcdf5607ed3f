"""The REST API, in-process (starlette's TestClient with the lifespan running, real worker processes)."""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from app.core.frames import MAX_T, MAX_UNITS, Frame
from app.services import manager as manager_module
from app.services.catalog import catalog
from app.services.schemas import LIMITS, RunCreate
from app.services.storage import StorageError
from app.web.models import ProbePublic
from tests.core.test_frames import PUBLIC_KEYS as PROBE_KEYS
from tests.web.conftest import ADDING, HELLO, LONG, SLOW, Served, make_app, seed_run, wait_for

# -- reading finished runs ------------------------------------------------------------------


def test_catalog_describes_every_choice_and_valid_presets(served: Served) -> None:
    body = served.client.get("/api/catalog").json()
    assert [c["name"] for c in body["cells"]] == [
        "rnn_tanh",
        "rnn_relu",
        "lstm",
        "gru",
        "mingru",
        "minlstm",
        "slstm",
    ]
    assert body["cells"][2]["gates"] == ["i", "f", "g", "o"]
    assert body["cells"][6]["gates"] == ["z", "i", "f", "o"] and body["cells"][6]["states"] == ["c", "n", "m"]
    tasks = {t["name"]: t for t in body["tasks"]}
    assert set(tasks) == {"char_lm", "adding", "copy", "recall", "tagging", "counting"}
    adding = tasks["adding"]
    assert adding["shape"] == "many_to_one" and adding["loss_kind"] == "mse"
    assert adding["baseline_loss"] == pytest.approx(1 / 6)
    assert adding["params"] == [
        {
            "name": "seq_len",
            "kind": "int",
            "default": 50,
            "minimum": 2,
            "maximum": 2000,
            "choices": None,
            "doc": "number of timesteps T",
        }
    ]
    assert {o["name"] for o in body["optimizers"]} == {"sgd", "rmsprop", "adam", "adagrad"}
    assert {m["name"] for m in body["clip_modes"]} == {"off", "norm", "value"}
    assert body["limits"]["hidden_size"] == 512
    presets = {p["name"]: p for p in body["presets"]}
    expected = {"vanishing", "exploding", "hello", "adding", "copy", "shakespeare", "bidirectional"}
    assert expected <= set(presets)
    for preset in presets.values():
        RunCreate.model_validate(preset["config"])
        assert preset["title"] and preset["look_for"]
    assert presets["vanishing"]["compare"] == ["rnn_tanh", "lstm", "gru"]
    assert presets["vanishing"]["config"]["task"] == {"name": "adding", "seq_len": 100}
    exploding = presets["exploding"]
    assert exploding["config"]["clip"]["mode"] == "norm"
    assert [v["clip"]["mode"] for v in exploding["variants"]] == ["off"]
    assert exploding["config"]["init"] == {"scheme": "normal", "gain": 2.0, "forget_bias": None}
    assert presets["bidirectional"]["config"]["bidirectional"] is True
    assert body == json.loads(catalog().model_dump_json())


def test_get_and_list_runs(served: Served) -> None:
    http = served.client
    run = http.get(f"/api/runs/{served.hello}").json()
    assert run["status"] == "completed" and run["step"] == run["steps"] == 40
    assert run["config"]["task"] == {"name": "char_lm", "corpus": "hello"}
    assert run["started_at"] and run["finished_at"] and run["error"] is None
    listed = http.get("/api/runs").json()
    assert listed["total"] == 2
    assert [r["id"] for r in listed["items"]] == [served.adding, served.hello]  # newest first
    page = http.get("/api/runs", params={"limit": 1, "offset": 1}).json()
    assert [r["id"] for r in page["items"]] == [served.hello] and page["total"] == 2
    assert http.get("/api/runs", params={"status": "running"}).json() == {"items": [], "total": 0}
    bad = http.get("/api/runs", params={"status": "sleeping"})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("POST", "/stop"),
        ("DELETE", ""),
        ("GET", "/metrics"),
        ("GET", "/probes"),
        ("GET", "/probes/latest"),
        ("GET", "/checkpoint"),
        ("GET", "/export"),
    ],
)
def test_unknown_run_is_404_with_a_sentence(served: Served, method: str, path: str) -> None:
    response = served.client.request(method, f"/api/runs/nosuchrun{path}")
    assert response.status_code == 404
    assert "nosuchrun" in response.json()["detail"]


def test_inspect_and_sample_of_unknown_run_are_404(served: Served) -> None:
    http = served.client
    assert http.post("/api/runs/nosuchrun/inspect", json={"text": "he"}).status_code == 404
    assert http.post("/api/runs/nosuchrun/sample", json={"prime": "h"}).status_code == 404


def test_metrics_as_json_and_csv(served: Served) -> None:
    http = served.client
    rows = http.get(f"/api/runs/{served.hello}/metrics").json()
    assert [r["step"] for r in rows] == list(range(1, 41))
    first = rows[0]
    assert set(first) >= {"loss", "metric", "grad_norm", "grad_norm_clipped", "clipped", "update_ratio", "lr"}
    assert "rnn.weight_hh_l0" in first["param_grad_norms"]
    assert rows[-1]["loss"] < rows[0]["loss"]
    since = http.get(f"/api/runs/{served.hello}/metrics", params={"since": 35}).json()
    assert [r["step"] for r in since] == [36, 37, 38, 39, 40]
    csv = http.get(f"/api/runs/{served.hello}/metrics", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["step", "loss", "metric"] and "grad_norm.rnn.weight_hh_l0" in header
    assert len(lines) == 41 and lines[1].startswith("1,")


def test_probe_steps_and_frames(served: Served) -> None:
    http = served.client
    assert http.get(f"/api/runs/{served.hello}/probes").json() == [0, 10, 20, 30, 40]
    latest = http.get(f"/api/runs/{served.hello}/probes/latest")  # bytes by default
    assert latest.headers["content-type"] == "application/octet-stream"
    frame = Frame.from_bytes(latest.content)
    assert frame.step == 40 and frame.header["run_id"] == served.hello and frame.header["pool"] is None
    assert frame.arrays["h"].shape == (1, 4, 8) and frame.header["tokens"] == ["h", "e", "l", "l"]
    public = http.get(f"/api/runs/{served.hello}/probes/10", params={"format": "json"}).json()
    assert set(public) == PROBE_KEYS and public["step"] == 10
    assert ProbePublic.model_validate(public).model_dump() == public  # the documented shape, whole
    assert set(public["gates"]) == {"i", "f", "g", "o"} and public["pool"] is None
    assert np.shape(public["grad_h_last"]) == (1, 4)  # [layer][t]
    assert np.shape(public["itemized"]) == (1, 4, 4)  # [layer][s][t]
    at_10 = Frame.from_bytes(http.get(f"/api/runs/{served.hello}/probes/10").content)
    np.testing.assert_array_equal(np.asarray(public["grad_h"], np.float32), at_10.arrays["grad_h"])
    # a small frame is its own display frame: the very same bytes
    shown = http.get(f"/api/runs/{served.hello}/probes/10", params={"resolution": "display"})
    assert shown.content == http.get(f"/api/runs/{served.hello}/probes/10").content
    missing = http.get(f"/api/runs/{served.hello}/probes/11")
    assert missing.status_code == 404 and "step 11" in missing.json()["detail"]
    assert http.get(f"/api/runs/{served.hello}/probes/first").status_code == 422


@pytest.mark.parametrize(("param", "value"), [("format", "xml"), ("resolution", "thumbnail"), ("format", "")])
def test_a_bad_frame_query_is_a_422_naming_the_choices(served: Served, param: str, value: str) -> None:
    for method, path, body in (
        ("GET", f"/api/runs/{served.hello}/probes/latest", None),
        ("POST", f"/api/runs/{served.hello}/inspect", {"text": "he"}),
    ):
        response = served.client.request(method, path, params={param: value}, json=body)
        assert response.status_code == 422, (method, param)
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", param]
        choices = ("'binary' or 'json'", "'full' or 'display'")[param == "resolution"]
        assert choices in error["msg"]


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An app with one finished run of 510 timesteps x 260 units (its frames need pooling)."""
    app = make_app(tmp_path_factory.mktemp("long"))
    with TestClient(app) as http:
        yield http, seed_run(app.state.storage, LONG)


def test_a_large_frame_at_full_and_display_resolution(long_run: Any) -> None:
    http, run_id = long_run
    full = Frame.from_bytes(http.get(f"/api/runs/{run_id}/probes/1").content)
    assert full.header["pool"] is None and full.sizes() == (510, 260)
    answer = http.get(f"/api/runs/{run_id}/probes/1", params={"resolution": "display"})
    assert answer.headers["content-type"] == "application/octet-stream"
    assert len(answer.content) < len(full.to_bytes()) / 3
    shown = Frame.from_bytes(answer.content)
    assert shown.header["pool"] == {"T": 510, "units": 260, "t_width": 2, "unit_width": 2}
    assert shown.sizes() == (255, 130) and shown.sizes() <= (MAX_T, MAX_UNITS)
    assert shown.to_bytes() == full.pooled().to_bytes()  # made once, by the worker, from the full one
    public = http.get(
        f"/api/runs/{run_id}/probes/1", params={"format": "json", "resolution": "display"}
    ).json()
    assert public["pool"] == shown.header["pool"] and np.shape(public["h"]) == (1, 255, 130)
    assert ProbePublic.model_validate(public).model_dump() == public
    assert public["marks"] == full.header["marks"] and public["mark_label"] == "marked"  # full-resolution t
    assert np.shape(public["grad_h_last"]) == (1, 255)
    full_json = http.get(f"/api/runs/{run_id}/probes/latest", params={"format": "json"}).json()
    assert np.shape(full_json["gates"]["z"]) == (1, 510, 260) and full_json["pool"] is None


def test_inspect_a_large_run_at_display_resolution(long_run: Any) -> None:
    http, run_id = long_run
    inputs = [[0.5, float(t in (3, 400))] for t in range(510)]
    full = Frame.from_bytes(http.post(f"/api/runs/{run_id}/inspect", json={"inputs": inputs}).content)
    assert full.sizes() == (510, 260) and full.header["pool"] is None and full.step == 1
    answer = http.post(
        f"/api/runs/{run_id}/inspect", params={"resolution": "display"}, json={"inputs": inputs}
    )
    shown = Frame.from_bytes(answer.content)
    assert shown.header["pool"] == {"T": 510, "units": 260, "t_width": 2, "unit_width": 2}
    np.testing.assert_array_equal(shown.arrays["grad_h_last"], full.pooled().arrays["grad_h_last"])


def test_checkpoint_loads_into_a_plain_torch_lstm(served: Served) -> None:
    response = served.client.get(f"/api/runs/{served.hello}/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    state = torch.load(io.BytesIO(response.content), weights_only=True)
    assert state["vocab"] == ["h", "e", "l", "o"]
    lstm = torch.nn.LSTM(input_size=4, hidden_size=8, batch_first=True)
    lstm.load_state_dict(state["state_dict"])
    readout = torch.nn.Linear(8, 4)
    readout.load_state_dict(state["readout"])
    x = torch.nn.functional.one_hot(torch.tensor([[0, 1, 2, 2]]), 4).float()  # "hell"
    with torch.no_grad():
        y = readout(lstm(x)[0])
    assert y.shape == (1, 4, 4)


def test_export_is_a_zip_of_config_metrics_probes_and_checkpoint(served: Served) -> None:
    response = served.client.get(f"/api/runs/{served.adding}/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = {
            "config.json",
            "metrics.csv",
            "interventions.json",
            "fork.json",
            "probes.npz",
            "checkpoint.pt",
        }
        assert set(archive.namelist()) == names
        assert json.loads(archive.read("config.json"))["cell"] == "gru"
        assert json.loads(archive.read("interventions.json")) == []
        assert json.loads(archive.read("fork.json")) is None  # no fork
        assert len(archive.read("metrics.csv").decode().strip().splitlines()) == 21
        probes = np.load(io.BytesIO(archive.read("probes.npz")))
        assert {"0/h", "20/h", "20/gates.z", "5/grad_h"} <= set(probes.files)
        assert probes["20/h"].shape == (1, 6, 4)
        state = torch.load(io.BytesIO(archive.read("checkpoint.pt")), weights_only=True)
        torch.nn.GRU(2, 4, batch_first=True).load_state_dict(state["state_dict"])


def test_inspect_text_of_a_char_lm_run(served: Served) -> None:
    http = served.client
    answer = http.post(f"/api/runs/{served.hello}/inspect", json={"text": "hello"})
    assert answer.headers["content-type"] == "application/octet-stream"  # bytes by default
    frame = Frame.from_bytes(answer.content)
    assert frame.header["tokens"] == ["h", "e", "l", "l", "o"] and frame.step == 40
    assert frame.arrays["h"].shape == (1, 5, 8) and frame.header["run_id"] == served.hello
    public = http.post(
        f"/api/runs/{served.hello}/inspect", params={"format": "json"}, json={"text": "hello"}
    ).json()
    assert set(public) == PROBE_KEYS and public["tokens"] == frame.header["tokens"]
    np.testing.assert_array_equal(np.asarray(public["grad_h_last"], np.float32), frame.arrays["grad_h_last"])
    unknown = http.post(f"/api/runs/{served.hello}/inspect", json={"text": "help"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "characters not in the vocabulary of this corpus: 'p'"


def test_inspect_the_probe_sample_answers_the_prediction_and_its_target(served: Served) -> None:
    """{"probe": true}: the run's own probe input with its targets, on the latest weights."""
    http = served.client
    for run_id in (served.adding, served.hello):
        query = {"format": "json"}
        frame = http.post(f"/api/runs/{run_id}/inspect", params=query, json={"probe": True}).json()
        stored = http.get(f"/api/runs/{run_id}/probes/latest", params={"format": "json"}).json()
        assert frame["step"] == stored["step"] and frame["notes"] == []
        for key in ("inputs", "targets", "mask", "outputs", "tokens"):  # the same sample and weights
            assert frame[key] == stored[key], key
        assert frame["loss"] == pytest.approx(stored["loss"], rel=1e-5)
    adding = http.post(f"/api/runs/{served.adding}/inspect", params={"format": "json"}, json={"probe": True})
    values, markers = np.asarray(adding.json()["inputs"]).T
    assert adding.json()["targets"][-1][0] == pytest.approx(float(values @ markers), abs=1e-2)


def test_inspect_raw_inputs(served: Served) -> None:
    http = served.client
    inputs = [[0.5, 1.0], [0.2, 0.0], [0.9, 1.0]]
    query = {"format": "json"}
    frame = http.post(f"/api/runs/{served.adding}/inspect", params=query, json={"inputs": inputs}).json()
    assert np.asarray(frame["inputs"]) == pytest.approx(np.asarray(inputs), abs=1e-3)
    assert np.asarray(frame["h"]).shape == (1, 3, 4)
    assert frame["mask"] == [0.0, 0.0, 1.0]  # adding is many-to-one: the loss term is at the end
    assert np.shape(frame["outputs"]) == (3, 1)  # the predicted sum is outputs[-1][0]
    assert frame["targets"] is None and frame["loss"] is None  # your own input has no target
    assert "no targets" in frame["notes"][0]
    wrong = http.post(f"/api/runs/{served.adding}/inspect", json={"inputs": [[1.0, 2.0, 3.0]]})
    assert wrong.status_code == 422
    assert "2 values per step" in wrong.json()["detail"]
    text = http.post(f"/api/runs/{served.adding}/inspect", json={"text": "hello"})
    assert text.status_code == 422 and "does not take text" in text.json()["detail"]
    for body in (
        {},
        {"probe": False},
        {"text": "he", "inputs": inputs},
        {"probe": True, "inputs": inputs},
        {"inputs": [[float("1e9"), 0.0]]},
    ):
        answer = http.post(f"/api/runs/{served.adding}/inspect", json=body)
        assert answer.status_code == 422, body
    too_long = http.post(
        f"/api/runs/{served.adding}/inspect", json={"inputs": [[0.0, 0.0]] * (LIMITS.inspect_steps + 1)}
    )
    assert too_long.status_code == 422


def test_sample_text(served: Served) -> None:
    http = served.client
    body = {"prime": "h", "length": 8, "temperature": 0.5, "seed": 3}
    first = http.post(f"/api/runs/{served.hello}/sample", json=body)
    assert first.status_code == 200
    text = first.json()["text"]
    assert text.startswith("h") and len(text) == 9 and set(text) <= set("helo")
    assert http.post(f"/api/runs/{served.hello}/sample", json=body).json()["text"] == text
    not_lm = http.post(f"/api/runs/{served.adding}/sample", json=body)
    assert not_lm.status_code == 409 and "char_lm" in not_lm.json()["detail"]
    bad_prime = http.post(f"/api/runs/{served.hello}/sample", json={"prime": "hi"})
    assert bad_prime.status_code == 422 and "'i'" in bad_prime.json()["detail"]
    for bad in ({"length": 0}, {"length": 10_001}, {"temperature": 0}, {"temperature": 11}, {"seed": -1}):
        assert http.post(f"/api/runs/{served.hello}/sample", json=bad).status_code == 422


def test_stopping_a_finished_run_is_409(served: Served) -> None:
    response = served.client.post(f"/api/runs/{served.hello}/stop")
    assert response.status_code == 409
    assert response.json()["detail"] == f"run {served.hello} has already ended: it is completed"


def test_validation_errors_name_the_field_and_the_limit(served: Served) -> None:
    http = served.client
    big = http.post("/api/runs", json={**HELLO, "hidden_size": 100_000})
    assert big.status_code == 422
    (error,) = big.json()["detail"]
    assert error["loc"] == ["body", "hidden_size"] and "512" in error["msg"]
    long_seq = http.post("/api/runs", json={**ADDING, "task": {"name": "adding", "seq_len": 5000}})
    assert long_seq.status_code == 422
    assert "adding.seq_len must be at most 2000" in long_seq.text
    unknown = http.post("/api/runs", json={**ADDING, "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.text
    assert http.get("/api/runs").json()["total"] == 2  # nothing was created


# -- changing runs --------------------------------------------------------------------------


def test_queue_stop_and_delete(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as http:
        first = http.post("/api/runs", json=SLOW)
        assert first.status_code == 201
        a = first.json()["id"]
        b = http.post("/api/runs", json=SLOW).json()
        assert b["status"] == "queued"
        stopped = http.post(f"/api/runs/{b['id']}/stop").json()
        assert stopped["status"] == "stopped"  # a queued run stops at once
        wait_for(http, a, statuses=frozenset({"running"}))
        while http.get(f"/api/runs/{a}").json()["step"] < 5:
            time.sleep(0.05)
        asked = time.monotonic()
        assert http.post(f"/api/runs/{a}/stop").status_code == 200
        assert wait_for(http, a, timeout=5)["status"] == "stopped"
        assert time.monotonic() - asked < 2.0
        assert http.delete(f"/api/runs/{a}").status_code == 204
        assert http.get(f"/api/runs/{a}").status_code == 404
        assert http.get("/api/runs").json()["total"] == 1


def test_compare_makes_runs_identical_but_for_the_cell(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as http:
        config = {**SLOW, "init": {"scheme": "orthogonal", "forget_bias": 1.0}, "cell": "lstm", "seed": 7}
        cells = ["rnn_tanh", "lstm", "gru", "lstm"]
        response = http.post("/api/compare", json={"config": config, "cells": cells})
        assert response.status_code == 201
        body = response.json()
        runs = body["runs"]
        assert [r["config"]["cell"] for r in runs] == ["rnn_tanh", "lstm", "gru"]
        assert {r["group"] for r in runs} == {body["group"]}
        assert [r["config"]["init"]["forget_bias"] for r in runs] == [None, 1.0, None]
        for r in runs:
            rest = {k: v for k, v in r["config"].items() if k not in ("cell", "init")}
            assert rest == {k: v for k, v in runs[1]["config"].items() if k not in ("cell", "init")}
            assert r["config"]["seed"] == 7 and r["config"]["init"]["scheme"] == "orthogonal"
        default_cells = http.post("/api/compare", json={"config": {**ADDING, "steps": 1}}).json()
        assert [r["config"]["cell"] for r in default_cells["runs"]] == ["rnn_tanh", "lstm", "gru", "mingru"]
        for r in runs:
            assert http.delete(f"/api/runs/{r['id']}").status_code == 204


def test_compare_drops_what_a_cell_cannot_take(tmp_path: Path) -> None:
    """From a bidirectional LSTM with orthogonal init and a forget bias, the default compare's
    minGRU runs one way at the default init without a forget bias; from an sLSTM's options,
    only the sLSTM keeps them."""
    with TestClient(make_app(tmp_path, max_runs=1)) as http:
        config = {
            **SLOW,
            "cell": "lstm",
            "bidirectional": True,
            "init": {"scheme": "orthogonal", "gain": 0.9, "forget_bias": 1.0},
        }
        response = http.post("/api/compare", json={"config": config})
        assert response.status_code == 201, response.text
        runs = {r["config"]["cell"]: r["config"] for r in response.json()["runs"]}
        assert list(runs) == ["rnn_tanh", "lstm", "gru", "mingru"]
        assert [runs[c]["bidirectional"] for c in runs] == [True, True, True, False]
        assert runs["mingru"]["init"] == {"scheme": "default", "gain": 1.0, "forget_bias": None}
        assert runs["lstm"]["init"] == {"scheme": "orthogonal", "gain": 0.9, "forget_bias": 1.0}
        slstm = {**SLOW, "cell": "slstm", "slstm": {"forget": "sigmoid", "stabilizer": False}}
        response = http.post("/api/compare", json={"config": slstm, "cells": ["slstm", "minlstm", "gru"]})
        assert response.status_code == 201, response.text
        options = [r["config"]["slstm"] for r in response.json()["runs"]]
        assert options == [{"forget": "sigmoid", "stabilizer": False}, None, None]
        for r in http.get("/api/runs").json()["items"]:
            assert http.delete(f"/api/runs/{r['id']}").status_code == 204


def test_a_full_queue_is_429_and_compare_queues_all_or_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "MAX_QUEUED", 0)
    full = client.post("/api/runs", json=ADDING)
    assert full.status_code == 429 and "queue is full" in full.json()["detail"]
    monkeypatch.setattr(manager_module, "MAX_QUEUED", 2)  # room for two of the four runs
    response = client.post("/api/compare", json={"config": {**SLOW, "cell": "gru"}})
    assert response.status_code == 429 and "these 4 runs need 4" in response.json()["detail"]
    assert client.get("/api/runs").json()["total"] == 0  # none of them was stored


def test_storage_errors_are_503_with_their_sentence(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("the disk is full: /data/gatescope.db (while listing runs)")

    monkeypatch.setattr(client.app.state.storage, "list_runs", full)  # type: ignore[attr-defined]
    response = client.get("/api/runs")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "the disk is full: /data/gatescope.db (while listing runs)"}


def test_unexpected_errors_are_a_plain_500_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.state.storage, "list_runs", boom)  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="app.web"):
        response = client.get("/api/runs")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "secret" not in response.text
    assert any(r.exc_info is not None and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_a_token_guards_the_api_but_not_health(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, token="s3cret")) as http:
        assert http.get("/api/health").status_code == 200
        denied = http.get("/api/runs")
        assert denied.status_code == 401 and "token" in denied.json()["detail"]
        assert http.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/api/runs", params={"token": "s3cret"}).status_code == 200


def test_health_and_the_page_are_served_with_the_api(client: TestClient) -> None:
    assert client.get("/api/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/style.css").status_code == 200

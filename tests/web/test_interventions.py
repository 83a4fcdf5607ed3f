"""The lab bench's routes (app/web/interventions.py): pause and resume through the API, and the
409s with a sentence for runs that do not run; interventions and the knob values they leave."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

from starlette.testclient import TestClient

from tests.services.test_attached import module
from tests.web.conftest import HELLO, SLOW, Served, make_app, wait_for
from tests.web.test_ingest import attach

DEFAULT_CLIP = {"mode": "norm", "threshold": 1.0}  # RunCreate's default: SLOW and HELLO leave it


def training(http: TestClient, run_id: str, timeout: float = 60.0) -> None:
    """Wait until the run has trained a step: 'running' comes when its worker is started, and a
    busy machine may take seconds to import torch in it (pausing is timed from here)."""
    wait_for(http, run_id, statuses=frozenset({"running"}))
    deadline = time.monotonic() + timeout
    while http.get(f"/api/runs/{run_id}").json()["step"] < 1:
        assert time.monotonic() < deadline, f"run {run_id} trained no step in {timeout} s"
        time.sleep(0.05)


def test_pause_inspect_resume_and_stop(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as http:
        run_id = http.post("/api/runs", json=SLOW).json()["id"]
        queued = http.post("/api/runs", json=SLOW).json()["id"]
        refused = http.post(f"/api/runs/{queued}/pause")
        assert refused.status_code == 409
        assert refused.json()["detail"] == f"only a running or paused run can pause: run {queued} is queued"
        training(http, run_id)
        assert http.post(f"/api/runs/{run_id}/pause").status_code == 200
        paused = wait_for(http, run_id, timeout=5, statuses=frozenset({"paused"}))
        time.sleep(0.3)
        assert http.get(f"/api/runs/{run_id}").json()["step"] == paused["step"]  # it waits
        assert http.get(f"/api/runs/{run_id}/metrics").status_code == 200  # and can be inspected
        assert http.get(f"/api/runs/{run_id}/checkpoint").status_code == 200
        assert http.post(f"/api/runs/{run_id}/resume").status_code == 200
        wait_for(http, run_id, timeout=5, statuses=frozenset({"running"}))
        assert http.post(f"/api/runs/{run_id}/stop").status_code == 200
        assert wait_for(http, run_id, timeout=5)["status"] == "stopped"
        http.post(f"/api/runs/{queued}/stop")


def test_a_finished_unknown_or_attached_run_cannot_pause(served: Served) -> None:
    finished = served.client.post(f"/api/runs/{served.hello}/pause")
    assert finished.status_code == 409
    detail = f"only a running or paused run can pause: run {served.hello} is completed"
    assert finished.json()["detail"] == detail
    assert served.client.post("/api/runs/nosuchrun/resume").status_code == 404


def test_an_intervention_is_applied_recorded_with_its_step_and_listed(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as http:
        run_id = http.post("/api/runs", json=SLOW).json()["id"]
        training(http, run_id)
        http.post(f"/api/runs/{run_id}/pause")
        paused = wait_for(http, run_id, timeout=5, statuses=frozenset({"paused"}))
        answer = http.post(f"/api/runs/{run_id}/interventions", json={"lr": 0.01, "tbptt": 3})
        assert answer.status_code == 202
        deadline = time.monotonic() + 5
        while not (listed := http.get(f"/api/runs/{run_id}/interventions").json()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert [(i["id"], i["step"], i["changes"]) for i in listed] == [
            (answer.json()["id"], paused["step"], {"lr": 0.01, "tbptt": 3})
        ]
        knobs = http.get(f"/api/runs/{run_id}/knobs").json()  # what the paused run trains with now
        assert (knobs["optimizer"]["lr"], knobs["tbptt"], knobs["clip"]) == (0.01, 3, DEFAULT_CLIP)
        assert knobs["set_at"] == {"lr": paused["step"], "tbptt": paused["step"]}
        http.post(f"/api/runs/{run_id}/resume")
        while http.get(f"/api/runs/{run_id}").json()["step"] < paused["step"] + 2:
            time.sleep(0.05)
        lrs = {m["lr"] for m in http.get(f"/api/runs/{run_id}/metrics").json() if m["step"] > paused["step"]}
        assert lrs == {0.01}
        http.post(f"/api/runs/{run_id}/stop")
        wait_for(http, run_id, timeout=5)
        with zipfile.ZipFile(io.BytesIO(http.get(f"/api/runs/{run_id}/export").content)) as archive:
            assert json.loads(archive.read("interventions.json")) == listed  # part of the export


def test_bad_interventions_are_422_naming_the_field_and_409_on_a_finished_run(served: Served) -> None:
    url = f"/api/runs/{served.hello}/interventions"
    for body, words in [
        ({"lr": 20}, ("lr", "10")),
        ({"clip": {"mode": "norm", "threshold": 0}}, ("clip", "threshold", "0")),
        ({"tbptt": 0}, ("tbptt", "1")),
        ({}, ("at least one change",)),
        ({"lr": None}, ("lr cannot be null",)),
        ({"momentum": 0.5}, ("momentum",)),
    ]:
        answer = served.client.post(url, json=body)
        assert answer.status_code == 422, body
        assert all(word in str(answer.json()["detail"]) for word in words), answer.json()
    finished = served.client.post(url, json={"lr": 0.01})
    assert finished.status_code == 409
    detail = f"only a running or paused run can take an intervention: run {served.hello} is completed"
    assert finished.json()["detail"] == detail
    assert served.client.get(url).json() == []


def test_weight_surgery_out_of_the_net_is_422_with_a_sentence(served: Served) -> None:
    hello = f"/api/runs/{served.hello}/interventions"  # a 1-layer LSTM
    layer = served.client.post(hello, json={"rescale": {"layer": 1, "radius": 0.9}})
    assert layer.status_code == 422
    assert layer.json()["detail"] == "rescale.layer must be at most 0: the net's last layer"
    gru = served.client.post(f"/api/runs/{served.adding}/interventions", json={"forget_bias": 1.0})
    assert gru.status_code == 422
    assert (
        gru.json()["detail"]
        == "forget_bias applies to the cells with a forget gate (lstm, minlstm, slstm), and this run is gru"
    )
    radius = served.client.post(hello, json={"rescale": {"layer": 0, "radius": 0}})
    assert radius.status_code == 422 and "radius" in str(radius.json()["detail"])
    switch = served.client.post(hello, json={"optimizer": {"name": "sgd"}})  # the worker would refuse it
    assert (switch.status_code, switch.json()["detail"]) == (
        422,
        "optimizer.reset_state must be true to switch from adam to sgd:"
        " one's state means nothing to the other",
    )


def test_the_knobs_of_a_run_without_interventions_are_its_config_and_attached_runs_have_none(
    served: Served, client: TestClient
) -> None:
    knobs = served.client.get(f"/api/runs/{served.hello}/knobs")
    assert knobs.status_code == 200
    assert knobs.json() == {
        "optimizer": {**HELLO["optimizer"], "momentum": 0.0},
        "clip": DEFAULT_CLIP,
        "tbptt": None,
        "forget_bias": None,
        "set_at": {},
        "interventions": 0,
    }
    assert served.client.get("/api/runs/nosuchrun/knobs").status_code == 404
    (run,) = attach(client, module())
    answer = client.get(f"/api/runs/{run}/knobs")
    assert (answer.status_code, answer.json()["detail"]) == (
        409,
        f"run {run} is attached: its weights live in your script, not on this server",
    )

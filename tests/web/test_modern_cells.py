"""The modern cells through the API: a run of each trains, stores frames with its own gates and
states and a checkpoint of its own layout; what a cell cannot take is a 422 that says why, and
stores nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from app.core.frames import Frame
from tests.web.conftest import ADDING, wait_for

CASES: list[tuple[dict[str, Any], list[str], str]] = [
    ({"cell": "mingru"}, ["z", "h_tilde"], "weight_l0"),
    ({"cell": "minlstm", "num_layers": 2, "init": {"forget_bias": 1.0}}, ["f", "i", "h_tilde"], "weight_l1"),
    (
        {"cell": "slstm", "slstm": {"forget": "sigmoid", "stabilizer": True}},
        ["z", "i", "f", "o", "n", "m"],
        "weight_hh_l0",
    ),
]


@pytest.mark.parametrize(("changes", "gates", "weight"), CASES)
def test_a_modern_cell_trains_and_its_frames_carry_its_gates(
    client: TestClient, changes: dict[str, Any], gates: list[str], weight: str
) -> None:
    created = client.post("/api/runs", json={**ADDING, **changes})
    assert created.status_code == 201, created.text
    run = wait_for(client, created.json()["id"])
    assert run["status"] == "completed" and run["config"]["cell"] == changes["cell"]
    steps = client.get(f"/api/runs/{run['id']}/probes").json()
    frame = Frame.from_bytes(client.get(f"/api/runs/{run['id']}/probes/{steps[-1]}").content)
    assert sorted(k[len("gates.") :] for k in frame.arrays if k.startswith("gates.")) == sorted(gates)
    assert ("c" in frame.arrays) == (changes["cell"] == "slstm")
    assert frame.arrays["grad_h_last"].shape == (run["config"]["num_layers"], 6)
    checkpoint = client.get(f"/api/runs/{run['id']}/checkpoint")
    state = torch.load(io.BytesIO(checkpoint.content), weights_only=True)
    assert weight in state["state_dict"] and state["config"]["cell"] == changes["cell"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"cell": "mingru", "bidirectional": True}, "bidirectional: mingru runs one way only"),
        ({"cell": "lstm", "slstm": {"stabilizer": False}}, "applies to the slstm cell only, not lstm"),
        (
            {"cell": "minlstm", "init": {"scheme": "normal", "gain": 2.0}},
            "minlstm has no recurrent weights W_hh",
        ),
        ({"cell": "gru", "init": {"forget_bias": 1.0}}, "forget gate (lstm, minlstm, slstm), not gru"),
        ({"cell": "slstm", "slstm": {"forget": "tanh"}}, "Input should be 'exp' or 'sigmoid'"),
    ],
)
def test_what_a_cell_cannot_take_is_refused_and_nothing_is_stored(
    client: TestClient, changes: dict[str, Any], words: str
) -> None:
    answer = client.post("/api/runs", json={**ADDING, **changes})
    assert answer.status_code == 422 and words in answer.text, answer.text
    assert client.get("/api/runs").json()["total"] == 0


def test_compare_drops_for_each_cell_what_it_cannot_take(client: TestClient) -> None:
    config = {**ADDING, "cell": "lstm", "init": {"scheme": "normal", "gain": 1.5, "forget_bias": 1.0}}
    group = client.post("/api/compare", json={"config": config, "cells": ["lstm", "mingru", "slstm"]})
    assert group.status_code == 201, group.text
    runs = {r["config"]["cell"]: r["config"] for r in group.json()["runs"]}
    assert runs["lstm"]["init"] == {"scheme": "normal", "gain": 1.5, "forget_bias": 1.0}
    assert runs["mingru"]["init"] == {"scheme": "default", "gain": 1.0, "forget_bias": None}
    assert runs["slstm"]["init"] == {"scheme": "normal", "gain": 1.5, "forget_bias": 1.0}
    for run in group.json()["runs"]:
        wait_for(client, run["id"])

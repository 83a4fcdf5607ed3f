"""GET /api/runs/{id}/spectra: W_hh's spectra over training, held to the weights and to the frames."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from starlette.testclient import TestClient

from app.core.frames import Frame
from app.services.spectra import NOT_CARRIED
from app.services.storage import Storage
from tests.web.conftest import Served, make_app, seed_run

TINY_RNN = {
    "cell": "rnn_tanh",
    "hidden_size": 6,
    "task": {"name": "adding", "seq_len": 5},
    "batch_size": 2,
    "steps": 6,
    "probe_every": 2,
}


def test_a_row_per_probe_frame_with_the_frames_own_numbers(served: Served) -> None:
    client = served.client
    body = client.get(f"/api/runs/{served.hello}/spectra").json()
    steps = client.get(f"/api/runs/{served.hello}/probes").json()
    assert body["steps"] == steps and body["total_rows"] == len(steps) and body["left_out"] == 0
    assert body["blocks"] == ["W_hi", "W_hf", "W_hg", "W_ho"] and body["notes"] == []
    for i, step in enumerate(steps):
        frame = client.get(f"/api/runs/{served.hello}/probes/{step}?format=json").json()
        np.testing.assert_array_equal(body["radius"][i], frame["w_hh_radius"])
        np.testing.assert_array_equal(body["singular"][i], frame["w_hh_singular"])
    singular = np.array(body["singular"])  # (rows, L, D, G, K)
    assert singular.shape == (len(steps), 1, 1, 4, 8)
    assert np.all(np.diff(singular, axis=-1) <= 0)  # descending
    assert np.all(np.array(body["radius"]) <= singular[..., 0] * (1 + 1e-5))  # |lambda| <= sigma_1


def test_the_last_row_is_the_checkpoints_w_hh(served: Served) -> None:
    """The GRU's spectra at its checkpoint step, recomputed here from the weights with torch."""
    client = served.client
    saved = client.get(f"/api/runs/{served.adding}/checkpoint").content
    ckpt = torch.load(io.BytesIO(saved), weights_only=False)
    body = client.get(f"/api/runs/{served.adding}/spectra").json()
    assert body["blocks"] == ["W_hr", "W_hz", "W_hn"]
    row = body["steps"].index(ckpt["step"])
    blocks = ckpt["state_dict"]["weight_hh_l0"].double().chunk(3, dim=0)
    for g, w in enumerate(blocks):
        np.testing.assert_allclose(body["singular"][row][0][0][g], torch.linalg.svdvals(w)[:4], rtol=1e-5)
        radius = torch.linalg.eigvals(w).abs().max()
        np.testing.assert_allclose(body["radius"][row][0][0][g], float(radius), rtol=1e-5)


def test_since_and_max_rows_thin_and_append(served: Served) -> None:
    client = served.client
    steps = client.get(f"/api/runs/{served.hello}/probes").json()
    later = client.get(f"/api/runs/{served.hello}/spectra?since={steps[1]}").json()
    assert later["steps"] == steps[2:] and later["total_rows"] == len(steps)
    two = client.get(f"/api/runs/{served.hello}/spectra?max_rows=2").json()
    assert two["steps"] == [steps[0], steps[-1]]


def test_unknown_run_and_bad_query_are_refused(served: Served) -> None:
    client = served.client
    missing = client.get("/api/runs/nope/spectra")
    assert missing.status_code == 404 and "no run with id 'nope'" in missing.json()["detail"]
    assert client.get(f"/api/runs/{served.hello}/spectra?max_rows=1").status_code == 422
    assert client.get(f"/api/runs/{served.hello}/spectra?since=-1").status_code == 422


def test_frames_without_spectra_are_counted_and_explained(tmp_path: Path) -> None:
    """Frames stored before the spectra existed (arrays stripped here) are left out, never zeros."""
    app = make_app(tmp_path)
    with TestClient(app) as client:
        storage: Storage = app.state.storage
        run_id = seed_run(storage, TINY_RNN)
        steps = storage.probe_steps(run_id)
        data = storage.probe(run_id, steps[0])
        assert data is not None
        frame = Frame.from_bytes(data)
        stripped = Frame(frame.header, {k: v for k, v in frame.arrays.items() if not k.startswith("w_hh_")})
        storage.add_probe(run_id, steps[0], stripped.to_bytes())
        body = client.get(f"/api/runs/{run_id}/spectra").json()
    assert body["steps"] == steps[1:] and body["blocks"] == ["W_hh"] and body["left_out"] == 1
    assert body["notes"] == [f"1 of {len(steps)} probe frames carry no W_hh spectra. {NOT_CARRIED}"]

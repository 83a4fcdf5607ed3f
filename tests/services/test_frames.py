"""The binary probe frame: layout, round trips of real frames, clipping, and the REST JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cells import CellName
from app.core.engine import TrainConfig, Trainer
from app.core.probes import ProbeFrame
from app.services.frames import (
    FLOAT16_MAX,
    FLOAT32_MAX,
    GRADIENT_ARRAYS,
    decode_probe,
    encode_probe,
    probe_public,
)

CASES: list[tuple[CellName, int, bool, str]] = [
    ("lstm", 1, False, "adding"),
    ("gru", 1, False, "adding"),
    ("rnn_tanh", 1, False, "adding"),
    ("lstm", 2, True, "adding"),
    ("gru", 2, True, "char_lm"),
    ("rnn_tanh", 1, True, "char_lm"),
]
PUBLIC_KEYS = {
    "step",
    "loss",
    "tokens",
    "inputs",
    "targets",
    "mask",
    "outputs",
    "h",
    "c",
    "gates",
    "grad_h",
    "grad_h_last",
    "grad_h_last_layers",
    "grad_c",
    "itemized",
    "connectivity",
    "connectivity_total",
    "connectivity_itemized",
    "saturation",
    "unit_means",
    "last_step",
}


def _frame(cell: CellName, layers: int, bidi: bool, task: str) -> ProbeFrame:
    params: dict[str, object] = {"seq_len": 6} if task == "adding" else {"corpus": "hello", "seq_len": 6}
    config = TrainConfig(
        cell=cell,
        task=task,
        task_params=params,
        hidden_size=4,
        num_layers=layers,
        bidirectional=bidi,
        batch_size=4,
        steps=2,
    )
    trainer = Trainer(config)
    trainer.train_step()
    return trainer.probe()


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-L{c[1]}{'-bidi' if c[2] else ''}-{c[3]}")
def frame(request: pytest.FixtureRequest) -> ProbeFrame:
    cell, layers, bidi, task = request.param
    return _frame(cell, layers, bidi, task)


def _expected_arrays(frame: ProbeFrame) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in ("inputs", "targets", "mask", "outputs", "h", "c", *GRADIENT_ARRAYS):
        value = getattr(frame, name)
        if value is not None:
            out[name] = value
    out |= {f"gates.{g}": v for g, v in frame.gates.items()}
    out |= {f"unit_means.{g}": v for g, v in frame.unit_means.items()}
    return out


def test_round_trip_keeps_every_array(frame: ProbeFrame) -> None:
    header, arrays = decode_probe(encode_probe("run123", frame))
    assert header["type"] == "probe" and header["run_id"] == "run123"
    assert header["step"] == frame.step == 1 and header["last_step"] == frame.last_step
    assert header["loss"] == pytest.approx(frame.loss)
    assert header["tokens"] == frame.tokens
    assert header["saturation"] == frame.saturation
    expected = _expected_arrays(frame)
    assert set(arrays) == set(expected)
    for name, want in expected.items():
        got = arrays[name]
        assert got.dtype == np.float32 and got.shape == want.shape, name
        if name in GRADIENT_ARRAYS:
            np.testing.assert_array_equal(got, want, err_msg=name)  # float32: exact
        else:
            np.testing.assert_allclose(got, want, rtol=2**-11, atol=1e-7, err_msg=name)  # float16


def test_layout_is_aligned_and_self_describing(frame: ProbeFrame) -> None:
    data = encode_probe("r", frame)
    (n,) = struct.unpack_from("<I", data, 0)
    header = json.loads(data[4 : 4 + n])
    specs = header["arrays"]
    first = specs[0]["offset"]
    assert first % 8 == 0 and first - (4 + n) < 8
    assert data[4 + n : first] == b"\0" * (first - 4 - n)
    end = first
    for spec in specs:
        itemsize = 2 if spec["dtype"] == "float16" else 4
        assert spec["offset"] % 8 == 0 and spec["offset"] >= end
        assert spec["nbytes"] == math.prod(spec["shape"]) * itemsize
        expected_dtype = "float32" if spec["name"] in GRADIENT_ARRAYS else "float16"
        assert spec["dtype"] == expected_dtype, spec["name"]
        end = spec["offset"] + spec["nbytes"]
    assert len(data) == end
    # a reader can view the arrays in place, as a browser does with typed arrays
    h = next(s for s in specs if s["name"] == "h")
    view = np.frombuffer(data, "<f2", math.prod(h["shape"]), h["offset"]).reshape(h["shape"])
    np.testing.assert_allclose(view, frame.h, rtol=2**-11, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(run_id=st.text(max_size=300), step=st.integers(0, 10**12))
def test_any_header_length_keeps_the_arrays_aligned(run_id: str, step: int) -> None:
    base = _frame("gru", 1, False, "adding")
    frame = dataclasses.replace(base, step=step)
    data = encode_probe(run_id, frame)
    header, arrays = decode_probe(data)
    assert header["run_id"] == run_id and header["step"] == step
    assert all(spec["offset"] % 8 == 0 for spec in header["arrays"])
    np.testing.assert_array_equal(arrays["grad_h"], base.grad_h)


def test_values_outside_float16_are_clipped_and_nan_is_zero() -> None:
    base = _frame("lstm", 1, False, "adding")
    h = base.h.copy()
    h[0, 0, :4] = [1e6, -1e6, np.inf, np.nan]
    grad_h = base.grad_h.copy()
    grad_h[0, :3] = [np.inf, np.nan, 1e30]
    frame = dataclasses.replace(base, h=h, grad_h=grad_h, loss=float("nan"))
    header, arrays = decode_probe(encode_probe("x", frame))
    assert arrays["h"][0, 0, :4].tolist() == [FLOAT16_MAX, -FLOAT16_MAX, FLOAT16_MAX, 0.0]
    assert arrays["grad_h"][0, :3].tolist() == [FLOAT32_MAX, 0.0, np.float32(1e30)]
    assert header["loss"] is None
    assert all(np.isfinite(a).all() for a in arrays.values())
    json.dumps(probe_public(encode_probe("x", frame)), allow_nan=False)


def test_probe_public_keys_and_shapes(frame: ProbeFrame) -> None:
    public = probe_public(encode_probe("r", frame))
    assert set(public) == PUBLIC_KEYS
    text = json.dumps(public, allow_nan=False)  # plain, finite floats
    assert json.loads(text) == public
    L, T, DH = frame.h.shape
    assert np.shape(public["h"]) == (L, T, DH)
    assert np.shape(public["inputs"]) == frame.inputs.shape
    assert np.shape(public["outputs"]) == frame.outputs.shape
    assert np.shape(public["targets"]) == frame.targets.shape
    assert np.shape(public["mask"]) == (T,)
    assert np.shape(public["grad_h"]) == (L, T)
    assert np.shape(public["grad_h_last_layers"]) == (L, T)
    assert public["grad_h_last"] == pytest.approx(frame.grad_h_last[0].tolist())  # the bottom layer
    assert np.shape(public["connectivity"]) == (T,) and np.shape(public["connectivity_total"]) == (T,)
    assert np.shape(public["itemized"]) == (T, T)  # [s][t] of layer 0
    assert public["itemized"] == frame.itemized[0].tolist()  # type: ignore[index]
    assert np.shape(public["connectivity_itemized"]) == (T, T)
    assert list(public["gates"]) in (["i", "f", "g", "o"], ["r", "z", "n"], [])
    assert list(public["gates"]) == list(frame.gates)
    if "i" in public["gates"]:  # LSTM
        assert np.shape(public["c"]) == (L, T, DH) and np.shape(public["grad_c"]) == (L, T)
    else:
        assert public["c"] is None and public["grad_c"] is None
    for name, values in public["gates"].items():
        assert np.shape(values) == (L, T, DH), name
        assert np.shape(public["unit_means"][name]) == (L, DH)
    assert set(public["unit_means"]) == set(frame.gates) == set(public["saturation"])
    assert public["tokens"] == frame.tokens and public["step"] == 1
    assert public["last_step"] == frame.last_step


def test_absent_arrays_are_not_listed() -> None:
    frame = dataclasses.replace(_frame("gru", 1, False, "adding"), itemized=None, connectivity_itemized=None)
    header, _ = decode_probe(encode_probe("r", frame))
    names = [s["name"] for s in header["arrays"]]
    assert "itemized" not in names and "c" not in names and "grad_c" not in names
    public = probe_public(encode_probe("r", frame))
    assert public["itemized"] is None and public["connectivity_itemized"] is None and public["c"] is None
    assert set(public["gates"]) == {"r", "z", "n"}
    rnn = probe_public(encode_probe("r", _frame("rnn_tanh", 1, False, "adding")))
    assert rnn["gates"] == {} and rnn["unit_means"] == {} and rnn["saturation"] == {}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x01", "shorter"),
        (struct.pack("<I", 100) + b"{}", "runs past"),
        (struct.pack("<I", 3) + b"abc", "not JSON"),
        (struct.pack("<I", 2) + b"{}", "type"),
        (struct.pack("<I", 15) + b'{"type":"step"}', "type"),
    ],
)
def test_malformed_data_is_a_value_error(data: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        decode_probe(data)


def test_array_past_the_end_is_a_value_error() -> None:
    data = encode_probe("r", _frame("gru", 1, False, "adding"))
    with pytest.raises(ValueError, match="past the end"):
        decode_probe(data[:-1])

"""The Frame: bytes layout and round trips of real frames, partial decoding, malformed bytes,
clipping, the display frame's pooling rules, and the REST JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cells import CellName
from app.core.engine import TrainConfig, Trainer
from app.core.frames import (
    FLOAT16_MAX,
    FLOAT32_MAX,
    GRADIENT_ARRAYS,
    MAX_T,
    MAX_UNITS,
    THEORY_ARRAYS,
    VALUE_ARRAYS,
    Frame,
    bin_width,
    pool,
)
from app.core.probes import ProbeFrame

CASES: list[tuple[CellName, int, bool, str]] = [
    ("lstm", 1, False, "adding"),
    ("gru", 1, False, "adding"),
    ("rnn_tanh", 1, False, "adding"),
    ("lstm", 2, True, "adding"),
    ("gru", 2, True, "char_lm"),
    ("rnn_tanh", 1, True, "char_lm"),
]
HEADER_KEYS = {"step", "loss", "last_step", "tokens", "marks", "mark_label", "saturation", "pool"}
HEADER_KEYS |= {"notes", "source"}
PUBLIC_KEYS = HEADER_KEYS | set(VALUE_ARRAYS) | set(GRADIENT_ARRAYS) | set(THEORY_ARRAYS)
PUBLIC_KEYS |= {"gates", "unit_means"}
FLOAT32_ARRAYS = {*GRADIENT_ARRAYS, *THEORY_ARRAYS}


def probe_frame(
    cell: CellName = "gru",
    layers: int = 1,
    bidi: bool = False,
    task: str = "adding",
    seq_len: int = 6,
    hidden: int = 4,
) -> ProbeFrame:
    params: dict[str, object] = {"seq_len": seq_len}
    if task == "char_lm":
        params["corpus"] = "hello"
    config = TrainConfig(
        cell=cell,
        task=task,
        task_params=params,
        hidden_size=hidden,
        num_layers=layers,
        bidirectional=bidi,
        batch_size=4,
        steps=2,
    )
    trainer = Trainer(config)
    trainer.train_step()
    return trainer.probe()


_GRU = probe_frame("gru")


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-L{c[1]}{'-bidi' if c[2] else ''}-{c[3]}")
def frame(request: pytest.FixtureRequest) -> ProbeFrame:
    cell, layers, bidi, task = request.param
    return probe_frame(cell, layers, bidi, task)


@pytest.fixture(scope="module")
def long_frame() -> Frame:
    """An LSTM frame of 2 layers, T = 23, 6 units, for pooling to 5 x 4 (bins of 5 and 2)."""
    pf = probe_frame("lstm", layers=2, seq_len=23, hidden=6)
    assert pf.itemized is not None  # T <= 200: itemized too, to pool on both t axes
    return Frame.from_probe("long", pf)


def _expected_arrays(frame: ProbeFrame) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in (*VALUE_ARRAYS, *GRADIENT_ARRAYS):
        value = getattr(frame, name)
        if value is not None:
            out[name] = value
    out |= {f"gates.{g}": v for g, v in frame.gates.items()}
    out |= {f"unit_means.{g}": v for g, v in frame.unit_means.items()}
    assert frame.theory is not None  # a built-in probe computes its theory
    for name in THEORY_ARRAYS:
        value = getattr(frame.theory, name)
        if value is not None:
            out[name] = value
    return out


# -- bytes -----------------------------------------------------------------------------------


def test_round_trip_keeps_every_array_and_the_bytes(frame: ProbeFrame) -> None:
    made = Frame.from_probe("run123", frame)
    data = made.to_bytes()
    back = Frame.from_bytes(data)
    assert back.header == made.header
    assert back.header["type"] == "probe" and back.header["run_id"] == "run123"
    assert back.step == frame.step == 1 and back.header["last_step"] == frame.last_step
    assert back.header["loss"] == pytest.approx(frame.loss)
    assert back.header["tokens"] == frame.tokens and back.header["saturation"] == frame.saturation
    assert back.header["marks"] == frame.marks and back.header["mark_label"] == frame.mark_label
    assert back.header["pool"] is None and "arrays" not in back.header
    expected = _expected_arrays(frame)
    assert list(back.arrays) == list(made.arrays) and set(back.arrays) == set(expected)
    for name, want in expected.items():
        got = back.arrays[name]
        assert got.dtype == np.float32 and got.shape == want.shape, name
        np.testing.assert_array_equal(got, made.arrays[name], err_msg=name)  # memory == bytes
        if name in FLOAT32_ARRAYS:
            np.testing.assert_array_equal(got, want, err_msg=name)  # float32: exact
        else:
            np.testing.assert_allclose(got, want, rtol=2**-11, atol=1e-7, err_msg=name)  # float16
    assert back.to_bytes() == data  # decoding and encoding again changes nothing


def test_adding_frames_carry_the_marked_steps() -> None:
    pf = probe_frame("lstm", seq_len=12)
    header = Frame.from_bytes(Frame.from_probe("r", pf).to_bytes()).header
    assert header["mark_label"] == "marked"
    assert len(header["marks"]) == 2 and header["marks"] == sorted(header["marks"])
    assert all(0 <= t < 12 for t in header["marks"])
    # the marked steps are where the marker input is 1
    assert np.flatnonzero(pf.inputs[:, 1] == 1).tolist() == header["marks"]


def test_layout_is_aligned_and_self_describing(frame: ProbeFrame) -> None:
    data = Frame.from_probe("r", frame).to_bytes()
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
        expected_dtype = "float32" if spec["name"] in FLOAT32_ARRAYS else "float16"
        assert spec["dtype"] == expected_dtype, spec["name"]
        end = spec["offset"] + spec["nbytes"]
    assert len(data) == end
    # a reader can view the arrays in place, as a browser does with typed arrays
    h = next(s for s in specs if s["name"] == "h")
    view = np.frombuffer(data, "<f2", math.prod(h["shape"]), h["offset"]).reshape(h["shape"])
    np.testing.assert_allclose(view, frame.h, rtol=2**-11, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(run_id=st.text(max_size=300), step=st.integers(0, 10**12), label=st.none() | st.text(max_size=40))
def test_any_header_length_keeps_the_arrays_aligned(run_id: str, step: int, label: str | None) -> None:
    base = _GRU
    frame = Frame.from_probe(run_id, dataclasses.replace(base, step=step, mark_label=label))
    data = frame.to_bytes()
    back = Frame.from_bytes(data)
    assert back.header["run_id"] == run_id and back.step == step and back.header["mark_label"] == label
    (n,) = struct.unpack_from("<I", data, 0)
    assert all(spec["offset"] % 8 == 0 for spec in json.loads(data[4 : 4 + n])["arrays"])
    np.testing.assert_array_equal(back.arrays["grad_h"], base.grad_h)


def test_names_decode_only_those_arrays() -> None:
    data = Frame.from_probe("r", _GRU).to_bytes()
    part = Frame.from_bytes(data, names={"grad_h", "grad_h_last", "grad_c"})  # a GRU has no grad_c
    assert set(part.arrays) == {"grad_h", "grad_h_last"}
    np.testing.assert_array_equal(part.arrays["grad_h_last"], _GRU.grad_h_last)
    assert part.header == Frame.from_bytes(data).header
    assert Frame.from_bytes(data, names=()).arrays == {}
    # the arrays left out are not even read: cut off the last one, and only a full decode fails
    cut = data[:-4]
    assert set(Frame.from_bytes(cut, names=("grad_h",)).arrays) == {"grad_h"}
    with pytest.raises(ValueError, match="past the end"):
        Frame.from_bytes(cut)


def test_frames_stored_before_marks_and_pool_still_read() -> None:
    data = Frame.from_probe("r", _GRU).to_bytes()
    (n,) = struct.unpack_from("<I", data, 0)
    header = json.loads(data[4 : 4 + n])
    for key in ("marks", "mark_label", "pool"):
        del header[key]
    text = json.dumps(header, separators=(",", ":")).encode()
    old = struct.pack("<I", len(text)) + text  # shorter: the offsets still point into `data`
    old += b"\0" * (header["arrays"][0]["offset"] - len(old)) + data[header["arrays"][0]["offset"] :]
    back = Frame.from_bytes(old)
    assert back.header["marks"] == [] and back.header["mark_label"] is None and back.header["pool"] is None
    np.testing.assert_array_equal(back.arrays["grad_h"], _GRU.grad_h)


def _with_header(header: object) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x01", "shorter"),
        (struct.pack("<I", 100) + b"{}", "runs past"),
        (struct.pack("<I", 3) + b"abc", "not JSON"),
        (struct.pack("<I", 2) + b"\xff\xfe", "not JSON"),
        (_with_header({}), "type"),
        (_with_header({"type": "step"}), "type"),
        (_with_header([1, 2]), "type"),
        (_with_header({"type": "probe"}), "array table"),
        (_with_header({"type": "probe", "arrays": [{"name": "h"}]}), "malformed"),
        (_with_header({"type": "probe", "arrays": [7]}), "malformed"),
        (
            _with_header(
                {"type": "probe", "arrays": [{"name": "h", "dtype": "int8", "shape": [1], "offset": 0}]}
            ),
            "unknown dtype",
        ),
        (
            _with_header(
                {"type": "probe", "arrays": [{"name": "h", "dtype": "float16", "shape": [-2], "offset": 200}]}
            ),
            "past the end",
        ),
        (
            _with_header(
                {"type": "probe", "arrays": [{"name": "h", "dtype": "float32", "shape": [9], "offset": 800}]}
            ),
            "past the end",
        ),
        (
            _with_header(
                {"type": "probe", "arrays": [{"name": "h", "dtype": "float32", "shape": [1], "offset": 201}]}
            )
            + bytes(300),
            "aligned offset",
        ),
        (
            _with_header(
                {"type": "probe", "arrays": [{"name": "h", "dtype": "float32", "shape": [9], "offset": 8}]}
            ),
            "aligned offset after the header",
        ),
    ],
)
def test_malformed_bytes_are_a_value_error_with_a_sentence(data: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=f"not a probe frame: .*{words}"):
        Frame.from_bytes(data)


def test_values_outside_float16_are_clipped_and_nan_is_zero() -> None:
    base = probe_frame("lstm")
    h = base.h.copy()
    h[0, 0, :4] = [1e6, -1e6, np.inf, np.nan]
    grad_h = base.grad_h.copy()
    grad_h[0, :3] = [np.inf, np.nan, 1e30]
    made = Frame.from_probe("x", dataclasses.replace(base, h=h, grad_h=grad_h, loss=float("nan")))
    for frame in (made, Frame.from_bytes(made.to_bytes())):  # in memory as in bytes
        assert frame.arrays["h"][0, 0, :4].tolist() == [FLOAT16_MAX, -FLOAT16_MAX, FLOAT16_MAX, 0.0]
        assert frame.arrays["grad_h"][0, :3].tolist() == [FLOAT32_MAX, 0.0, np.float32(1e30)]
        assert frame.header["loss"] is None
        assert all(np.isfinite(a).all() for a in frame.arrays.values())
    json.dumps(made.to_json(), allow_nan=False)


# -- the REST JSON ---------------------------------------------------------------------------


def test_json_keys_and_full_shapes(frame: ProbeFrame) -> None:
    public = Frame.from_probe("r", frame).to_json()
    assert set(public) == PUBLIC_KEYS
    assert json.loads(json.dumps(public, allow_nan=False)) == public  # plain, finite floats
    L, T, DH = frame.h.shape
    assert np.shape(public["h"]) == (L, T, DH)
    assert np.shape(public["inputs"]) == frame.inputs.shape
    assert frame.outputs is not None and frame.targets is not None  # a built-in frame has both
    assert np.shape(public["outputs"]) == frame.outputs.shape
    assert np.shape(public["targets"]) == frame.targets.shape
    assert np.shape(public["mask"]) == (T,)
    assert np.shape(public["grad_h"]) == (L, T)
    assert public["grad_h_last"] == frame.grad_h_last.tolist()  # every layer, exact
    assert np.shape(public["connectivity"]) == (T,) and np.shape(public["connectivity_total"]) == (T,)
    assert public["itemized"] == frame.itemized.tolist()  # type: ignore[union-attr]  # (L, T, T)
    assert np.shape(public["connectivity_itemized"]) == (T, T)
    assert list(public["gates"]) == list(frame.gates)
    assert list(public["gates"]) in (["i", "f", "g", "o"], ["r", "z", "n"], [])
    if "i" in public["gates"]:  # LSTM
        assert np.shape(public["c"]) == (L, T, DH) and np.shape(public["grad_c"]) == (L, T)
    else:
        assert public["c"] is None and public["grad_c"] is None
    for name, values in public["gates"].items():
        assert np.shape(values) == (L, T, DH), name
        assert np.shape(public["unit_means"][name]) == (L, DH)
    assert set(public["unit_means"]) == set(frame.gates) == set(public["saturation"])
    assert public["tokens"] == frame.tokens and public["step"] == 1 and public["pool"] is None
    assert public["last_step"] == frame.last_step and public["marks"] == frame.marks
    D = DH // 4  # probe_frame's hidden size is 4: D*H units are 4 or 8
    G = max(1, len(frame.gates))  # a W_hh block per gate (i f g o, r z n), one for a vanilla RNN
    assert np.shape(public["jacobian_norm"]) == (L, D, T) and np.shape(public["w_hh_radius"]) == (L, D, G)
    assert np.shape(public["w_hh_singular"]) == (L, D, G, min(8, DH // D))
    if "f" in frame.gates:
        assert np.shape(public["cell_path_mean"]) == np.shape(public["cell_path_max"]) == (L, D, T)
    else:
        assert public["cell_path_mean"] is None and public["cell_path_max"] is None


def test_absent_arrays_are_not_listed_and_are_null_in_json() -> None:
    made = Frame.from_probe("r", dataclasses.replace(_GRU, itemized=None, connectivity_itemized=None))
    back = Frame.from_bytes(made.to_bytes())
    assert {"itemized", "connectivity_itemized", "c", "grad_c"}.isdisjoint(back.arrays)
    public = back.to_json()
    assert public["itemized"] is None and public["connectivity_itemized"] is None and public["c"] is None
    assert set(public["gates"]) == {"r", "z", "n"}
    old = Frame.from_bytes(Frame.from_probe("r", dataclasses.replace(_GRU, theory=None)).to_bytes())
    assert set(THEORY_ARRAYS).isdisjoint(old.arrays)  # a frame without its theory reads, as before
    assert all(old.to_json()[name] is None for name in THEORY_ARRAYS)
    rnn = Frame.from_probe("r", probe_frame("rnn_tanh")).to_json()
    assert rnn["gates"] == {} and rnn["unit_means"] == {} and rnn["saturation"] == {}


# -- the display frame -----------------------------------------------------------------------


def test_a_frame_that_fits_is_its_own_display_frame(frame: ProbeFrame) -> None:
    made = Frame.from_probe("r", frame)
    assert made.pooled() is made and made.pooled(MAX_T, MAX_UNITS) is made
    assert made.sizes() == (frame.mask.shape[0], frame.h.shape[-1])


def test_pooled_shapes_header_and_marks(long_frame: Frame) -> None:
    shown = long_frame.pooled(max_t=5, max_units=4)  # T 23 -> bins of 5 -> 5; 6 units -> bins of 2 -> 3
    assert shown is not long_frame
    assert shown.header["pool"] == {"T": 23, "units": 6, "t_width": 5, "unit_width": 2}
    assert shown.sizes() == (5, 3)
    for key in ("marks", "mark_label", "last_step", "step", "loss", "saturation", "run_id"):
        assert shown.header[key] == long_frame.header[key], key  # full-resolution t
    assert long_frame.header["pool"] is None  # the full frame is untouched
    L = 2
    want = {
        "inputs": (5, 2),
        "targets": (5, 1),
        "mask": (5,),
        "outputs": (5, 1),
        "h": (L, 5, 3),
        "c": (L, 5, 3),
        "unit_means.f": (L, 3),
        "grad_h": (L, 5),
        "grad_h_last": (L, 5),
        "grad_c": (L, 5),
        "itemized": (L, 5, 5),
        "connectivity": (5,),
        "connectivity_total": (5,),
        "connectivity_itemized": (5, 5),
        **{f"gates.{g}": (L, 5, 3) for g in "ifgo"},
        "jacobian_norm": (L, 1, 5),
        "cell_path_mean": (L, 1, 5),
        "cell_path_max": (L, 1, 5),
        "w_hh_radius": (L, 1, 4),
        "w_hh_singular": (L, 1, 4, 6),
    }
    assert {name: a.shape for name, a in shown.arrays.items() if name in want} == want
    assert set(shown.arrays) == set(long_frame.arrays)
    back = Frame.from_bytes(shown.to_bytes())  # a display frame travels as bytes, pool and all
    assert back.header == shown.header
    assert shown.to_json()["pool"] == shown.header["pool"]
    with pytest.raises(ValueError, match="pooled already"):
        shown.pooled(2, 2)


def _bins(n: int, width: int) -> list[slice]:
    return [slice(i, min(i + width, n)) for i in range(0, n, width)]


def test_pooling_rules_values_mean_norms_max_targets_first(long_frame: Frame) -> None:
    full, shown = long_frame.arrays, long_frame.pooled(max_t=5, max_units=4).arrays
    ts, us = _bins(23, 5), _bins(6, 2)  # the last t bin holds 3 steps
    for j, t in enumerate(ts):
        np.testing.assert_allclose(shown["inputs"][j], full["inputs"][t].mean(0), rtol=1e-6)
        assert shown["mask"][j] == full["mask"][t].max()
        assert shown["targets"][j].tolist() == full["targets"][t.start].tolist()
        np.testing.assert_array_equal(shown["grad_h_last"][:, j], full["grad_h_last"][:, t].max(1))
        np.testing.assert_array_equal(shown["connectivity"][j], full["connectivity"][t].max())
        np.testing.assert_array_equal(shown["jacobian_norm"][..., j], full["jacobian_norm"][..., t].max(-1))
        np.testing.assert_array_equal(shown["cell_path_max"][..., j], full["cell_path_max"][..., t].max(-1))
        np.testing.assert_allclose(
            shown["cell_path_mean"][..., j], full["cell_path_mean"][..., t].mean(-1), rtol=1e-6
        )
        for k, u in enumerate(us):
            np.testing.assert_allclose(
                shown["h"][:, j, k], full["h"][:, t, u].mean((1, 2)), rtol=1e-5, atol=1e-7
            )
            np.testing.assert_allclose(
                shown["gates.f"][:, j, k], full["gates.f"][:, t, u].mean((1, 2)), rtol=1e-5, atol=1e-7
            )
        for i, s in enumerate(ts):
            np.testing.assert_array_equal(shown["itemized"][:, i, j], full["itemized"][:, s, t].max((1, 2)))
            assert shown["connectivity_itemized"][i, j] == full["connectivity_itemized"][s, t].max()
    for name in ("w_hh_radius", "w_hh_singular"):  # no t or unit axis: unchanged
        np.testing.assert_array_equal(shown[name], full[name])
    for k, u in enumerate(us):
        np.testing.assert_allclose(shown["unit_means.o"][:, k], full["unit_means.o"][:, u].mean(1), rtol=1e-6)


def test_tokens_take_each_bin_s_first() -> None:
    made = Frame.from_probe("r", probe_frame("gru", seq_len=7))
    tokens = made.header["tokens"]
    assert tokens is not None and len(tokens) == 7
    assert made.pooled(max_t=3).header["tokens"] == tokens[::3]


def test_a_long_wide_frame_pools_to_the_display_limits() -> None:
    pf = probe_frame("lstm", seq_len=1001, hidden=300)
    shown = Frame.from_probe("r", pf).pooled()
    assert shown.header["pool"] == {"T": 1001, "units": 300, "t_width": 3, "unit_width": 2}
    assert shown.sizes() == (334, 150) and shown.sizes()[0] <= MAX_T
    assert len(shown.to_bytes()) < len(Frame.from_probe("r", pf).to_bytes()) / 5


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    width=st.integers(1, 12),
    how=st.sampled_from(["max", "mean", "first"]),
    seed=st.integers(0, 2**16),
)
def test_pool_matches_a_loop_over_bins(
    n: int, width: int, how: Literal["max", "mean", "first"], seed: int
) -> None:
    a = np.random.default_rng(seed).normal(size=(3, n, 2)).astype(np.float32)
    got = pool(a, 1, width, how)
    bins = [a[:, s] for s in _bins(n, width)]
    if how == "max":
        want = np.stack([b.max(1) for b in bins], axis=1)
    elif how == "mean":
        want = np.stack([b.mean(1) for b in bins], axis=1)
    else:
        want = np.stack([b[:, 0] for b in bins], axis=1)
    assert got.shape == (3, math.ceil(n / width), 2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("n", "max_n", "width"), [(1000, 500, 2), (501, 500, 2), (10, 500, 1), (2000, 500, 4)]
)
def test_bin_width(n: int, max_n: int, width: int) -> None:
    assert bin_width(n, max_n) == width and math.ceil(n / width) <= max_n

"""app.core.flow: one frame's gradient-flow rows and the answer assembled from many."""

from __future__ import annotations

import numpy as np
import orjson

from app.core.flow import FlowRows, flow_view, keep_rows
from app.core.frames import Frame
from tests.core.test_frames import probe_frame


def _rows(layers: int = 2, seq_len: int = 6) -> FlowRows:
    return FlowRows.of(Frame.from_probe("r", probe_frame("lstm", layers=layers, seq_len=seq_len)))


def test_rows_of_a_frame_keep_both_kinds_of_every_layer() -> None:
    pf = probe_frame("lstm", layers=2)
    rows = FlowRows.of(Frame.from_probe("r", pf))
    assert rows.grad_h.shape == rows.grad_h_last.shape == (2, 6)
    np.testing.assert_allclose(rows.grad_h, pf.grad_h, rtol=1e-6)
    assert rows.T == 6 and rows.width == 1 and set(rows.saturation) == {"i", "f", "o", "g"}


def test_the_answer_stacks_one_row_per_step_of_the_layer_and_kind() -> None:
    a, b = _rows(), _rows()
    view = flow_view([(1, a), (5, b)], "total", 1, total_rows=3)
    answer = view.answer()
    assert answer["steps"] == [1, 5] and answer["layer"] == 1 and answer["total_rows"] == 3
    np.testing.assert_array_equal(answer["z"], np.stack([a.grad_h[1], b.grad_h[1]]))
    assert answer["t"] == list(range(6)) and answer["T"] == 6 and answer["last_step"] == a.last_step
    assert answer["saturation"]["f"]["low"] == [a.saturation["f"]["low"][1], b.saturation["f"]["low"][1]]
    last = flow_view([(1, a)], "last", 0, 1).answer()
    np.testing.assert_array_equal(last["z"], a.grad_h_last[:1])
    np.testing.assert_array_equal(np.array(orjson.loads(view.to_json())["z"], np.float32), answer["z"])


def test_a_layer_past_the_top_shows_the_top_and_other_shapes_are_left_out() -> None:
    two, other = _rows(), _rows(seq_len=9)
    view = flow_view([(1, two), (2, other), (3, two)], "last", 7, 3)
    assert view.layer == 1 and view.steps == [1, 3] and view.z.shape == (2, 6)


def test_no_rows_is_an_empty_answer() -> None:
    answer = flow_view([], "last", 0, 0).answer()
    assert answer["steps"] == [] and answer["T"] == 0 and answer["last_step"] is None
    assert orjson.loads(flow_view([], "last", 0, 0).to_json())["z"] == []


def test_keep_rows_spreads_evenly_and_keeps_the_ends() -> None:
    assert keep_rows(4, 10) == [0, 1, 2, 3]
    picks = keep_rows(101, 11)
    assert picks[0] == 0 and picks[-1] == 100 and len(picks) == 11

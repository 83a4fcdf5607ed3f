"""history_row: what storage keeps of every probe step, never thinned."""

from __future__ import annotations

from app.core.frames import Frame
from app.services.thinning import HISTORY_ARRAYS, history_row
from tests.core.test_frames import probe_frame


def test_a_history_row_keeps_the_views_arrays_and_header_only() -> None:
    frame = Frame.from_probe("r", probe_frame("lstm", layers=2))
    row = history_row(frame.to_bytes())
    assert row is not None and len(row) < len(frame.to_bytes())
    kept = Frame.from_bytes(row)
    assert set(kept.arrays) == set(HISTORY_ARRAYS) & set(frame.arrays) and "grad_h" in kept.arrays
    assert (kept.arrays["grad_h"] == frame.arrays["grad_h"]).all()
    assert kept.header["saturation"] == frame.header["saturation"] and kept.step == frame.step
    assert history_row(b"not a frame") is None

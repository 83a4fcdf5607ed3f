"""Which probe steps a run keeps within its storage budget, and the history row kept of every step.

What this is: `kept_steps(sizes, budget, pinned)`, a pure function: given the bytes each stored
probe step takes (its frame, display frame and snapshot), it says which steps stay so that they
fit in `budget` bytes. The first and the latest step and every `pinned` step (a fork point) always
stay; the rest are thinned evenly over training: the steps are cut into windows of `stride`
training steps and only the first step of each window is kept, with the smallest power-of-two
stride that fits. The kept sets are nested (a stride's windows are pairs of the half stride's),
so thinning again never brings back a step, and the answer depends only on what is stored.
`history_row(display)`: the few arrays of a display frame that the gradient-flow and spectra
views read (HISTORY_ARRAYS, with the frame's header), which storage keeps for every probe step,
never thinned, so those views stay complete at display resolution.

What this is not: SQL (app.services.storage runs the thinning in the transaction that stores a
frame) or the views themselves (app.services.views).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from app.core.frames import Frame
from app.services.spectra import SPECTRA_ARRAYS

MB = 2**20
FLOW_ARRAYS = ("grad_h", "grad_h_last")  # the gradient-flow view's arrays
HISTORY_ARRAYS = (*FLOW_ARRAYS, *SPECTRA_ARRAYS)


def kept_steps(sizes: Mapping[int, int], budget: int, pinned: Collection[int] = ()) -> set[int]:
    """The steps of `sizes` (step -> bytes) to keep within `budget` bytes (see the module docstring).

    All of them when they fit; otherwise the first, the latest, the `pinned` ones among them and
    the first of each window of the smallest power-of-two stride whose keep fits. When even the
    steps always kept do not fit, only they are kept."""
    if sum(sizes.values()) <= budget:
        return set(sizes)
    steps = np.array(sorted(sizes), dtype=np.int64)
    nbytes = np.array([sizes[int(s)] for s in steps], dtype=np.int64)
    always = np.isin(steps, np.array(list(pinned), dtype=np.int64))
    always[0] = always[-1] = True
    stride = 1
    while True:
        windows = steps // stride
        first = np.ones(len(steps), dtype=bool)
        first[1:] = windows[1:] != windows[:-1]
        keep = first | always
        if int(nbytes[keep].sum()) <= budget or not (keep & ~always).any():
            return {int(s) for s in steps[keep]}
        stride *= 2


def history_row(display: bytes) -> bytes | None:
    """The bytes of a display frame's HISTORY_ARRAYS and header; None for bytes that are no probe
    frame (storage keeps such bytes as given; the views have no row for them)."""
    try:
        return Frame.from_bytes(display, names=HISTORY_ARRAYS).to_bytes()
    except ValueError:
        return None

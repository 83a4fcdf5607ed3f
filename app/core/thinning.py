"""Which probe steps to keep within a byte budget: `kept_steps(sizes, budget, pinned)`, pure.

Given the bytes each probe step takes, it says which steps stay so that they fit in `budget`
bytes. The first and the latest step and every `pinned` step (a fork point) always stay; the rest
are thinned evenly over training: the steps are cut into windows of `stride` training steps and
only the first step of each window is kept, with the smallest power-of-two stride that fits. The
kept sets are nested (a stride's windows are pairs of the half stride's), so thinning again never
brings back a step, and the answer depends only on the steps given.

One rule for every place that thins frames: the server's storage budget (app.services.storage),
the one-file report (gatescope.report) and the notebook widget (gatescope.notebook).
What this is not: reading or deleting anything.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np


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

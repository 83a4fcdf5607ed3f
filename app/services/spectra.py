"""W_hh's spectra over training: the run page's "Why" chart of spectral radius and singular values.

What this is: `SpectraRow.of(frame)` reads one stored probe frame's w_hh_radius (L, D, G) and
w_hh_singular (L, D, G, K) (app.core.jacobians computed them when it probed; display frames keep
them as they are), and `spectra(rows, total_rows)` lays a run's rows out as GET
/api/runs/{id}/spectra answers them: one row per probe step, [layer][direction][block] under it.
A frame without the spectra (stored before frames carried them, or left out for the stack's
size) is counted in `left_out` with its reason in `notes`, never drawn as zeros.

What this is not: the computation of the spectra (app.core.jacobians), storage, or a cache: the
view service (app/services/views.py) reads the frames and keeps the rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from app.core.frames import Frame

SPECTRA_ARRAYS = ("w_hh_radius", "w_hh_singular")
BLOCKS = {  # W_hh's gate blocks by their count, in torch.nn's order (so attached runs name them too)
    1: ["W_hh"],
    3: ["W_hr", "W_hz", "W_hn"],
    4: ["W_hi", "W_hf", "W_hg", "W_ho"],
}
NOT_CARRIED = "They were recorded before probe frames carried them."

Array = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpectraRow:
    """One probe frame's spectra (both None when the frame has none, `note` saying why)."""

    radius: Array | None  # (L, D, G)
    singular: Array | None  # (L, D, G, K)
    note: str | None

    @classmethod
    def of(cls, frame: Frame) -> SpectraRow:
        radius, singular = (frame.arrays.get(name) for name in SPECTRA_ARRAYS)
        if radius is not None and singular is not None:
            return cls(radius, singular, None)
        told = [str(n) for n in frame.header["notes"] if "W_hh" in str(n)]
        return cls(None, None, told[0] if told else NOT_CARRIED)

    @property
    def nbytes(self) -> int:
        arrays = (a.nbytes for a in (self.radius, self.singular) if a is not None)
        return sum(arrays) + len(self.note or "") + 200


class Spectra(BaseModel):
    """GET /api/runs/{id}/spectra."""

    blocks: list[str]  # the names of W_hh's gate blocks ([] before the first frame with spectra)
    steps: list[int]  # the training step of each row
    radius: list[list[list[list[float]]]]  # [row][layer][direction][block] the spectral radius
    singular: list[list[list[list[list[float]]]]]  # [row][layer][direction][block] the top K, descending
    total_rows: int  # probe frames the run has stored
    left_out: int  # frames among those read that carry no spectra
    notes: list[str]  # why they carry none, each sentence once


def spectra(rows: list[tuple[int, SpectraRow]], total_rows: int) -> Spectra:
    """The rows (step, row), oldest first, as the route answers them: the rows without spectra
    are counted and explained, and rows of another shape than the newest are left out."""
    carried = [(s, r.radius, r.singular) for s, r in rows if r.radius is not None and r.singular is not None]
    shape = carried[-1][2].shape if carried else None
    kept = [(s, radius, singular) for s, radius, singular in carried if singular.shape == shape]
    reasons = Counter(r.note for _, r in rows if r.note is not None)
    return Spectra(
        blocks=block_names(int(shape[2])) if shape else [],
        steps=[s for s, _, _ in kept],
        radius=[radius.tolist() for _, radius, _ in kept],
        singular=[singular.tolist() for _, _, singular in kept],
        total_rows=total_rows,
        left_out=len(rows) - len(carried),
        notes=[f"{n} of {len(rows)} probe frames carry no W_hh spectra. {why}" for why, n in reasons.items()],
    )


def block_names(count: int) -> list[str]:
    """The names of W_hh's `count` gate blocks (torch.nn's order)."""
    return BLOCKS.get(count, [f"W_hh block {g}" for g in range(count)])

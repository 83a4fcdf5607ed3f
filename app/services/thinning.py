"""The history row a run keeps of every probe step, whatever its storage budget thins.

What this is: `history_row(display)`: the few arrays of a display frame that the gradient-flow and
spectra views read (HISTORY_ARRAYS, with the frame's header), which storage keeps for every probe
step, never thinned, so those views stay complete at display resolution. Which frames a run keeps
within its budget is app.core.thinning.kept_steps (given the bytes each stored probe step takes:
its frame, display frame and snapshot).

What this is not: SQL (app.services.storage runs the thinning in the transaction that stores a
frame) or the views themselves (app.services.views).
"""

from __future__ import annotations

from app.core.flow import FLOW_ARRAYS
from app.core.frames import Frame
from app.services.spectra import SPECTRA_ARRAYS

MB = 2**20
HISTORY_ARRAYS = (*FLOW_ARRAYS, *SPECTRA_ARRAYS)


def history_row(display: bytes) -> bytes | None:
    """The bytes of a display frame's HISTORY_ARRAYS and header; None for bytes that are no probe
    frame (storage keeps such bytes as given; the views have no row for them)."""
    try:
        return Frame.from_bytes(display, names=HISTORY_ARRAYS).to_bytes()
    except ValueError:
        return None

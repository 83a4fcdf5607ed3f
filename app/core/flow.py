"""The gradient-flow view's rows: one probe frame's share, and the answer made of many.

What this is: `FlowRows.of(frame)` keeps what the gradient-flow view needs of one display frame
(every layer's ||dL/dh_t|| and ||dl_T/dh_t|| at display width, the gate saturation, the sizes);
`keep_rows(n, max_rows)` picks rows evenly, always the first and the last; `flow_view(picked,
kind, layer, total_rows)` assembles the rows of several frames into a `FlowView`, whose
`answer()` is what GET /api/runs/{id}/gradflow answers and `to_json()` its bytes. The server's
view service (app/services/views.py) feeds it rows read from storage; the notebook widget
(gatescope/notebook.py) rows it keeps per frame, so both answer alike.

What this is not: a cache or a reader of storage (app/services/views.py), or the frame codec.
Pure numpy: no torch, no server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray

from app.core.frames import Frame

FlowKind = Literal["last", "total"]
FLOW_KINDS: tuple[FlowKind, ...] = ("last", "total")
FLOW_ARRAYS = ("grad_h", "grad_h_last")  # the frame arrays the rows read (Frame.from_bytes names=)
Array = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class FlowRows:
    """One probe frame's share of the gradient-flow view: every layer, both kinds, display width."""

    grad_h: Array  # (L, W)
    grad_h_last: Array  # (L, W)
    saturation: dict[str, dict[str, list[float]]]  # gate -> {"low": [L], "high": [L]}
    T: int  # timesteps at full resolution
    width: int  # full-resolution timesteps per column
    last_step: int  # the last t with a loss term

    @classmethod
    def of(cls, frame: Frame) -> FlowRows:
        pool = frame.header["pool"]
        W = int(frame.arrays["grad_h"].shape[1])
        return cls(
            grad_h=frame.arrays["grad_h"],
            grad_h_last=frame.arrays["grad_h_last"],
            saturation=frame.header["saturation"],
            T=int(pool["T"]) if pool else W,
            width=int(pool["t_width"]) if pool else 1,
            last_step=int(frame.header["last_step"]),
        )

    @property
    def nbytes(self) -> int:
        floats = sum(len(v) for sides in self.saturation.values() for v in sides.values())
        return self.grad_h.nbytes + self.grad_h_last.nbytes + 24 * floats + 400


@dataclass
class FlowView:
    """A gradient-flow answer with its matrix as numpy (so 2,000 x 500 floats serialize in
    milliseconds)."""

    kind: FlowKind
    layer: int  # the layer shown (the top one when a larger one was asked for)
    T: int  # timesteps at full resolution (0 before the first frame)
    width: int  # full-resolution timesteps pooled (by max) into one column
    steps: list[int]  # the training step of each row
    z: Array  # (rows, W)
    saturation: dict[str, dict[str, list[float]]]  # gate -> {"low", "high"} -> one value per row
    total_rows: int  # probe frames the run has stored (rows before thinning)
    last_step: int | None  # the last t with a loss term; None before the first frame

    def answer(self) -> dict[str, Any]:
        """GET .../gradflow's answer (app/services/views.py GradFlow), `z` still as numpy."""
        return {
            "kind": self.kind,
            "layer": self.layer,
            "T": self.T,
            "width": self.width,
            "t": list(range(0, self.z.shape[1] * self.width, self.width)),
            "steps": self.steps,
            "z": self.z,
            "saturation": self.saturation,
            "total_rows": self.total_rows,
            "last_step": self.last_step,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.answer(), option=orjson.OPT_SERIALIZE_NUMPY)


def keep_rows(n: int, max_rows: int) -> list[int]:
    """Indices of at most `max_rows` of n rows, evenly spread, always the first and the last."""
    if n <= max_rows:
        return list(range(n))
    picks = np.unique(np.linspace(0, n - 1, max(max_rows, 2)).round().astype(int))
    return [int(i) for i in picks]


def flow_view(picked: list[tuple[int, FlowRows]], kind: FlowKind, layer: int, total_rows: int) -> FlowView:
    """The view of `kind` at `layer` (the top layer if there are fewer) made of `picked` (step, rows)
    in step order; `total_rows` is how many frames there are before thinning. Rows of another shape
    than the first's are left out: one matrix never mixes shapes."""
    picked = [(s, r) for s, r in picked if r.grad_h.shape == picked[0][1].grad_h.shape]
    if not picked:
        return FlowView(kind, layer, 0, 1, [], np.zeros((0, 0), np.float32), {}, total_rows, None)
    latest = picked[-1][1]
    layer = min(layer, latest.grad_h.shape[0] - 1)
    z = np.stack([(r.grad_h_last if kind == "last" else r.grad_h)[layer] for _, r in picked])
    saturation: dict[str, dict[str, list[float]]] = {}
    for _, r in picked:
        for gate, sides in r.saturation.items():
            entry = saturation.setdefault(gate, {"low": [], "high": []})
            for side in ("low", "high"):
                entry[side].append(float(sides[side][min(layer, len(sides[side]) - 1)]))
    return FlowView(
        kind=kind,
        layer=layer,
        T=latest.T,
        width=latest.width,
        steps=[s for s, _ in picked],
        z=z,
        saturation=saturation,
        total_rows=total_rows,
        last_step=latest.last_step,
    )

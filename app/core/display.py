"""The view catalog: the constants every view of a run needs, whoever draws it.

What this is: `view_catalog()`, a plain JSON-able dict of what the run page, the one-file report
and the notebook widget read to draw a run: `display` (the display frame's sizes, the log floor of
the gradient views, each gate's kind: sigmoid gates lie in [0, 1], tanh ones in [-1, 1]), `cells`
(each cell's name, gates and a sentence) and `gate_captions` (what to look for in each gate's
heatmap). It lives in app.core (no pydantic, no server) so that the `gatescope` library builds a
snapshot for the widget without the server, and GET /api/catalog (app/services/catalog.py) builds
the same fields from it: one source.

What this is not: the rest of the catalog (tasks, optimizers, limits, presets: app/services/catalog.py).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from app.core.cells import CELLS, GATES
from app.core.frames import MAX_T, MAX_UNITS
from app.core.probes import SIGMOID_GATES

LOG_FLOOR = -30  # log10 of the smallest gradient norm the pages tell apart: below it, the floor colour

CELL_DOCS: dict[str, str] = {
    "rnn_tanh": "Elman RNN, h_t = tanh(W_ih x_t + W_hh h_(t-1) + b): the one whose gradients vanish.",
    "rnn_relu": "Elman RNN with ReLU; with identity init (IRNN) it can hold values over long spans.",
    "lstm": "Long short-term memory: input i, forget f, cell g and output o gates around a cell state c.",
    "gru": "Gated recurrent unit: reset r, update z and candidate n gates, no separate cell state.",
}
# what to look for in each gate's heatmap (and the LSTM cell state's), shown under the run's views
GATE_CAPTIONS: dict[str, str] = {
    "f": "Forget gate f (0..1). A forget gate near 1 (saturated) keeps the cell state, and the gradient, "
    "alive; near 0 it wipes the memory.",
    "i": "Input gate i (0..1): how much of the candidate g is written into the cell at each step. Look for "
    "it opening at the inputs that matter.",
    "o": "Output gate o (0..1): how much of the cell state is shown as h_t.",
    "g": "Candidate g (tanh, −1..1): the value the input gate may write into the cell.",
    "c": "Cell state c_t, the LSTM's memory, on a symmetric scale (±max|c|). Rows that stay steady across "
    "t are memories being kept.",
    "r": "Reset gate r (0..1): how much of h_(t−1) the candidate n may read. Near 0 the unit forgets its "
    "past when proposing n.",
    "z": "Update gate z (0..1): near 1 keeps the old state (and passes its gradient back unchanged), near 0 "
    "overwrites it with n.",
    "n": "Candidate n (tanh, −1..1): the new value the update gate may mix in.",
}


@cache
def _catalog() -> dict[str, Any]:
    gates = dict.fromkeys(g for cell in CELLS for g in GATES[cell])
    return {
        "display": {
            "max_t": MAX_T,
            "max_units": MAX_UNITS,
            "floor": LOG_FLOOR,
            "gate_kinds": {g: "sigmoid" if g in SIGMOID_GATES else "tanh" for g in gates},
        },
        "cells": [{"name": c, "gates": list(GATES[c]), "doc": CELL_DOCS[c]} for c in CELLS],
        "gate_captions": dict(GATE_CAPTIONS),
    }


def view_catalog() -> dict[str, Any]:
    """The view catalog (see the module docstring); a fresh copy, safe to change."""
    return copy.deepcopy(_catalog())

"""The view catalog: the constants every view of a run needs, whoever draws it.

What this is: `view_catalog()`, a plain JSON-able dict of what the run page, the one-file report
and the notebook widget read to draw a run: `display` (the display frame's sizes, the log floor of
the gradient views) and `cells`: each cell's name, a sentence, its gates and the states it carries
besides h (`states`: LSTM's c; sLSTM's c, n and m), and for each of those views its title, its
kind (sigmoid gates lie in [0, 1], tanh ones in [-1, 1], a value is any real number, drawn on
the layer's ±max) and its caption (what to look for in its heatmap). Gates are per cell: minGRU's
z writes where GRU's z keeps, and sLSTM's z is a tanh cell input. It lives in app.core (no
pydantic, no server) so that the `gatescope` library builds a snapshot for the widget without the
server, and GET /api/catalog (app/services/catalog.py) builds the same fields from it: one source.

What this is not: the rest of the catalog (tasks, optimizers, limits, presets: app/services/catalog.py).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from app.core.cells import CELLS, GATE_KINDS, GATES, MODERN_CELLS, STATES, WITHOUT_W_HH, CellName
from app.core.frames import MAX_T, MAX_UNITS

LOG_FLOOR = -30  # log10 of the smallest gradient norm the pages tell apart: below it, the floor colour

CELL_DOCS: dict[CellName, str] = {
    "rnn_tanh": "Elman RNN, h_t = tanh(W_ih x_t + W_hh h_(t-1) + b): the one whose gradients vanish.",
    "rnn_relu": "Elman RNN with ReLU; with identity init (IRNN) it can hold values over long spans.",
    "lstm": "Long short-term memory: input i, forget f, cell g and output o gates around a cell state c.",
    "gru": "Gated recurrent unit: reset r, update z and candidate n gates, no separate cell state.",
    "mingru": "minGRU (Feng et al. 2024): a GRU whose update gate z and candidate read x_t alone, "
    "h_t = (1 - z_t) h_(t-1) + z_t h~_t, so training is a parallel scan over t.",
    "minlstm": "minLSTM (Feng et al. 2024): forget f and input i gates from x_t alone, normalised to "
    "f' + i' = 1, h_t = f'_t h_(t-1) + i'_t h~_t: a parallel scan, no cell state besides h.",
    "slstm": "sLSTM (xLSTM, Beck et al. 2024): exponential input gate, exp or sigmoid forget gate, a "
    "normaliser n_t and a stabiliser m_t, and recurrent weights R, so it runs step by step.",
}
_CLASSIC: dict[str, str] = {
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
_H_TILDE = (
    "Candidate h̃_t = W_h x_t + b_h: a linear function of the input alone, no h_(t−1) and no tanh, on "
    "the layer's ±max scale. Dropping h_(t−1) from here and from the gates is what makes the scan "
    "parallel."
)
# what to look for in each view's heatmap, per cell (a gate's name means different things in different cells)
CAPTIONS: dict[CellName, dict[str, str]] = {
    "rnn_tanh": {},
    "rnn_relu": {},
    "lstm": {g: _CLASSIC[g] for g in ("i", "f", "g", "o", "c")},
    "gru": {g: _CLASSIC[g] for g in ("r", "z", "n")},
    "mingru": {
        "z": "Update gate z (0..1), from x_t alone: near 1 writes the candidate h̃_t over the old state, "
        "near 0 keeps h_(t−1) and passes its gradient back unchanged: the opposite way round from the "
        "GRU's z.",
        "h_tilde": _H_TILDE,
    },
    "minlstm": {
        "f": "Forget gate f (0..1), from x_t alone. The share of h_(t−1) kept is f′ = f / (f + i): near 1 "
        "the memory, and the gradient through time, survive.",
        "i": "Input gate i (0..1), from x_t alone; the share of the candidate written is "
        "i′ = i / (f + i) = 1 − f′.",
        "h_tilde": _H_TILDE,
    },
    "slstm": {
        "z": "Cell input z (tanh, −1..1): the value written into the cell, from x_t and, through the "
        "recurrent weights R_z, from h_(t−1).",
        "i": "Input gate, exponential: exp(ĩ_t), drawn stabilised as i′_t = exp(ĩ_t − m_t) (0..1). An "
        "exponential gate can overrule the past: a later, larger ĩ outweighs everything stored before it.",
        "f": "Forget gate (exp or sigmoid), drawn stabilised as f′_t = f_t exp(m_(t−1) − m_t) (0..1): "
        "the share of c and n carried on to the next step.",
        "o": "Output gate o (0..1): how much of c_t / n_t is shown as h_t.",
        "c": "Cell state c_t, as stored (divided by exp(m_t) with the stabiliser), on ±max|c|: only the "
        "ratio c_t / n_t reaches h.",
        "n": "Normaliser n_t = f′_t n_(t−1) + i′_t, the running sum of the input gates: h_t = o_t c_t / n_t, "
        "so c_t / n_t is a weighted average of the z's written so far.",
        "m": "Stabiliser m_t = max(log f_t + m_(t−1), ĩ_t), the log scale taken out of every exponent so "
        "that exp never overflows. Without it (the option), c and n pass 3.4e38 and h becomes NaN.",
    },
}
TITLES: dict[str, str] = {
    "c": "Cell state c",
    "n": "Normaliser n",
    "m": "Stabiliser m",
    "h_tilde": "Candidate h̃",
}


def _cell(cell: CellName) -> dict[str, Any]:
    names = (*GATES[cell], *STATES.get(cell, ()))
    kinds: dict[str, str] = {"c": "value", **GATE_KINDS[cell]}
    return {
        "name": cell,
        "doc": CELL_DOCS[cell],
        "gates": list(GATES[cell]),
        "states": list(STATES.get(cell, ())),
        "w_hh": cell not in WITHOUT_W_HH,  # recurrent weights: what rescale, reinit schemes and gain act on
        "bidirectional": cell not in MODERN_CELLS,  # it can run both ways (the modern cells: one way only)
        "views": {
            n: {"title": TITLES.get(n, f"Gate {n}"), "kind": kinds[n], "caption": CAPTIONS[cell][n]}
            for n in names
        },
    }


@cache
def _catalog() -> dict[str, Any]:
    return {
        "display": {"max_t": MAX_T, "max_units": MAX_UNITS, "floor": LOG_FLOOR},
        "cells": [_cell(c) for c in CELLS],
    }


def view_catalog() -> dict[str, Any]:
    """The view catalog (see the module docstring); a fresh copy, safe to change."""
    return copy.deepcopy(_catalog())

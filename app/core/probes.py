"""Probes: what a network does with one input, at one training step.

What this is: `probe(net, task, sample)` runs the instrumented cells on a single sample and
returns a `ProbeFrame`: every h_t (all layers), LSTM c_t and gates i, f, g, o, GRU gates r, z, n
(minGRU z, h_tilde; minLSTM f, i, h_tilde; sLSTM z, i, f, o, its c_t, and n_t and m_t kept with
the gates), and the gradient norms that flow back through time:

- grad_h      ||dL/dh_t||, the total backprop-through-time derivative (readout *and* recurrent
              path) of the sample's whole loss L, every layer and t; grad_c the same for c_t;
- grad_h_last ||dl_T/dh_t||, the gradient of the last loss term alone: the classic vanishing picture;
- itemized    ||dl_s/dh_t|| for every loss step s and every t (RNNbow), sequences up to 200 steps;
- connectivity ||dl_s/dx_t|| at the input (Distill's "memorization in RNNs");
- gate saturation (fractions below 0.1 and above 0.9) and per-unit gate means;
- with the weights given to `make_frame`, the theory (`app.core.jacobians.Theory`): each step's
  Jacobian spectral norm, the LSTM cell path f_t, W_hh's spectral radius and singular values.

The same three pieces make the frames of a person's own torch.nn.RNN / LSTM / GRU
(`app.core.attach`), so built-in and attached frames are one computation:

- `forward_traces` runs the fused torch.nn kernel one layer and direction at a time, from any
  initial state, then recomputes every gate for all t at once from the states it returned;
- `backprop` carries the gradient that enters the stack from outside (`Entering`: at the top
  layer's outputs, and at each direction's last h and c, i.e. h_n and c_n) back through every
  layer with the hand-written backward pass (`app.core.cells.backward_direction`), one row per
  loss: the total L, the last term, and each l_s, where l_s is the part of L that enters at step
  s. Tests check every row against autograd on the explicit unrolled graph of
  `app.core.cells.unroll`;
- `make_frame` assembles the `ProbeFrame`.

The modern cells (one way) trace and backprop through their own modules (`app.core.minrnn`,
`app.core.slstm`: `traces` and `backward`, the same contract), held to autograd the same way.

What this is not: part of training. A probe reads the parameters and never writes them, their
.grad, or any random generator, so a run trains bit for bit the same with or without probes.
Norms are float32, computed in float64: underflow gives 0, never NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.core import minrnn, slstm
from app.core.cells import (
    DEFAULT_OPTIONS,
    GATE_KINDS,
    GATES,
    STATES,
    CellName,
    CellOptions,
    DirectionGrads,
    TorchCell,
    Weights,
    backward_direction,
    is_torch_cell,
    layer_weights,
)
from app.core.jacobians import Theory, theory
from app.core.model import RecurrentNet
from app.core.tasks import Batch, Task

ITEMIZE_MAX_STEPS = 200

Array = NDArray[np.float32]
WatchSource = Literal["live", "fixed"]  # gatescope.watch: the training batch's first sample, or its probe=
Source = Literal["built-in", WatchSource]  # where a frame's sample comes from
Seqs = list[list[dict[str, Tensor]]]  # [layer][direction] name -> (T, H), natural time


@dataclass
class ProbeFrame:
    step: int
    tokens: list[str] | None  # display label of each input step
    marks: list[int]  # the timesteps the task marks in this sample (Batch.marks), [] for none
    mark_label: str | None  # what a mark is (Task.mark_label): "marked", "delimiter", or None
    inputs: Array  # (T, I)
    targets: Array | None  # (T,) class ids, or (T, O) values; None for an attached module
    mask: Array  # (T,) 1 where a loss term is taken (where gradient enters from outside)
    outputs: Array | None  # (T, O) the readout's raw outputs; None for an attached module
    loss: float  # the sample's loss L (NaN if unknown)
    h: Array  # (L, T, D*H)
    c: Array | None  # (L, T, D*H), LSTM
    gates: dict[str, Array]  # name -> (L, T, D*H)
    grad_h: Array  # (L, T) ||dL/dh_t||
    grad_h_last: Array  # (L, T) ||dl_T/dh_t||, T the last step with a loss
    grad_c: Array | None  # (L, T) ||dL/dc_t||, LSTM
    itemized: Array | None  # (L, T, T) [layer][s][t] ||dl_s/dh_t||; rows without a loss are 0
    connectivity: Array  # (T,) ||dl_T/dx_t||
    connectivity_total: Array  # (T,) ||dL/dx_t||
    connectivity_itemized: Array | None  # (T, T) [s][t] ||dl_s/dx_t||
    saturation: dict[str, dict[str, list[float]]]  # gate -> {"low": [L], "high": [L]}
    unit_means: dict[str, Array]  # gate -> (L, D*H), mean over t
    last_step: int  # the T of grad_h_last
    notes: list[str] = field(default_factory=list)  # sentences the page shows with the frame
    source: Source = "built-in"  # built-in: the run's probe sample; live / fixed: gatescope.watch
    theory: Theory | None = None  # step Jacobians and W_hh spectra; None when not computed


def probe(
    net: RecurrentNet,
    task: Task,
    sample: Batch,
    step: int = 0,
    window: int | None = None,
    itemize: bool = True,
    spectra: bool = True,
) -> ProbeFrame:
    """Probe `net` on `sample` (a batch of one). `window` mirrors truncated BPTT in training;
    `spectra` False leaves the W_hh spectra out (app.core.jacobians.spectra_every)."""
    spec = net.spec
    params = {k: v.detach() for k, v in net.recurrent_params().items()}
    seqs = forward_traces(
        spec.cell, params, sample.inputs[0], spec.num_layers, spec.bidirectional, options=spec.options
    )

    # the gradient that reaches the top layer through the readout: row s is dl_s/dh_s
    top = torch.cat([seq["h"] for seq in seqs[-1]], dim=-1)[None].requires_grad_(True)  # (1, T, D*H)
    with torch.enable_grad():
        y = net.readout(top)  # (1, T, O)
        terms = task.step_losses(y, sample)[0] / sample.mask.sum()  # (T,) l_s; L = sum_s l_s
        (g_top,) = torch.autograd.grad(terms.sum(), top)

    loss_steps = [int(s) for s in torch.nonzero(sample.mask[0]).flatten()]
    entering = Entering(top=g_top[0])
    grads = backprop(
        spec.cell, params, seqs, entering, loss_steps, itemize=itemize, window=window, options=spec.options
    )
    return make_frame(
        spec.cell,
        seqs,
        grads,
        step=step,
        inputs=sample.inputs[0],
        mask=sample.mask[0],
        loss=float(terms.sum().detach()),
        tokens=sample.tokens[0] if sample.tokens is not None else None,
        targets=_np(sample.targets[0].float()),
        outputs=_np(y[0]),
        marks=list(sample.marks[0]) if sample.marks is not None else [],
        mark_label=task.mark_label,
        params=params,
        spectra=spectra,
        options=spec.options,
    )


# ----------------------------------------------------------------------------------------------
# forward: states and gates of one sample


@torch.no_grad()
def forward_traces(
    cell: CellName,
    params: Mapping[str, Tensor],
    x: Tensor,
    num_layers: int,
    bidirectional: bool,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    options: CellOptions = DEFAULT_OPTIONS,
) -> Seqs:
    """One sample x (T, I) through the stack: [layer][direction] name -> (T, H), natural time.

    `params` in torch.nn names (biases included); `h0`, `c0` (L*D, H) the initial states (zeros
    if None). Each direction of each layer runs through the fused kernel (fast, and the very
    computation training does); its gates are then recomputed from the states it returned, all t
    at once. Only the LSTM cell state needs a loop, one fused multiply-add a step. Each
    direction's trace also holds its initial state as "h0" (and "c0"), (H,). The modern cells
    (one way, from zero states here) trace through their own modules: `app.core.minrnn.traces`
    (the parallel scan) and `app.core.slstm.traces`.
    """
    if cell in ("mingru", "minlstm"):
        return minrnn.traces(cell, params, x, num_layers, h0)
    if cell == "slstm":
        return slstm.traces(params, x, num_layers, None, forget=options.forget, stabilizer=options.stabilizer)
    assert is_torch_cell(cell)
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    inp = x  # (T, I_layer)
    traces = []
    for layer in range(num_layers):
        dirs = []
        for d in range(D):
            k = layer * D + d
            w = layer_weights(params, layer, reverse=d == 1)
            start_h = h0[k] if h0 is not None else x.new_zeros(H)  # (H,)
            start_c = (c0[k] if c0 is not None else x.new_zeros(H)) if cell == "lstm" else None
            xs = inp.flip(0) if d == 1 else inp  # the direction's own time
            h = _kernel(cell, w, xs, start_h, start_c)  # (T, H)
            seq = _gates(cell, w, xs, h, start_h, start_c)
            dirs.append({k: v.flip(0) for k, v in seq.items()} if d == 1 else seq)
            dirs[-1]["h0"] = start_h
            if start_c is not None:
                dirs[-1]["c0"] = start_c
        traces.append(dirs)
        inp = torch.cat([seq["h"] for seq in dirs], dim=-1)  # (T, D*H)
    return traces


def _kernel(cell: TorchCell, w: Weights, x: Tensor, h0: Tensor, c0: Tensor | None) -> Tensor:
    """The fused torch.nn kernel, one layer and direction: h_t (T, H) from x (T, I) and h0 (H,)."""
    weights = [w.w_ih, w.w_hh, w.b_ih, w.b_hh]
    hx = h0.reshape(1, 1, -1)
    flags = (True, 1, 0.0, False, False, True)  # biases, one layer, no dropout, eval, one way, batch first
    if cell == "lstm":
        assert c0 is not None
        return torch.lstm(x[None], (hx, c0.reshape(1, 1, -1)), weights, *flags)[0][0]
    kernel = {"gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}[cell]
    return kernel(x[None], hx, weights, *flags)[0][0]


def _gates(
    cell: TorchCell, w: Weights, x: Tensor, h: Tensor, h0: Tensor, c0: Tensor | None
) -> dict[str, Tensor]:
    """Gates of every step from the inputs x (T, I), the states h (T, H) the kernel produced and
    the initial state h0 (H,) (and c0, LSTM)."""
    prev = torch.cat([h0[None], h[:-1]])  # (T, H) the state each step read
    xw = torch.addmm(w.b_ih, x, w.w_ih.T)  # (T, G*H)
    hw = torch.addmm(w.b_hh, prev, w.w_hh.T)  # (T, G*H)
    if cell == "lstm":
        assert c0 is not None
        pre_i, pre_f, pre_g, pre_o = (xw + hw).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g), torch.sigmoid(pre_o)
        cs = torch.empty_like(h)  # (T, H)
        c = c0
        for c_t, written, keep in zip(cs.unbind(0), (i * g).unbind(0), f.unbind(0), strict=True):
            c = torch.addcmul(written, keep, c, out=c_t)  # c_t = f_t * c_{t-1} + i_t * g_t
        return {"h": h, "c": cs, "i": i, "f": f, "g": g, "o": o}
    if cell == "gru":
        x_r, x_z, x_n = xw.chunk(3, dim=-1)
        h_r, h_z, h_n = hw.chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        return {"h": h, "r": r, "z": z, "n": torch.tanh(x_n + r * h_n), "hn": h_n}
    return {"h": h}


# ----------------------------------------------------------------------------------------------
# backward: the gradient rows of one sample, through the whole stack


@dataclass(frozen=True)
class Entering:
    """The gradient that enters one sample's stack from outside, where it enters (None: none)."""

    top: Tensor | None = None  # (T, D*H) at the top layer's h_t: dL/d(output)
    h_last: Tensor | None = None  # (L*D, H) at each direction's last h: dL/dh_n
    c_last: Tensor | None = None  # (L*D, H) at each LSTM direction's last c: dL/dc_n


@dataclass(frozen=True)
class Gradients:
    """The gradient norms of a frame (the same names as ProbeFrame's)."""

    grad_h: Array  # (L, T)
    grad_h_last: Array  # (L, T)
    grad_c: Array | None  # (L, T), LSTM
    itemized: Array | None  # (L, T, T)
    connectivity: Array  # (T,)
    connectivity_total: Array  # (T,)
    connectivity_itemized: Array | None  # (T, T)
    last_step: int


@torch.no_grad()
def backprop(
    cell: CellName,
    params: Mapping[str, Tensor],
    seqs: Seqs,
    entering: Entering,
    steps: Sequence[int],
    *,
    itemize: bool,
    window: int | None = None,
    options: CellOptions = DEFAULT_OPTIONS,
) -> Gradients:
    """Every gradient norm of a frame from what `forward_traces` computed and what enters.

    `steps` (ascending) are the loss steps s: where gradient enters (each l_s); the last of them
    is the T of grad_h_last (T - 1 if there are none). Rows: 0 the whole loss L, 1 the last term,
    then, with `itemize` and T <= ITEMIZE_MAX_STEPS, one per step s.
    """
    L, T = len(seqs), seqs[0][0]["h"].shape[0]
    last = steps[-1] if steps else T - 1
    itemized_steps = list(steps) if itemize and T <= ITEMIZE_MAX_STEPS else []
    row_steps = [last, *itemized_steps]  # where each row but the first (all of L) enters
    one = len(steps) <= 1  # a single loss step: every row is all of L, computed once
    row_norms, grad_c, at_input = _backward_stack(
        cell, params, seqs, entering, [] if one else row_steps, window, options
    )

    x_norms = _norm(at_input, dim=-1).T  # (R, T)
    if one:
        row_norms, x_norms = (np.repeat(a, 1 + len(row_steps), axis=-2) for a in (row_norms, x_norms))
    itemized = conn_items = None
    if itemized_steps:
        itemized = np.zeros((L, T, T), np.float32)
        itemized[:, itemized_steps] = row_norms[:, 2:]
        conn_items = np.zeros((T, T), np.float32)
        conn_items[itemized_steps] = x_norms[2:]
    return Gradients(
        grad_h=row_norms[:, 0],
        grad_h_last=row_norms[:, 1],
        grad_c=grad_c,
        itemized=itemized,
        connectivity=x_norms[1],
        connectivity_total=x_norms[0],
        connectivity_itemized=conn_items,
        last_step=last,
    )


def _backward_stack(
    cell: CellName,
    params: Mapping[str, Tensor],
    seqs: Seqs,
    entering: Entering,
    row_steps: list[int],
    window: int | None,
    options: CellOptions,
) -> tuple[Array, Array | None, Tensor]:
    """Every row back through the stack, top layer first: the row norms ||d row / dh_t|| (L, R, T),
    ||dL/dc_t|| (L, T) for LSTM (else None), and the rows' gradient at the input x (T, R, I)."""
    L, D = len(seqs), len(seqs[0])
    T, H = seqs[0][0]["h"].shape
    R = 1 + len(row_steps)
    row_norms = np.zeros((L, R, T), np.float32)
    grad_c = np.zeros((L, T), np.float32) if "c" in STATES.get(cell, ()) else None
    direct = _top_rows(entering.top, row_steps, T, D * H)  # (T, R, D*H)
    # per direction, the latest step in its own time at which each row's loss enters
    entry = [torch.tensor([T - 1, *row_steps]), T - 1 - torch.tensor([0, *row_steps])]
    for layer in reversed(range(L)):
        # nothing comes from later in the walk in the top layer, or anywhere in a one-way stack
        skip = D == 1 or layer == L - 1
        grads = []
        for d in range(D):
            k, end = layer * D + d, T - 1 if d == 0 else 0  # the step where this direction ends
            rows = [r for r, s in enumerate([None, *row_steps]) if s is None or s == end]
            into = direct[..., d * H : (d + 1) * H]
            if entering.h_last is not None:
                into = into.clone()
                into[end, rows] += entering.h_last[k]
            into_c = None
            if entering.c_last is not None:
                into_c = direct.new_zeros(R, H)
                into_c[rows] = entering.c_last[k]
            if not is_torch_cell(cell):  # one way, nothing entering at h_n
                grads.append(_modern_backward(cell, params, layer, seqs[layer][d], into, window, options))
                continue
            w = layer_weights(params, layer, reverse=d == 1)
            active = entry[d] if skip else None
            grads.append(backward_direction(cell, w, seqs[layer][d], into, d == 1, window, active, into_c))
        row_norms[layer] = _norm(torch.cat([g.h for g in grads], dim=-1), dim=-1).T  # of (T, R, D*H)
        if grad_c is not None:
            grad_c[layer] = _norm(torch.cat([g.c for g in grads if g.c is not None], dim=-1)[:, 0], dim=-1)
        direct = sum(g.x for g in grads[1:]) + grads[0].x  # (T, R, I_layer): into the layer below
    return row_norms, grad_c, direct


def _modern_backward(
    cell: CellName,
    params: Mapping[str, Tensor],
    layer: int,
    seq: dict[str, Tensor],
    direct: Tensor,
    window: int | None,
    options: CellOptions,
) -> DirectionGrads:
    """`backward_direction` of a modern cell: its module's own hand-written backward pass."""
    if cell == "slstm":
        o = options
        return slstm.backward(params, layer, seq, direct, window, forget=o.forget, stabilizer=o.stabilizer)
    assert cell in ("mingru", "minlstm")
    return minrnn.backward(cell, params, layer, seq, direct, window)


def _top_rows(top: Tensor | None, row_steps: list[int], T: int, width: int) -> Tensor:
    """The gradient at the top layer's outputs as rows (T, R, width): row 0 all of it, row 1 + j
    only what enters at step row_steps[j]."""
    direct = torch.zeros(T, 1 + len(row_steps), width)
    if top is not None:
        direct = direct.to(top)
        direct[:, 0] = top
        index = torch.tensor(row_steps, dtype=torch.long)
        direct[index, torch.arange(1, 1 + len(row_steps))] = top[index]
    return direct


def _norm(g: Tensor, dim: int) -> Array:
    """Euclidean norms in float64, returned as finite float32 (0 for underflow or NaN)."""
    n = torch.linalg.vector_norm(g.double(), dim=dim).float()
    return np.asarray(torch.nan_to_num(n, nan=0.0).numpy(), dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# the frame


def make_frame(
    cell: CellName,
    seqs: Seqs,
    grads: Gradients,
    *,
    step: int,
    inputs: Tensor,
    mask: Tensor,
    loss: float,
    tokens: list[str] | None,
    targets: Array | None = None,
    outputs: Array | None = None,
    marks: list[int] | None = None,
    mark_label: str | None = None,
    notes: list[str] | None = None,
    source: Source = "built-in",
    params: Mapping[str, Tensor] | None = None,
    spectra: bool = True,
    options: CellOptions = DEFAULT_OPTIONS,
) -> ProbeFrame:
    """The `ProbeFrame` of one sample: its states and gates (`seqs`), gradients and context;
    with the stack's weights `params` (torch.nn names, biases included), its theory too (the
    W_hh spectra only with `spectra`)."""
    states = STATES.get(cell, ())
    gates = {name: _layers(seqs, name) for name in (*GATES[cell], *(s for s in states if s != "c"))}
    theory_ = theory(cell, params, seqs, spectra, options) if params is not None else None
    notes = [
        *(notes or []),
        *(_overflow(seqs) if cell == "slstm" else []),
        *(theory_.notes if theory_ is not None else ()),
    ]
    kinds = GATE_KINDS[cell]
    bounded = {name: v for name, v in gates.items() if kinds.get(name) in ("sigmoid", "tanh")}
    return ProbeFrame(
        step=step,
        tokens=tokens,
        marks=marks or [],
        mark_label=mark_label,
        inputs=_np(inputs),
        targets=targets,
        mask=_np(mask),
        outputs=outputs,
        loss=loss,
        h=_layers(seqs, "h"),
        c=_layers(seqs, "c") if "c" in states else None,
        gates=gates,
        grad_h=grads.grad_h,
        grad_h_last=grads.grad_h_last,
        grad_c=grads.grad_c,
        itemized=grads.itemized,
        connectivity=grads.connectivity,
        connectivity_total=grads.connectivity_total,
        connectivity_itemized=grads.connectivity_itemized,
        saturation={name: _saturation(kinds[name], v) for name, v in bounded.items()},
        unit_means={name: v.mean(axis=1) for name, v in gates.items()},
        last_step=grads.last_step,
        notes=notes,
        source=source,
        theory=theory_,
    )


def _layers(seqs: Seqs, name: str) -> Array:
    """One quantity of every layer, both directions side by side: (L, T, D*H)."""
    return np.stack([_np(torch.cat([seq[name] for seq in dirs], dim=-1)) for dirs in seqs])


def _overflow(seqs: Seqs) -> list[str]:
    """A sentence for a trace that overflowed (sLSTM without its stabiliser): where h stops being a number."""
    for layer, dirs in enumerate(seqs):
        bad = ~torch.isfinite(dirs[0]["h"]).all(dim=-1)  # (T,)
        if bool(bad.any()):
            t = int(torch.nonzero(bad)[0])
            return [
                f"Layer {layer} overflowed at t = {t}: exp(...) passed float32's 3.4e38, so c_t and n_t "
                "are inf and h_t = o_t c_t / n_t is NaN from there on (drawn as 0). The stabiliser m_t "
                "prevents this."
            ]
    return []


def _saturation(kind: str, values: Array) -> dict[str, list[float]]:
    """Fractions of a gate's values below 0.1 and above 0.9 per layer (tanh gates read as (v+1)/2)."""
    v = values if kind == "sigmoid" else (values + 1) / 2
    flat = v.reshape(v.shape[0], -1)
    return {"low": (flat < 0.1).mean(axis=1).tolist(), "high": (flat > 0.9).mean(axis=1).tolist()}


def _np(t: Tensor) -> Array:
    return np.asarray(t.detach().cpu().numpy(), dtype=np.float32)

"""Probes: what a network does with one fixed input, at one training step.

What this is: `probe(net, task, sample)` runs the instrumented cells on a single sample and
returns a `ProbeFrame`: every h_t (all layers), LSTM c_t and gates i, f, g, o, GRU gates r, z, n,
and the gradient norms that flow back through time:

- grad_h      ||dL/dh_t||, the total backprop-through-time derivative (readout *and* recurrent
              path) of the sample's whole loss L, every layer and t; grad_c the same for c_t;
- grad_h_last ||dl_T/dh_t||, the gradient of the last loss term alone: the classic vanishing picture;
- itemized    ||dl_s/dh_t|| for every loss step s and every t (RNNbow), sequences up to 200 steps;
- connectivity ||dl_s/dx_t|| at the input (Distill's "memorization in RNNs");
- gate saturation (fractions below 0.1 and above 0.9) and per-unit gate means.

The forward pass runs the fused torch.nn kernel one layer and direction at a time, then
recomputes every gate for all t at once from the states it returned (`forward_traces`). All the
gradients come from one hand-written backward pass (`app.core.cells.backward_direction`), one
row per loss: the total L, the last term, and each l_s. Tests check every row against autograd
on the explicit unrolled graph of `app.core.cells.unroll`.

What this is not: part of training. A probe reads the parameters and never writes them, their
.grad, or any random generator, so a run trains bit for bit the same with or without probes.
Norms are float32, computed in float64: underflow gives 0, never NaN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.core.cells import GATES, CellName, Weights, backward_direction, layer_weights
from app.core.model import ModelSpec, RecurrentNet, fused_module
from app.core.tasks import Batch, Task

ITEMIZE_MAX_STEPS = 200
SIGMOID_GATES = {"i", "f", "o", "r", "z"}  # in [0, 1]; g and n are tanh-valued, in [-1, 1]

Array = NDArray[np.float32]


@dataclass
class ProbeFrame:
    step: int
    tokens: list[str] | None  # display label of each input step
    marks: list[int]  # the timesteps the task marks in this sample (Batch.marks), [] for none
    mark_label: str | None  # what a mark is (Task.mark_label): "marked", "delimiter", or None
    inputs: Array  # (T, I)
    targets: Array  # (T,) class ids, or (T, O) values
    mask: Array  # (T,) 1 where a loss term is taken
    outputs: Array  # (T, O) the readout's raw outputs
    loss: float  # the sample's loss L
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


def probe(
    net: RecurrentNet,
    task: Task,
    sample: Batch,
    step: int = 0,
    window: int | None = None,
    itemize: bool = True,
) -> ProbeFrame:
    """Probe `net` on `sample` (a batch of one). `window` mirrors truncated BPTT in training."""
    spec = net.spec
    L = spec.num_layers
    with torch.no_grad():
        seqs = forward_traces(net, sample.inputs)  # [layer][direction] name -> (T, H)
    T = sample.inputs.shape[1]

    # the gradient that reaches the top layer through the readout: row s is dl_s/dh_s
    top = torch.cat([seq["h"] for seq in seqs[-1]], dim=-1)[None].requires_grad_(True)  # (1, T, D*H)
    with torch.enable_grad():
        y = net.readout(top)  # (1, T, O)
        terms = task.step_losses(y, sample)[0] / sample.mask.sum()  # (T,) l_s; L = sum_s l_s
        (g_top,) = torch.autograd.grad(terms.sum(), top)
    g_top = g_top[0]  # (T, D*H)

    loss_steps = [int(s) for s in torch.nonzero(sample.mask[0]).flatten()]
    last = loss_steps[-1]
    itemized_steps = loss_steps if itemize and T <= ITEMIZE_MAX_STEPS else []
    direct, entry = _seed_rows(g_top, last, itemized_steps)
    row_norms, grad_c, direct = _backward_stack(net, seqs, direct, entry, window)
    grad_h = row_norms[:, 0]

    x_norms = _norm(direct, dim=-1).T  # (R, T)
    itemized = conn_items = None
    if itemized_steps:
        itemized = np.zeros((L, T, T), np.float32)
        itemized[:, itemized_steps] = row_norms[:, 2:]
        conn_items = np.zeros((T, T), np.float32)
        conn_items[itemized_steps] = x_norms[2:]

    gates = {name: _layers(seqs, name) for name in GATES[spec.cell]}
    return ProbeFrame(
        step=step,
        tokens=sample.tokens[0] if sample.tokens is not None else None,
        marks=list(sample.marks[0]) if sample.marks is not None else [],
        mark_label=task.mark_label,
        inputs=_np(sample.inputs[0]),
        targets=_np(sample.targets[0].float()),
        mask=_np(sample.mask[0]),
        outputs=_np(y[0].detach()),
        loss=float(terms.sum().detach()),
        h=_layers(seqs, "h"),
        c=_layers(seqs, "c") if spec.cell == "lstm" else None,
        gates=gates,
        grad_h=grad_h,
        grad_h_last=row_norms[:, 1],
        grad_c=grad_c,
        itemized=itemized,
        connectivity=x_norms[1],
        connectivity_total=x_norms[0],
        connectivity_itemized=conn_items,
        saturation={name: _saturation(name, v) for name, v in gates.items()},
        unit_means={name: v.mean(axis=1) for name, v in gates.items()},
        last_step=last,
    )


def _seed_rows(g_top: Tensor, last: int, itemized_steps: list[int]) -> tuple[Tensor, list[Tensor]]:
    """The readout's gradient g_top (T, D*H) as rows: 0 the whole loss L, 1 the last term l_T, then
    one per itemized l_s, each where its loss enters: `direct` (T, R, D*H). And `entry`: per
    direction, the latest step in that direction's own time at which each row's loss enters."""
    T = g_top.shape[0]
    direct = g_top.new_zeros(T, 2 + len(itemized_steps), g_top.shape[1])
    direct[:, 0] = g_top
    direct[last, 1] = g_top[last]
    for j, s in enumerate(itemized_steps):
        direct[s, 2 + j] = g_top[s]
    entry = [torch.tensor([T - 1, last, *itemized_steps]), T - 1 - torch.tensor([0, last, *itemized_steps])]
    return direct, entry


def _backward_stack(
    net: RecurrentNet,
    seqs: list[list[dict[str, Tensor]]],
    direct: Tensor,
    entry: list[Tensor],
    window: int | None,
) -> tuple[Array, Array | None, Tensor]:
    """Every row back through the stack, top layer first: the row norms ||d row / dh_t|| (L, R, T),
    ||dL/dc_t|| (L, T) for LSTM (else None), and the rows' gradient at the input x (T, R, I)."""
    spec = net.spec
    D, H, L = spec.directions, spec.hidden_size, spec.num_layers
    T, R, _ = direct.shape
    row_norms = np.zeros((L, R, T), np.float32)
    grad_c = np.zeros((L, T), np.float32) if spec.cell == "lstm" else None
    params = {k: v.detach() for k, v in net.recurrent_params().items()}
    for layer in reversed(range(L)):
        # nothing comes from later in the walk in the top layer, or anywhere in a one-way stack
        skip = D == 1 or layer == L - 1
        grads = [
            backward_direction(
                spec.cell,
                layer_weights(params, layer, reverse=d == 1),
                seqs[layer][d],
                direct[..., d * H : (d + 1) * H],
                reverse=d == 1,
                window=window,
                active_from=entry[d] if skip else None,
            )
            for d in range(D)
        ]
        row_norms[layer] = _norm(torch.cat([g.h for g in grads], dim=-1), dim=-1).T  # of (T, R, D*H)
        if grad_c is not None:
            grad_c[layer] = _norm(torch.cat([g.c for g in grads if g.c is not None], dim=-1)[:, 0], dim=-1)
        direct = sum(g.x for g in grads[1:]) + grads[0].x  # (T, R, I_layer): into the layer below
    return row_norms, grad_c, direct


def _norm(g: Tensor, dim: int) -> Array:
    """Euclidean norms in float64, returned as finite float32 (0 for underflow or NaN)."""
    n = torch.linalg.vector_norm(g.double(), dim=dim).float()
    return np.asarray(torch.nan_to_num(n, nan=0.0).numpy(), dtype=np.float32)


def forward_traces(net: RecurrentNet, x: Tensor) -> list[list[dict[str, Tensor]]]:
    """One sample x (1, T, I) through the stack: [layer][direction] name -> (T, H), natural time.

    Each direction of each layer runs through the fused kernel (fast, and the very computation
    training does); its gates are then recomputed from the states it returned, all t at once.
    Only the LSTM cell state needs a loop, one fused multiply-add a step.
    """
    spec = net.spec
    params = net.recurrent_params()
    inp = x[0]  # (T, I_layer)
    traces = []
    for layer in range(spec.num_layers):
        template = _single_layer(spec.cell, inp.shape[-1], spec.hidden_size)
        dirs = []
        for d in range(spec.directions):
            w = layer_weights(params, layer, reverse=d == 1)
            xs = inp.flip(0) if d == 1 else inp  # the direction's own time
            weights = {
                "weight_ih_l0": w.w_ih,
                "weight_hh_l0": w.w_hh,
                "bias_ih_l0": w.b_ih,
                "bias_hh_l0": w.b_hh,
            }
            h = torch.func.functional_call(template, weights, (xs[None],))[0][0]  # (T, H)
            seq = _gates(spec.cell, w, xs, h)
            dirs.append({k: v.flip(0) for k, v in seq.items()} if d == 1 else seq)
        traces.append(dirs)
        inp = torch.cat([seq["h"] for seq in dirs], dim=-1)  # (T, D*H)
    return traces


@functools.cache
def _single_layer(cell: CellName, input_size: int, hidden_size: int) -> torch.nn.RNNBase:
    return fused_module(ModelSpec(cell, input_size, hidden_size, 1))


def _gates(cell: CellName, w: Weights, x: Tensor, h: Tensor) -> dict[str, Tensor]:
    """Gates of every step from the inputs x (T, I) and the states h (T, H) the kernel produced."""
    prev = torch.cat([h.new_zeros(1, h.shape[1]), h[:-1]])  # (T, H) the state each step read
    xw = torch.addmm(w.b_ih, x, w.w_ih.T)  # (T, G*H)
    hw = torch.addmm(w.b_hh, prev, w.w_hh.T)  # (T, G*H)
    if cell == "lstm":
        pre_i, pre_f, pre_g, pre_o = (xw + hw).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g), torch.sigmoid(pre_o)
        written = i * g
        c = torch.zeros_like(written[0])
        cs = []
        for t in range(len(written)):  # c_t = f_t * c_{t-1} + i_t * g_t
            c = torch.addcmul(written[t], f[t], c)
            cs.append(c)
        return {"h": h, "c": torch.stack(cs), "i": i, "f": f, "g": g, "o": o}
    if cell == "gru":
        x_r, x_z, x_n = xw.chunk(3, dim=-1)
        h_r, h_z, h_n = hw.chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        return {"h": h, "r": r, "z": z, "n": torch.tanh(x_n + r * h_n), "hn": h_n}
    return {"h": h}


def _layers(seqs: list[list[dict[str, Tensor]]], name: str) -> Array:
    """One quantity of every layer, both directions side by side: (L, T, D*H)."""
    return np.stack([_np(torch.cat([seq[name] for seq in dirs], dim=-1)) for dirs in seqs])


def _saturation(name: str, values: Array) -> dict[str, list[float]]:
    """Fractions of a gate's values below 0.1 and above 0.9 per layer (tanh gates read as (v+1)/2)."""
    v = values if name in SIGMOID_GATES else (values + 1) / 2
    flat = v.reshape(v.shape[0], -1)
    return {"low": (flat < 0.1).mean(axis=1).tolist(), "high": (flat > 0.9).mean(axis=1).tolist()}


def _np(t: Tensor) -> Array:
    return np.asarray(t.detach().numpy(), dtype=np.float32)

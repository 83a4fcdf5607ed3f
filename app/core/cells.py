"""Recurrent cells written out one timestep at a time, and the hand-written backward pass.

What this is, in two parts:
- the reference forward: vanilla RNN (tanh or ReLU), LSTM and GRU, every gate on a named line
  (`step`), reading parameters in exactly the torch.nn.RNN / LSTM / GRU layout (`weight_ih_l0`,
  `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `..._reverse`; gate order i, f, g, o and r, z, n).
  `unroll` runs a whole multi-layer, optionally bidirectional stack and keeps every h_t, c_t and
  gate as its own tensor, so the graph it builds is the explicit unrolled graph of backprop
  through time. It is the reference the tests hold everything else to (the fused kernels, the
  probes' gradients); nothing outside the tests runs it.
- `backward_direction`, the hand-written backward step of each cell, which carries any number of
  gradient rows back through time at once, from any initial state and with gradient entering at
  every h_t and at the last c; `app.core.probes` computes every probe's gradients with it (the
  built-in runs' and, through `app.core.attach`, those of a person's own modules).

The cell names, gates and states of every cell Gatescope trains live here too (CELLS, GATES,
STATES); the modern cells themselves, minGRU / minLSTM and sLSTM, are written out in
`app.core.minrnn` and `app.core.slstm`, with their own reference and backward pass.

What this is not: the training path, nor the probes' forward pass. Both run the fused torch.nn
modules, which the reference reproduces to within float32 rounding (tests hold outputs and
parameter gradients to 1e-5).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeGuard

import torch
from torch import Tensor

TorchCell = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]  # torch.nn.RNN / LSTM / GRU: written out here
ModernCell = Literal["mingru", "minlstm", "slstm"]  # app.core.minrnn, app.core.slstm: one way only
CellName = Literal["rnn_tanh", "rnn_relu", "lstm", "gru", "mingru", "minlstm", "slstm"]
TORCH_CELLS: tuple[TorchCell, ...] = ("rnn_tanh", "rnn_relu", "lstm", "gru")
MODERN_CELLS: tuple[ModernCell, ...] = ("mingru", "minlstm", "slstm")
CELLS: tuple[CellName, ...] = (*TORCH_CELLS, *MODERN_CELLS)
WITHOUT_W_HH: tuple[CellName, ...] = ("mingru", "minlstm")  # gates read x_t alone: no recurrent weights
# each cell's gates, in the order of its weight rows; a frame's `gates` holds these (and STATES')
GATES: dict[CellName, tuple[str, ...]] = {
    "rnn_tanh": (),
    "rnn_relu": (),
    "lstm": ("i", "f", "g", "o"),
    "gru": ("r", "z", "n"),
    "mingru": ("z", "h_tilde"),
    "minlstm": ("f", "i", "h_tilde"),
    "slstm": ("z", "i", "f", "o"),
}
# the states a cell carries besides h: the frame's `c`, and sLSTM's normaliser n and stabiliser m
# (which a frame keeps with the gates, as gates.n and gates.m)
STATES: dict[CellName, tuple[str, ...]] = {"lstm": ("c",), "slstm": ("c", "n", "m")}
CHUNKS: dict[CellName, int] = {cell: max(1, len(GATES[cell])) for cell in CELLS}
# the range of each gate's values (and of sLSTM's n, m): sigmoid [0, 1], tanh [-1, 1], value: any
# real number (drawn on the layer's ±max). sLSTM's i and f are the stabilised gates i'_t, f'_t, in
# (0, 1]; without the stabiliser they are exp(...) and pass 1, which the views then clip.
GateKind = Literal["sigmoid", "tanh", "value"]
GATE_KINDS: dict[CellName, dict[str, GateKind]] = {
    "rnn_tanh": {},
    "rnn_relu": {},
    "lstm": {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"},
    "gru": {"r": "sigmoid", "z": "sigmoid", "n": "tanh"},
    "mingru": {"z": "sigmoid", "h_tilde": "value"},
    "minlstm": {"f": "sigmoid", "i": "sigmoid", "h_tilde": "value"},
    "slstm": {"z": "tanh", "i": "sigmoid", "f": "sigmoid", "o": "sigmoid", "n": "value", "m": "value"},
}
ForgetKind = Literal["exp", "sigmoid"]


@dataclass(frozen=True)
class CellOptions:
    """What a cell is beyond its name and sizes: sLSTM's forget gate and stabiliser (others: none)."""

    forget: ForgetKind = "exp"  # sLSTM: f_t = exp(f~_t), or sigmoid(f~_t)
    stabilizer: bool = True  # sLSTM: the stabiliser state m_t; off, exp overflows (on purpose)


DEFAULT_OPTIONS = CellOptions()


def is_torch_cell(cell: str) -> TypeGuard[TorchCell]:
    """A cell of torch.nn (written out in this module), not a modern one."""
    return cell in TORCH_CELLS


@dataclass(frozen=True)
class Weights:
    """One layer and direction of a stack, in torch.nn layout."""

    w_ih: Tensor  # (G*H, I)
    w_hh: Tensor  # (G*H, H)
    b_ih: Tensor  # (G*H,)
    b_hh: Tensor  # (G*H,)


def suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


def layer_weights(params: Mapping[str, Tensor], layer: int, reverse: bool) -> Weights:
    s = suffix(layer, reverse)
    return Weights(
        params[f"weight_ih{s}"], params[f"weight_hh{s}"], params[f"bias_ih{s}"], params[f"bias_hh{s}"]
    )


# ----------------------------------------------------------------------------------------------
# forward: one timestep


@dataclass
class StepOut:
    h: Tensor  # (B, H)
    c: Tensor | None  # (B, H), LSTM only
    gates: dict[str, Tensor]  # name -> (B, H)
    hn: Tensor | None = None  # (B, H) GRU only: W_hn h_{t-1} + b_hn, needed by the backward step


def step(cell: TorchCell, xw: Tensor, h: Tensor, c: Tensor | None, w: Weights) -> StepOut:
    """One timestep. `xw` is the input projection x_t W_ih^T + b_ih, computed for all t at once."""
    hw = torch.addmm(w.b_hh, h, w.w_hh.T)  # (B, G*H)
    if cell == "rnn_tanh":
        return StepOut(torch.tanh(xw + hw), None, {})
    if cell == "rnn_relu":
        return StepOut(torch.relu(xw + hw), None, {})
    if cell == "lstm":
        assert c is not None
        pre_i, pre_f, pre_g, pre_o = (xw + hw).chunk(4, dim=-1)
        i = torch.sigmoid(pre_i)  # input gate: how much of the candidate to write
        f = torch.sigmoid(pre_f)  # forget gate: how much of the old cell to keep
        g = torch.tanh(pre_g)  # candidate values
        o = torch.sigmoid(pre_o)  # output gate: how much of the cell to show
        c = f * c + i * g
        h = o * torch.tanh(c)
        return StepOut(h, c, {"i": i, "f": f, "g": g, "o": o})
    # gru
    x_r, x_z, x_n = xw.chunk(3, dim=-1)
    h_r, h_z, h_n = hw.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)  # reset gate: how much of the past feeds the candidate
    z = torch.sigmoid(x_z + h_z)  # update gate: how much of the old state to keep
    n = torch.tanh(x_n + r * h_n)  # candidate state
    h = (1 - z) * n + z * h
    return StepOut(h, None, {"r": r, "z": z, "n": n}, hn=h_n)


# ----------------------------------------------------------------------------------------------
# forward: the whole stack, unrolled


@dataclass
class DirectionTrace:
    """Everything one direction of one layer computed, in natural time order (index t)."""

    h: list[Tensor] = field(default_factory=list)  # T x (B, H)
    c: list[Tensor] = field(default_factory=list)  # T x (B, H), LSTM only
    gates: dict[str, list[Tensor]] = field(default_factory=dict)  # name -> T x (B, H)
    hn: list[Tensor] = field(default_factory=list)  # T x (B, H), GRU only
    h0: Tensor | None = None  # (B, H) the state before the first step of this direction
    c0: Tensor | None = None


@dataclass
class Unrolled:
    output: Tensor  # (B, T, D*H) last layer, both directions concatenated, as torch.nn returns it
    h_n: Tensor  # (L*D, B, H)
    c_n: Tensor | None  # (L*D, B, H), LSTM only
    layers: list[list[DirectionTrace]]  # [layer][direction]
    layer_inputs: list[Tensor]  # [layer] (B, T, I_l): what each layer read


def unroll(
    cell: TorchCell,
    params: Mapping[str, Tensor],
    x: Tensor,
    num_layers: int,
    bidirectional: bool,
    state: tuple[Tensor, Tensor] | Tensor | None = None,
    window: int | None = None,
) -> Unrolled:
    """Run the stack on x (B, T, I), batch first, like torch.nn with batch_first=True.

    `state` is h0 (L*D, B, H), or (h0, c0) for LSTM. With `window` k, the state is carried
    across every k steps but detached (truncated BPTT): no gradient crosses a window boundary.
    """
    B = x.shape[0]
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    h0, c0 = _split_state(state)
    zeros = x.new_zeros(B, H)
    layers: list[list[DirectionTrace]] = []
    layer_inputs: list[Tensor] = []
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    inp = x  # (B, T, I_l)
    for layer in range(num_layers):
        layer_inputs.append(inp)
        traces = []
        for d in range(D):
            k = layer * D + d
            h = h0[k] if h0 is not None else zeros
            c = (c0[k] if c0 is not None else zeros) if cell == "lstm" else None
            tr = _unroll_direction(cell, layer_weights(params, layer, d == 1), inp, h, c, d == 1, window)
            h_n.append(tr.h[0] if d == 1 else tr.h[-1])  # the state where the walk ended
            if tr.c:
                c_n.append(tr.c[0] if d == 1 else tr.c[-1])
            traces.append(tr)
        layers.append(traces)
        inp = torch.cat([torch.stack(tr.h, dim=1) for tr in traces], dim=-1)  # (B, T, D*H)
    return Unrolled(
        output=inp,
        h_n=torch.stack(h_n),
        c_n=torch.stack(c_n) if c_n else None,
        layers=layers,
        layer_inputs=layer_inputs,
    )


def _unroll_direction(
    cell: TorchCell, w: Weights, inp: Tensor, h: Tensor, c: Tensor | None, reverse: bool, window: int | None
) -> DirectionTrace:
    """One direction of one layer over inp (B, T, I) from the state (h, c), kept in natural time."""
    tr = DirectionTrace(h0=h, c0=c)
    T = inp.shape[1]
    xw = (inp @ w.w_ih.T + w.b_ih).unbind(1)  # T x (B, G*H); unbind, never x[:, t] in a loop
    order = range(T - 1, -1, -1) if reverse else range(T)
    for n, t in enumerate(order):
        if window is not None and n > 0 and n % window == 0:
            h = h.detach()
            c = c.detach() if c is not None else None
        out = step(cell, xw[t], h, c, w)
        h, c = out.h, out.c
        tr.h.append(h)
        if c is not None:
            tr.c.append(c)
        for name, value in out.gates.items():
            tr.gates.setdefault(name, []).append(value)
        if out.hn is not None:
            tr.hn.append(out.hn)
    if reverse:  # store in natural time order
        tr.h.reverse()
        tr.c.reverse()
        tr.hn.reverse()
        for values in tr.gates.values():
            values.reverse()
    return tr


def _split_state(state: tuple[Tensor, Tensor] | Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    if state is None:
        return None, None
    if isinstance(state, tuple):
        return state[0], state[1]
    return state, None


# ----------------------------------------------------------------------------------------------
# backward: one direction of one layer, any number of gradient rows at once


@dataclass
class DirectionGrads:
    h: Tensor  # (T, R, H) total dL/dh_t of each row: the readout path plus the recurrent path
    c: Tensor | None  # (T, R, H) total dL/dc_t (LSTM)
    x: Tensor  # (T, R, I) dL/dx_t: gradient at this layer's input


@torch.no_grad()
def backward_direction(
    cell: TorchCell,
    w: Weights,
    seq: dict[str, Tensor],
    direct: Tensor,
    reverse: bool,
    window: int | None = None,
    active_from: Tensor | None = None,
    direct_c: Tensor | None = None,
) -> DirectionGrads:
    """Backprop through time by hand for one direction of one layer.

    `seq` holds what the forward pass computed for one sample, in natural time order: "h" and,
    by cell, "c", the gates and "hn", each (T, H); optionally "h0" and "c0" (H,), the state
    before the first step of this direction (zeros if absent). See `stack_trace`.
    `direct` (T, R, H) is the gradient that reaches h_t from outside the recurrence (the readout,
    the layer above, or whatever read h_n), one row per loss being differentiated; `direct_c`
    (R, H), LSTM only, the gradient that reaches the direction's last c from outside (whatever
    read c_n). Returns the total gradient at every h_t (and c_t) and at every input x_t, row by
    row: rows never mix, so one pass itemizes many losses.

    Every local derivative that does not depend on the incoming gradient is computed for all t
    at once before the walk (`_local_derivatives`); the walk itself (`_walk`) is a few
    elementwise ops and one matmul a step, and the input gradients are one matmul at the end.

    `active_from` (R,) optional, in the direction's own time (reversed for `reverse`): the
    latest step at which anything reaches row r, so that the row is zero at every later step
    (true of the top layer, and of every layer of a one-way stack); rows are then skipped while
    they are still zero, a pure speed-up. A row with a non-zero `direct_c` must be active from
    the last step.
    """
    T, R, H = direct.shape
    h0, c0 = _initial(seq.get("h0"), direct), _initial(seq.get("c0"), direct)
    if reverse:  # walk in the direction's own time; flip back at the end
        direct = direct.flip(0)
        seq = {k: v.flip(0) for k, v in seq.items() if k not in ("h0", "c0")}
    local = _local_derivatives(cell, seq, h0, c0, direct.dtype)
    enter_c = direct_c if direct_c is not None else direct.new_zeros(R, H)

    # rows still zero are skipped: sort rows by when they start, busiest first
    order: Tensor | None = None
    counts = [R] * T
    if active_from is not None:
        starts = active_from.tolist()
        if starts != sorted(starts, reverse=True):  # rows are already busiest first, or are sorted so
            order = torch.argsort(active_from, descending=True, stable=True)
            direct, enter_c = direct[:, order], enter_c[order]
        starts.sort()
        counts = [R - bisect.bisect_left(starts, t) for t in range(T)]  # rows with active_from >= t
    out_h, out_c, out_pre = _walk(cell, w, local, direct, enter_c, counts, window)
    out_x = out_pre @ w.w_ih  # (T, R, I) at every step's input

    def natural(full: Tensor) -> Tensor:  # walk order, sorted rows -> natural time, given rows
        if order is not None:
            full = full[:, torch.argsort(order)]
        return full.flip(0) if reverse else full

    return DirectionGrads(
        h=natural(out_h),
        c=natural(out_c) if out_c is not None else None,
        x=natural(out_x),
    )


@dataclass(frozen=True)
class _Local:
    """The local derivatives of every step, in walk order, each (T, K).

    The gradient at a step's gate pre-activations is spread(g) * `pre`, where spread copies the
    carried gradient (g_h, or g_c for LSTM) across the gate blocks it reaches.
    """

    pre: Tensor  # (T, G*H) at x W_ih^T + b_ih
    hh: Tensor  # (T, G*H) at h W_hh^T + b_hh: `pre`, except GRU's n block, which passes r
    h_to_c: Tensor | None = None  # (T, H) LSTM: dh_t/dc_t
    keep: Tensor | None = None  # (T, H) what passes straight back: LSTM f_t to c, GRU z_t to h


def _local_derivatives(
    cell: TorchCell, seq: dict[str, Tensor], h0: Tensor, c0: Tensor, dtype: torch.dtype
) -> _Local:
    """Everything the backward walk multiplies by that does not depend on the incoming gradient."""
    if cell == "lstm":
        i, f, g, o = seq["i"], seq["f"], seq["g"], seq["o"]
        prev_c = torch.cat([c0, seq["c"][:-1]])  # (T, H) the cell state each step read
        tanh_c = torch.tanh(seq["c"])
        pre = torch.cat([g * i * (1 - i), prev_c * f * (1 - f), i * (1 - g**2), tanh_c * o * (1 - o)], -1)
        return _Local(pre, pre, h_to_c=o * (1 - tanh_c**2), keep=f)
    if cell == "gru":
        H = seq["h"].shape[1]
        prev_h = torch.cat([h0, seq["h"][:-1]])  # (T, H) the state each step read
        r, z, cand, hn = seq["r"], seq["z"], seq["n"], seq["hn"]
        d_n = (1 - z) * (1 - cand**2)
        pre = torch.cat([d_n * hn * r * (1 - r), (prev_h - cand) * z * (1 - z), d_n], -1)
        return _Local(pre, torch.cat([pre[:, : 2 * H], d_n * r], -1), keep=z)
    local = 1 - seq["h"] ** 2 if cell == "rnn_tanh" else (seq["h"] > 0).to(dtype)
    return _Local(local, local)


def _walk(
    cell: TorchCell,
    w: Weights,
    local: _Local,
    direct: Tensor,
    enter_c: Tensor,
    counts: list[int],
    window: int | None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """The walk from the last step to the first, in walk order: the total gradients at h (T, R, H)
    and c (T, R, H, LSTM) and at the gate pre-activations (T, R, G*H).

    `counts[t]` rows are live at step t (the busiest first); rows that join start from zero, and
    the rows not yet live stay zero in the outputs. A handful of torch calls a step, no Python per
    row or unit: written into preallocated outputs, the local derivatives unbound once.
    """
    T, R, H = direct.shape
    out_h = direct.new_zeros(T, R, H)
    out_c = direct.new_zeros(T, R, H) if cell == "lstm" else None
    out_pre = direct.new_zeros(T, R, local.pre.shape[1])
    pre, hh = local.pre.unbind(0), local.hh.unbind(0)
    h_to_c = local.h_to_c.unbind(0) if local.h_to_c is not None else ()
    keep = local.keep.unbind(0) if local.keep is not None else ()
    # per step: the live rows of what reaches h_t, and of where dL/dh_t, dL/d pre and dL/dc_t go
    live = _live_rows([direct, out_h, out_pre, *([out_c] if out_c is not None else [])], counts)
    w_hh_t = w.w_hh.T.contiguous()  # (H, G*H): g @ W_hh as W_hh^T g^T reads W_hh row by row, faster
    n = counts[T - 1] if T else 0
    carry_h = direct.new_zeros(n, H)  # recurrent part of dL/dh_t, from step t+1
    carry_c = enter_c[:n].clone()  # dL/dc_t from step t+1 (at the last step: from outside)
    for t in range(T - 1, -1, -1):
        if counts[t] > n:  # rows whose loss enters here start from zero
            pad = (0, 0, 0, counts[t] - n)
            n = counts[t]
            carry_h = torch.nn.functional.pad(carry_h, pad)
            carry_c = torch.nn.functional.pad(carry_c, pad)
        into, at_h, d_pre, *at_c = live[t]
        gh = torch.add(into, carry_h, out=at_h)  # (n, H) total dL/dh_t
        if out_c is not None:
            gc = torch.addcmul(carry_c, gh, h_to_c[t], out=at_c[0])  # (n, H) total dL/dc_t
            torch.mul(torch.cat([gc, gc, gc, gh], -1), pre[t], out=d_pre)  # (n, G*H) at the gates
            carry_h, carry_c = torch.mm(w_hh_t, d_pre.t()).t(), gc * keep[t]
        elif cell == "gru":
            spread = gh.repeat(1, 3)
            torch.mul(spread, pre[t], out=d_pre)
            carry_h = torch.addmm((gh * keep[t]).t(), w_hh_t, (spread * hh[t]).t()).t()
        else:
            torch.mul(gh, pre[t], out=d_pre)
            carry_h = torch.mm(w_hh_t, d_pre.t()).t()
        if window is not None and t % window == 0:  # truncated BPTT: the graph was cut here
            carry_h, carry_c = torch.zeros_like(carry_h), torch.zeros_like(carry_c)
    return out_h, out_c, out_pre


def _live_rows(tensors: list[Tensor], counts: list[int]) -> list[list[Tensor]]:
    """Per step t, each (T, R, K) tensor's first counts[t] rows at t (views, made once)."""
    R = tensors[0].shape[1]
    steps = zip(*(x.unbind(0) for x in tensors), strict=True)
    return [list(views) if n == R else [v[:n] for v in views] for views, n in zip(steps, counts, strict=True)]


def _initial(state: Tensor | None, like: Tensor) -> Tensor:
    H = like.shape[-1]
    return state.reshape(1, H) if state is not None else like.new_zeros(1, H)


def stack_trace(tr: DirectionTrace) -> dict[str, Tensor]:
    """The trace of one sample (B = 1) as (T, H) tensors, the form `backward_direction` reads."""
    seq = {"h": torch.stack(tr.h)[:, 0]}
    if tr.h0 is not None:
        seq["h0"] = tr.h0.reshape(-1)
    if tr.c0 is not None:
        seq["c0"] = tr.c0.reshape(-1)
    if tr.c:
        seq["c"] = torch.stack(tr.c)[:, 0]
    for name, values in tr.gates.items():
        seq[name] = torch.stack(values)[:, 0]
    if tr.hn:
        seq["hn"] = torch.stack(tr.hn)[:, 0]
    return seq

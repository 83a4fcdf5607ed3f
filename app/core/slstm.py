"""xLSTM's sLSTM cell (Beck et al. 2024): exponential gating, a normalizer state, a stabilizer.

What this is: `SLSTM(input_size, hidden_size, num_layers, forget, stabilizer)`, an nn.Module of
1 to 3 one-way layers, one head, batch-first. Each step, from x_t and h_{t-1}:

    z_t = tanh(z̃_t)                          z̃_t = W_z x_t + R_z h_{t-1} + b_z  (cell input)
    ĩ_t = W_i x_t + R_i h_{t-1} + b_i                                     (input gate: i_t = exp ĩ_t)
    f̃_t = W_f x_t + R_f h_{t-1} + b_f        log f_t = f̃_t ("exp") or log σ(f̃_t) ("sigmoid")
    o_t = σ(W_o x_t + R_o h_{t-1} + b_o)                                  (output gate)
    stabilizer on:  m_t = max(log f_t + m_{t-1}, ĩ_t)
                    i′_t = exp(ĩ_t − m_t),  f′_t = exp(log f_t + m_{t-1} − m_t)
    stabilizer off: m_t = 0,  i′_t = exp(ĩ_t),  f′_t = f_t
    c_t = f′_t c_{t-1} + i′_t z_t      n_t = f′_t n_{t-1} + i′_t      h_t = o_t c_t / n_t

c and n are kept in the stabilised coordinates (both scaled by exp(−m_t)), so h does not depend on
m; the gradients here hold m constant. Without the stabilizer exp overflows float32 within a few
steps of large input-gate pre-activations and h becomes NaN: an option to watch that happen.

Parameters, per layer l (torch.nn.LSTM's init, uniform ±1/√H): `weight_ih_l{l}` (4H, I_l),
`weight_hh_l{l}` (4H, H), the recurrent R, and `bias_l{l}` (4H,), rows in GATES order z, i, f, o.

The module's forward is the training path: the input projections of every t in one matmul, then
one recurrent matmul a step, under an autograd Function whose backward is the same hand-written
walk as the probes' (`_Recurrence`: m held constant, exact for a loss of h; see there).
`unroll` is the reference: every gate on a named line per step and every tensor kept, the
explicit graph of backprop through time the tests hold the rest to.
`traces`, `backward` and `step_norms` are the probes' side (one sample): the per-step quantities,
the hand-written backprop through time of any number of gradient rows, and the exact spectral
norm of each step's Jacobian of (h, c, n).
What this is not: multi-head sLSTM (block-diagonal R), the xLSTM block (convolutions, up/down
projections) or mLSTM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

import torch
from torch import Tensor, nn

from app.core import cells
from app.core.cells import DirectionGrads, DirectionTrace, ForgetKind, Unrolled

Forget = ForgetKind
FORGETS: tuple[Forget, ...] = get_args(ForgetKind)
GATES = cells.GATES["slstm"]  # z, i, f, o
STATES = cells.STATES["slstm"]  # c, n, m
MAX_LAYERS = 3

State = tuple[Tensor, Tensor, Tensor, Tensor]  # (h, c, n, m), each (L, B, H), or (B, H) for one layer
Seqs = list[list[dict[str, Tensor]]]  # [layer][direction: only 0] name -> (T, H), natural time


def check_options(num_layers: int, forget: str) -> None:
    """Raise ValueError, in a sentence, for options SLSTM does not have."""
    if forget not in FORGETS:
        raise ValueError(f"forget must be one of {', '.join(FORGETS)}, not {forget!r}")
    if not 1 <= num_layers <= MAX_LAYERS:
        raise ValueError(f"num_layers must be 1 to {MAX_LAYERS}, not {num_layers}")


def _names(layer: int) -> tuple[str, str, str]:
    return f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_l{layer}"


def _initial(state: State | None, layer: int, like: Tensor, stabilizer: bool) -> State:
    """Layer `layer`'s (h, c, n, m), each (B, H); zeros by default, m = 0 without the stabilizer."""
    if state is None:
        return like, like, like, like
    h, c, n, m = (s[layer] for s in state)
    return h, c, n, m if stabilizer else torch.zeros_like(m)


# ----------------------------------------------------------------------------------------------
# the reference: one timestep, every gate on a named line


@dataclass
class StepOut:
    h: Tensor  # (B, H)
    c: Tensor  # (B, H) stabilised cell state
    n: Tensor  # (B, H) stabilised normalizer
    m: Tensor  # (B, H) stabilizer (0 without it)
    gates: dict[str, Tensor]  # z, i (= i′), f (= f′), o, each (B, H)


def step(
    xw: Tensor, h: Tensor, c: Tensor, n: Tensor, m: Tensor, w_hh: Tensor, forget: Forget, stabilizer: bool
) -> StepOut:
    """One timestep. `xw` is the input projection x_t W_ih^T + b, computed for all t at once."""
    pre_z, pre_i, pre_f, pre_o = torch.addmm(xw, h, w_hh.T).chunk(4, dim=-1)  # (B, H) each
    z = torch.tanh(pre_z)  # cell input: the value written
    log_f = pre_f if forget == "exp" else nn.functional.logsigmoid(pre_f)  # log of the forget gate
    o = torch.sigmoid(pre_o)  # output gate: how much of c/n to show
    m_new = torch.maximum(log_f + m, pre_i) if stabilizer else torch.zeros_like(m)  # stabilizer
    i = torch.exp(pre_i - m_new)  # i′: exponential input gate, stabilised
    f = torch.exp(log_f + m - m_new)  # f′: forget gate, stabilised
    c = f * c + i * z  # cell state
    n = f * n + i  # normalizer: the sum of the input gates, as they were forgotten
    h = o * c / n
    return StepOut(h, c, n, m_new, {"z": z, "i": i, "f": f, "o": o})


def unroll(
    params: Mapping[str, Tensor],
    x: Tensor,
    num_layers: int,
    state: State | None = None,
    window: int | None = None,
    *,
    forget: Forget,
    stabilizer: bool,
) -> Unrolled:
    """Run the stack on x (B, T, I) one `step` at a time, keeping every h_t, c_t, n_t, m_t and gate.

    `state` is (h, c, n, m), each (L, B, H). With `window` k the whole state is carried across
    every k steps but detached (truncated BPTT). The traces' gates hold z, i, f, o, and n and m.
    """
    check_options(num_layers, forget)
    B, T = x.shape[:2]
    H = params["weight_hh_l0"].shape[1]
    zeros = x.new_zeros(B, H)
    layers: list[list[DirectionTrace]] = []
    layer_inputs: list[Tensor] = []
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    inp = x  # (B, T, I_l)
    for layer in range(num_layers):
        layer_inputs.append(inp)
        w_ih, w_hh, bias = (params[k] for k in _names(layer))
        h, c, n, m = _initial(state, layer, zeros, stabilizer)
        tr = DirectionTrace(h0=h, c0=c)
        tr.gates = {name: [] for name in (*GATES, "n", "m")}
        xw = (inp @ w_ih.T + bias).unbind(1)  # T x (B, 4H)
        for t in range(T):
            if window is not None and t > 0 and t % window == 0:
                h, c, n, m = h.detach(), c.detach(), n.detach(), m.detach()
            out = step(xw[t], h, c, n, m, w_hh, forget, stabilizer)
            h, c, n, m = out.h, out.c, out.n, out.m
            tr.h.append(h)
            tr.c.append(c)
            for name, value in (*out.gates.items(), ("n", n), ("m", m)):
                tr.gates[name].append(value)
        layers.append([tr])
        h_n.append(h)
        c_n.append(c)
        inp = torch.stack(tr.h, dim=1)  # (B, T, H)
    return Unrolled(
        output=inp, h_n=torch.stack(h_n), c_n=torch.stack(c_n), layers=layers, layer_inputs=layer_inputs
    )


# ----------------------------------------------------------------------------------------------
# the training path


def _run_layer(
    xw: Tensor, w_hh: Tensor, start: State, forget: Forget, stabilizer: bool, keep: bool
) -> tuple[Tensor, State, dict[str, Tensor]]:
    """One layer over xw = x W_ih^T + b (B, T, 4H): the top h (B, T, H), the last state and, with
    `keep`, every step's c, n, m, z, i, f, o as (T, B, H). One recurrent matmul a step."""
    h, c, n, m = start
    H = h.shape[-1]
    w_hh_t = w_hh.T  # (H, 4H)
    hs: list[Tensor] = []
    kept: dict[str, list[Tensor]] = {k: [] for k in (*STATES, *GATES)} if keep else {}
    for xw_t in xw.unbind(1):
        pre = torch.addmm(xw_t, h, w_hh_t)  # (B, 4H)
        pre_z, pre_i, pre_f, pre_o = pre.split(H, dim=-1)
        log_f = pre_f if forget == "exp" else nn.functional.logsigmoid(pre_f)
        if stabilizer:
            log_f = log_f + m
            m = torch.maximum(log_f, pre_i)
            i, f = torch.exp(pre_i - m), torch.exp(log_f - m)
        else:
            i, f = torch.exp(pre_i), torch.exp(log_f)
        z, o = torch.tanh(pre_z), torch.sigmoid(pre_o)
        c = torch.addcmul(f * c, i, z)
        n = torch.addcmul(i, f, n)
        h = o * c / n
        hs.append(h)
        if keep:
            for name, value in zip((*STATES, *GATES), (c, n, m, z, i, f, o), strict=True):
                kept[name].append(value)
    return torch.stack(hs, 1), (h, c, n, m), {k: torch.stack(v) for k, v in kept.items()}


class _Recurrence(torch.autograd.Function):
    """One layer's recurrence for a batch: forward by `_run_layer`, backward by the hand-written
    walk (`_walk`, one row per sample). Inputs xw (B, T, 4H), R (4H, H), the start (h, c, n, m)
    each (B, H); outputs every h (B, T, H) and the last c, n, m (B, H).

    The walk holds every m_t (t ≥ 1) constant. That is exact for any loss that reads h and the
    last state only through what it means, c e^m and n e^m (the next window's h, or c/n): such a
    loss does not change when (c, n, m) become (c e^-δ, n e^-δ, m + δ), so the gradient along m
    cancels (the gradient that reaches the last m is dropped for that reason). A loss that reads
    the stored numbers c, n, m themselves gets the m-constant gradient. The start m_0 gets its
    exact gradient, through f'_1 (zero without the stabilizer, where m is 0)."""

    @staticmethod
    def forward(
        ctx: Any,
        xw: Tensor,
        w_hh: Tensor,
        h0: Tensor,
        c0: Tensor,
        n0: Tensor,
        m0: Tensor,
        forget: Forget,
        stabilizer: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        hs, (_, c, n, m), kept = _run_layer(xw, w_hh, (h0, c0, n0, m0), forget, stabilizer, keep=True)
        ctx.save_for_backward(w_hh, hs, h0, c0, n0, m0, *(kept[k] for k in (*STATES, *GATES)))
        ctx.forget, ctx.stabilizer = forget, stabilizer
        return hs, c, n, m

    @staticmethod
    def backward(ctx: Any, g_hs: Tensor, g_c: Tensor, g_n: Tensor, g_m: Tensor) -> tuple[Tensor | None, ...]:
        del g_m  # m is held constant
        w_hh, hs, h0, c0, n0, m0, *values = ctx.saved_tensors
        seq = {"h": hs.transpose(0, 1), "h0": h0, "c0": c0, "n0": n0, "m0": m0}
        seq.update(zip((*STATES, *GATES), values, strict=True))  # (T, B, H) each
        direct = g_hs.transpose(0, 1)  # (T, B, H): one row per sample
        _, _, d_pre, (carry_h, carry_c, carry_n) = _walk(
            _local(seq, ctx.forget),
            direct,
            w_hh,
            None,
            (torch.zeros_like(g_c), g_c, g_n),
        )
        h_prev = torch.cat([h0[None], seq["h"][:-1]])  # (T, B, H) what each step read
        d_w_hh = d_pre.flatten(0, 1).T @ h_prev.flatten(0, 1)  # (4H, H)
        d_m0 = carry_c * c0 + carry_n * n0 if ctx.stabilizer else None  # f'_1 = exp(log f_1 + m_0 - m_1)
        return d_pre.transpose(0, 1), d_w_hh, carry_h, carry_c, carry_n, d_m0, None, None


class SLSTM(nn.Module):
    """A stack of sLSTM layers (see the module docstring). forward(x (B, T, I), state (h, c, n, m)
    each (L, B, H) or None) -> (h of the top layer (B, T, H), the last (h, c, n, m), each (L, B, H))."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        forget: Forget = "exp",
        stabilizer: bool = True,
    ) -> None:
        super().__init__()
        check_options(num_layers, forget)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.forget: Forget = forget
        self.stabilizer = stabilizer
        bound = 1 / math.sqrt(hidden_size)  # torch.nn.LSTM's init
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size
            w_ih, w_hh, bias = _names(layer)
            self.register_parameter(w_ih, nn.Parameter(torch.empty(4 * hidden_size, fan_in)))
            self.register_parameter(w_hh, nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
            self.register_parameter(bias, nn.Parameter(torch.empty(4 * hidden_size)))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        last: list[State] = []
        for layer in range(self.num_layers):
            w_ih, w_hh, bias = (self.get_parameter(k) for k in _names(layer))
            xw = nn.functional.linear(x, w_ih, bias)  # (B, T, 4H), every t at once
            start = _initial(state, layer, zeros, self.stabilizer)
            if torch.is_grad_enabled():
                x, c, n, m = _Recurrence.apply(xw, w_hh, *start, self.forget, self.stabilizer)  # type: ignore[no-untyped-call]
                end = (x[:, -1], c, n, m)
            else:
                x, end, _ = _run_layer(xw, w_hh, start, self.forget, self.stabilizer, keep=False)
            last.append(end)
        h, c, n, m = (torch.stack(s) for s in zip(*last, strict=True))
        return x, (h, c, n, m)


# ----------------------------------------------------------------------------------------------
# the probes: one sample


@torch.no_grad()
def traces(
    params: Mapping[str, Tensor],
    x: Tensor,
    num_layers: int,
    state: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
    *,
    forget: Forget,
    stabilizer: bool,
) -> Seqs:
    """Every layer's per-step quantities for one sample x (T, I), by the training path: "h", "c",
    "n", "m" (stored, stabilised coordinates), "z", "i" (= i′), "f" (= f′), "o", each (T, H), and
    the state before the first step "h0", "c0", "n0", "m0" (H,). `state`: (h, c, n, m) each (L, H)."""
    check_options(num_layers, forget)
    H = params["weight_hh_l0"].shape[1]
    zeros = x.new_zeros(1, H)
    batched = tuple(s[:, None] for s in state) if state is not None else None  # (L, 1, H)
    inp = x[None]  # (1, T, I_l)
    seqs: Seqs = []
    for layer in range(num_layers):
        w_ih, w_hh, bias = (params[k] for k in _names(layer))
        start = _initial(batched, layer, zeros, stabilizer)  # type: ignore[arg-type]
        inp, _, kept = _run_layer(inp @ w_ih.T + bias, w_hh, start, forget, stabilizer, keep=True)
        seq = {"h": inp[0], **{k: v[:, 0] for k, v in kept.items()}}
        seq.update({f"{k}0": s[0] for k, s in zip(("h", *STATES), start, strict=True)})
        seqs.append([seq])
    return seqs


@dataclass(frozen=True)
class _Local:
    """A layer's local derivatives of every step, each (T, H), in stored coordinates (m constant)."""

    f: Tensor  # f′_t: dc_t/dc_{t-1} = dn_t/dn_{t-1}
    o_n: Tensor  # o_t / n_t: dh_t/dc_t
    h_n: Tensor  # h_t / n_t: −dh_t/dn_t
    c_dz: Tensor  # dc_t/dz̃_t = i′ (1 − z²)
    c_di: Tensor  # dc_t/dĩ_t = i′ z   (dn_t/dĩ_t = i′)
    i: Tensor  # i′_t
    d_f: Tensor  # df′_t/df̃_t = f′ (exp) or f′ (1 − σ(f̃_t)) (sigmoid)
    c_prev: Tensor  # c_{t-1}
    n_prev: Tensor  # n_{t-1}
    h_do: Tensor  # dh_t/dõ_t = (c/n) o (1 − o)
    o_d: Tensor  # do_t/dõ_t = o (1 − o)
    z_d: Tensor  # dz_t/dz̃_t = 1 − z²
    z: Tensor


def _local(seq: Mapping[str, Tensor], forget: Forget) -> _Local:
    """From one sample's seq, each (T, H), or a batch's, each (T, B, H) with (B, H) starts."""

    def prev(name: str) -> Tensor:  # (T, ...) what each step read
        return torch.cat([seq[f"{name}0"].reshape(1, *seq[name].shape[1:]), seq[name][:-1]])

    z, i, f, o, c, n, h = (seq[k] for k in ("z", "i", "f", "o", "c", "n", "h"))
    if forget == "exp":
        d_f = f  # d exp(f̃ + m_{t-1} − m_t)/df̃
    else:
        sig = f * torch.exp(seq["m"] - prev("m"))  # σ(f̃_t) = f′_t exp(m_t − m_{t-1})
        d_f = f * (1 - sig)
    z_d, o_d = 1 - z**2, o * (1 - o)
    return _Local(
        f=f,
        o_n=o / n,
        h_n=h / n,
        c_dz=i * z_d,
        c_di=i * z,
        i=i,
        d_f=d_f,
        c_prev=prev("c"),
        n_prev=prev("n"),
        h_do=c / n * o_d,
        o_d=o_d,
        z_d=z_d,
        z=z,
    )


@torch.no_grad()
def backward(
    params: Mapping[str, Tensor],
    layer: int,
    seq: Mapping[str, Tensor],
    direct: Tensor,
    window: int | None = None,
    *,
    forget: Forget,
    stabilizer: bool,
) -> DirectionGrads:
    """Backprop through time by hand for one layer, R gradient rows at once (rows never mix).

    `seq` is one layer of `traces`; `direct` (T, R, H) the gradient that reaches h_t from outside
    the recurrence. Returns the total dL/dh_t, dL/dc_t (stored coordinates, m held constant) and
    dL/dx_t of every row. With `window` k no gradient crosses back out of a step t with t % k == 0
    (the carry into step t − 1 is zeroed), as in app.core.cells.backward_direction. `stabilizer`
    changes nothing here: the stored f′, i′ already carry it.
    """
    del stabilizer  # the trace holds the effective gates of either form
    w_ih, w_hh, _ = (params[k] for k in _names(layer))
    out_h, out_c, out_pre, _ = _walk(_local(seq, forget), direct, w_hh, window, None)
    return DirectionGrads(h=out_h, c=out_c, x=out_pre @ w_ih)


def _walk(
    loc: _Local,
    direct: Tensor,
    w_hh: Tensor,
    window: int | None,
    enter: tuple[Tensor, Tensor, Tensor] | None,
) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """From the last step to the first: the total dL/dh_t, dL/dc_t (T, R, H) and dL/d pre_t
    (T, R, 4H), and the carries (h, c, n) (R, H) that leave the first step. `loc` is one sample's,
    each (T, H), shared by the rows, or one per row, (T, R, H); `enter` the gradients at the last
    (h, c, n) from outside (zeros if None). A few elementwise ops and one matmul a step."""
    T, R, H = direct.shape
    # d pre = [gc, gc, gc, gh] * p_c + [gn, gn, gn, gn] * p_n, blocks z, i, f, o
    zero = torch.zeros_like(loc.f)
    p_c = torch.cat([loc.c_dz, loc.c_di, loc.c_prev * loc.d_f, loc.h_do], -1).unbind(0)  # T x (.., 4H)
    p_n = torch.cat([zero, loc.i, loc.n_prev * loc.d_f, zero], -1).unbind(0)
    keep, o_n, h_n = loc.f.unbind(0), loc.o_n.unbind(0), loc.h_n.unbind(0)
    out_h, out_c = direct.new_zeros(T, R, H), direct.new_zeros(T, R, H)
    out_pre = direct.new_zeros(T, R, 4 * H)
    if enter is None:
        carry_h, carry_c, carry_n = (direct.new_zeros(R, H) for _ in range(3))
    else:
        carry_h, carry_c, carry_n = enter
    for t in range(T - 1, -1, -1):
        gh = torch.add(direct[t], carry_h, out=out_h[t])  # (R, H) total dL/dh_t
        gc = torch.addcmul(carry_c, gh, o_n[t], out=out_c[t])  # (R, H) total dL/dc_t
        gn = carry_n - gh * h_n[t]  # (R, H) total dL/dn_t
        spread = torch.cat([gc, gc, gc, gh], -1) * p_c[t]  # (R, 4H)
        d_pre = torch.addcmul(spread, gn.repeat(1, 4), p_n[t], out=out_pre[t])  # at z̃, ĩ, f̃, õ
        carry_h, carry_c, carry_n = d_pre @ w_hh, gc * keep[t], gn * keep[t]
        if window is not None and t % window == 0:  # truncated BPTT: the graph was cut here
            carry_h, carry_c, carry_n = (torch.zeros_like(g) for g in (carry_h, carry_c, carry_n))
    return out_h, out_c, out_pre, (carry_h, carry_c, carry_n)


@torch.no_grad()
def step_norms(
    params: Mapping[str, Tensor], layer: int, seq: Mapping[str, Tensor], *, forget: Forget, stabilizer: bool
) -> Tensor:
    """||J_t||_2 (T,), J_t = d s_t / d s_{t-1} with s = (h, c, n) stacked (3H), m held constant:
    the exact largest singular value. NaN at steps whose Jacobian is not finite (an overflow)."""
    del stabilizer
    w_hh = params[_names(layer)[1]]
    loc = _local(seq, forget)
    T = loc.f.shape[0]
    r_z, r_i, r_f, r_o = (r[None] for r in w_hh.chunk(4, 0))  # (1, H, H) each

    def rows(v: Tensor) -> Tensor:
        return v[:, :, None]  # (T, H, 1): scales row j of a (T, H, H) block

    def diag(v: Tensor) -> Tensor:
        return torch.diag_embed(v)  # (T, H, H)

    di = rows(loc.i) * r_i  # di′_t/dh_{t-1}
    df = rows(loc.d_f) * r_f  # df′_t/dh_{t-1}
    dc_dh = rows(loc.c_prev) * df + rows(loc.z) * di + rows(loc.i * loc.z_d) * r_z
    dn_dh = rows(loc.n_prev) * df + di
    dh_dh = rows(loc.h_do) * r_o + rows(loc.o_n) * dc_dh - rows(loc.h_n) * dn_dh
    top = torch.cat([dh_dh, diag(loc.o_n * loc.f), diag(-loc.h_n * loc.f)], -1)
    mid = torch.cat([dc_dh, diag(loc.f), torch.zeros_like(dc_dh)], -1)
    low = torch.cat([dn_dh, torch.zeros_like(dc_dh), diag(loc.f)], -1)
    J = torch.cat([top, mid, low], 1)  # (T, 3H, 3H)
    out = torch.full((T,), float("nan"), dtype=J.dtype)
    finite = torch.isfinite(J).all(-1).all(-1)
    if bool(finite.any()):
        out[finite] = torch.linalg.matrix_norm(J[finite], ord=2)
    return out

"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that read only x_t.

What this is: `MinRNN(cell, input_size, hidden_size, num_layers)`, an nn.Module whose every layer
is the linear recurrence h_t = a_t ⊙ h_{t-1} + b_t, with a_t and b_t computed from x_t alone:

    minGRU   z_t = σ(W_z x_t + b_z)             (the update gate)
             h̃_t = W_h x_t + b_h                (the candidate: no h_{t-1} inside)
             h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t
    minLSTM  f_t = σ(W_f x_t + b_f),  i_t = σ(W_i x_t + b_i),  h̃_t = W_h x_t + b_h
             f′_t = f_t / (f_t + i_t),  i′_t = i_t / (f_t + i_t)
             h_t = f′_t ⊙ h_{t-1} + i′_t ⊙ h̃_t

Because no gate reads h_{t-1}, the whole sequence is one scan of the pairs (a_t, b_t), computed
for every t at once. `scan` does it in log2(T) vectorized steps (Hillis-Steele: after step k each
t holds the composition of the 2^k pairs ending at t). a_t lies in (0, 1) for both cells, so the
products only shrink toward 0 and never overflow; the scan stays in linear space, where it
matches the sequential loop to float rounding (a log-space scan would lose digits subtracting
large cumulative logs at long T). `scan_sequential` is the reference: the loop, one t at a time.
Layers stack: layer l+1 reads layer l's h. Inputs are batch-first, (B, T, I).

Parameters, per layer l: `weight_l{l}` (G*H, I) and `bias_l{l}` (G*H,), the gates' rows in the
order of GATES (minGRU: z, h̃; minLSTM: f, i, h̃) — one matrix multiply gives every gate.

The probes, each for one sample (float32 in and out), as `app.core.probes` and `app.core.jacobians`
call them for these cells (one way only: no reverse direction):
- `unroll`: the explicit unrolled graph, one `step` a time, every h_t and gate its own tensor (the
  reference the tests hold the rest to; with a window k the state is detached every k steps);
- `traces`: one sample through the stack with the parallel `scan`, the very computation training
  does; per layer "h", the gates, "a" (the retention a_t: 1 − z_t, or f′_t) and "h0";
- `backward`: backprop through time by hand, any number of gradient rows at once. The recurrence
  is elementwise, so the carried gradient is itself a linear recurrence run backward,
  g_t = direct_t + a_{t+1} ⊙ g_{t+1}: one reverse `scan`, a window cut being a zero coefficient;
  the gradient at every gate and input then follows for all t at once;
- `step_norms`: ||dh_t/dh_{t-1}||_2 = max_j a_t,j, since that Jacobian is diag(a_t).
What this is not: the catalog entries, the training loop, or sLSTM (`app.core.slstm`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from app.core import cells
from app.core.cells import DirectionGrads, DirectionTrace, Unrolled

MinCell = Literal["mingru", "minlstm"]
MIN_CELLS: tuple[MinCell, ...] = ("mingru", "minlstm")
GATES: dict[MinCell, tuple[str, ...]] = {cell: cells.GATES[cell] for cell in MIN_CELLS}  # one source
MAX_LAYERS = 3
Seqs = list[list[dict[str, Tensor]]]  # [layer][direction: only 0] name -> (T, H), natural time


def scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for every t at once. a, b: (B, T, H); h0: (B, H) -> (B, T, H)."""
    b = torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1)  # h_0 folded into t = 0
    T = a.shape[1]
    shift = 1
    while shift < T:
        # compose each t with the pair `shift` steps before it: (A, B) ∘ (A', B') = (A A', A B' + B)
        b = torch.cat([b[:, :shift], a[:, shift:] * b[:, :-shift] + b[:, shift:]], dim=1)
        a = torch.cat([a[:, :shift], a[:, shift:] * a[:, :-shift]], dim=1)
        shift *= 2
    return b


def scan_sequential(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """The reference of `scan`: the recurrence, one timestep at a time."""
    h = h0
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]  # (B, H)
        out.append(h)
    return torch.stack(out, dim=1)


def coefficients(cell: MinCell, projected: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """A layer's (a, b) of the recurrence and its gates, from x_t W^T + b for every t: (B, T, G*H)."""
    if cell == "mingru":
        k, h_tilde = projected.chunk(2, dim=-1)
        z = torch.sigmoid(k)  # update gate: how much of h̃_t replaces h_{t-1}
        return 1 - z, z * h_tilde, {"z": z, "h_tilde": h_tilde}
    kf, ki, h_tilde = projected.chunk(3, dim=-1)
    f = torch.sigmoid(kf)  # forget gate
    i = torch.sigmoid(ki)  # input gate
    f_norm = f / (f + i)  # f′: the share of h_{t-1} kept
    i_norm = i / (f + i)  # i′: the share of h̃_t written (f′ + i′ = 1)
    return f_norm, i_norm * h_tilde, {"f": f, "i": i, "h_tilde": h_tilde}


class MinRNN(nn.Module):
    """A stack of minGRU or minLSTM layers (see the module docstring). forward(x (B, T, I),
    h0 (L, B, H) or None, parallel=True) -> (h of the top layer (B, T, H), h_T of each layer (L, B, H))."""

    def __init__(self, cell: MinCell, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        if cell not in MIN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(MIN_CELLS)}, not {cell!r}")
        if not 1 <= num_layers <= MAX_LAYERS:
            raise ValueError(f"num_layers must be 1 to {MAX_LAYERS}, not {num_layers}")
        self.cell: MinCell = cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        rows = len(GATES[cell]) * hidden_size
        bound = 1 / math.sqrt(hidden_size)  # torch.nn.GRU's init
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_l{layer}", nn.Parameter(torch.empty(rows, fan_in)))
            self.register_parameter(f"bias_l{layer}", nn.Parameter(torch.empty(rows)))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, h0: Tensor | None = None, parallel: bool = True) -> tuple[Tensor, Tensor]:
        B = x.shape[0]
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, B, self.hidden_size)
        run = scan if parallel else scan_sequential
        last = []
        for layer in range(self.num_layers):
            projected = nn.functional.linear(
                x, self.get_parameter(f"weight_l{layer}"), self.get_parameter(f"bias_l{layer}")
            )
            a, b, _ = coefficients(self.cell, projected)  # (B, T, H) each
            x = run(a, b, h0[layer])  # (B, T, H): the next layer's input
            last.append(x[:, -1])
        return x, torch.stack(last)


# ----------------------------------------------------------------------------------------------
# the probes: the explicit unrolled graph, the traces, the backward pass, the step norms


def step(cell: MinCell, projected: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """One timestep from h_{t-1} (B, H), given x_t W^T + b (B, G*H): h_t and the gates by GATES name."""
    if cell == "mingru":
        k, h_tilde = projected.chunk(2, dim=-1)
        z = torch.sigmoid(k)  # update gate
        h = (1 - z) * h + z * h_tilde
        return h, {"z": z, "h_tilde": h_tilde}
    kf, ki, h_tilde = projected.chunk(3, dim=-1)
    f = torch.sigmoid(kf)  # forget gate
    i = torch.sigmoid(ki)  # input gate
    f_norm = f / (f + i)  # f′: the share of h_{t-1} kept
    i_norm = i / (f + i)  # i′: the share of h̃_t written
    h = f_norm * h + i_norm * h_tilde
    return h, {"f": f, "i": i, "h_tilde": h_tilde}


def unroll(
    cell: MinCell,
    params: Mapping[str, Tensor],
    x: Tensor,
    num_layers: int,
    state: Tensor | None = None,
    window: int | None = None,
) -> Unrolled:
    """Run the stack on x (B, T, I) one `step` at a time, keeping every h_t and gate as its own
    tensor (the graph of backprop through time). `state` is h0 (L, B, H). With `window` k the state
    is carried across every k steps but detached (truncated BPTT), as `app.core.cells.unroll` does."""
    B = x.shape[0]
    H = params["weight_l0"].shape[0] // len(GATES[cell])
    layers: list[list[DirectionTrace]] = []
    layer_inputs: list[Tensor] = []
    h_n: list[Tensor] = []
    inp = x  # (B, T, I_l)
    for layer in range(num_layers):
        layer_inputs.append(inp)
        h = state[layer] if state is not None else x.new_zeros(B, H)  # (B, H)
        tr = DirectionTrace(h0=h)
        projected = nn.functional.linear(inp, params[f"weight_l{layer}"], params[f"bias_l{layer}"])
        for t, p_t in enumerate(projected.unbind(1)):  # T x (B, G*H)
            if window is not None and t > 0 and t % window == 0:
                h = h.detach()
            h, gates = step(cell, p_t, h)
            tr.h.append(h)
            for name, value in gates.items():
                tr.gates.setdefault(name, []).append(value)
        layers.append([tr])
        h_n.append(h)
        inp = torch.stack(tr.h, dim=1)  # (B, T, H)
    return Unrolled(output=inp, h_n=torch.stack(h_n), c_n=None, layers=layers, layer_inputs=layer_inputs)


@torch.no_grad()
def traces(
    cell: MinCell, params: Mapping[str, Tensor], x: Tensor, num_layers: int, h0: Tensor | None = None
) -> Seqs:
    """One sample x (T, I) through the stack with the parallel `scan`, from h0 (L, H) (zeros if None):
    per layer one direction, "h", the gates, "a" (T, H) and "h0" (H,)."""
    H = params["weight_l0"].shape[0] // len(GATES[cell])
    seqs: Seqs = []
    inp = x[None]  # (1, T, I_l)
    for layer in range(num_layers):
        start = h0[layer] if h0 is not None else x.new_zeros(H)  # (H,)
        projected = nn.functional.linear(inp, params[f"weight_l{layer}"], params[f"bias_l{layer}"])
        a, b, gates = coefficients(cell, projected)  # (1, T, H) each
        inp = scan(a, b, start[None])  # (1, T, H)
        seqs.append([{"h": inp[0], "a": a[0], **{k: v[0] for k, v in gates.items()}, "h0": start}])
    return seqs


def retention(cell: MinCell, seq: Mapping[str, Tensor]) -> Tensor:
    """a_t (T, H), what h_{t-1} is multiplied by, from the gates of a trace: 1 − z_t, or f′_t."""
    if cell == "mingru":
        return 1 - seq["z"]
    return seq["f"] / (seq["f"] + seq["i"])


@torch.no_grad()
def backward(
    cell: MinCell,
    params: Mapping[str, Tensor],
    layer: int,
    seq: Mapping[str, Tensor],
    direct: Tensor,
    window: int | None = None,
) -> DirectionGrads:
    """Backprop through time by hand for one layer of one sample, R gradient rows at once.

    `seq` as `traces` gives it (only "h", the gates and "h0" are read; h0 zeros if absent);
    `direct` (T, R, H) the gradient reaching h_t from outside the recurrence (the readout, the
    layer above), one row per loss. Returns the total dL/dh_t (T, R, H) and dL/dx_t (T, R, I) of
    each row, the semantics of `app.core.cells.backward_direction`: rows never mix, and with
    `window` k no gradient crosses into step t-1 from step t when t % k == 0.
    """
    T, R, H = direct.shape
    h = seq["h"]  # (T, H)
    h0 = seq["h0"].reshape(1, H) if "h0" in seq else h.new_zeros(1, H)
    prev = torch.cat([h0, h[:-1]])  # (T, H) the state each step read
    a = retention(cell, seq)  # (T, H)

    # the carry: g_t = direct_t + a_{t+1} g_{t+1}, zero where the window cut the graph; a linear
    # recurrence run from the last step back, so one `scan` of the flipped sequence
    carry = torch.cat([a[1:], a.new_zeros(1, H)])  # (T, H): a_{t+1} at t, nothing after the last step
    if window is not None:
        cut = torch.arange(1, T + 1) % window == 0  # t + 1 is a window's first step
        carry = carry.masked_fill(cut[:, None], 0.0)
    g = scan(carry.flip(0)[None], direct.flip(0).transpose(0, 1), direct.new_zeros(R, H))  # (R, T, H)
    g = g.transpose(0, 1).flip(0)  # (T, R, H) total dL/dh_t

    # the gradient at every gate pre-activation, all t at once; the trace's (T, H) as (T, 1, H)
    prev = prev[:, None]
    if cell == "mingru":
        z, h_tilde = seq["z"][:, None], seq["h_tilde"][:, None]
        d_k = g * ((h_tilde - prev) * z * (1 - z))  # (T, R, H) at W_z x + b_z
        d_h_tilde = g * z  # (T, R, H)
        d_pre = torch.cat([d_k, d_h_tilde], dim=-1)  # (T, R, 2H)
    else:
        f, i, h_tilde = seq["f"][:, None], seq["i"][:, None], seq["h_tilde"][:, None]
        s2 = (f + i) ** 2
        d_f = g * ((prev - h_tilde) * i / s2 * f * (1 - f))  # dh/df = i (h_{t-1} - h̃) / (f + i)²
        d_i = g * ((h_tilde - prev) * f / s2 * i * (1 - i))  # dh/di = f (h̃ - h_{t-1}) / (f + i)²
        d_h_tilde = g * (i / (f + i))  # i′
        d_pre = torch.cat([d_f, d_i, d_h_tilde], dim=-1)  # (T, R, 3H)
    at_x = d_pre @ params[f"weight_l{layer}"]  # (T, R, I_l)
    return DirectionGrads(h=g, c=None, x=at_x)


@torch.no_grad()
def step_norms(cell: MinCell, params: Mapping[str, Tensor], layer: int, seq: Mapping[str, Tensor]) -> Tensor:
    """||dh_t/dh_{t-1}||_2 per step (T,): the Jacobian is diag(a_t), a_t in (0, 1), so max_j a_t,j.
    (`params` and `layer` are unused: no gate reads h_{t-1}; kept for the probes' common call.)"""
    return retention(cell, seq).amax(dim=-1)

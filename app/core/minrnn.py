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
What this is not: the probes (their gradients through time) or the catalog entries; those come next.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

MinCell = Literal["mingru", "minlstm"]
MIN_CELLS: tuple[MinCell, ...] = ("mingru", "minlstm")
GATES: dict[MinCell, tuple[str, ...]] = {"mingru": ("z", "h_tilde"), "minlstm": ("f", "i", "h_tilde")}
MAX_LAYERS = 3


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

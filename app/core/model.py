"""The network Gatescope trains: a recurrent stack plus a per-timestep linear readout.

What this is: `RecurrentNet` wraps a fused torch.nn.RNN / LSTM / GRU (batch_first=True) as
`self.rnn`, so `net.rnn.state_dict()` loads straight into a plain torch.nn module and back, and
a `readout` Linear applied at every timestep. `net.unrolled(x)` runs the same parameters through
the instrumented cells of `app.core.cells`, keeping every h_t, c_t and gate. `initialize` sets
the weights by one of the schemes a person uses to make gradients vanish or explode on purpose.

What this is not: a general model zoo. There is no embedding (inputs arrive one-hot or as
values), no dropout, no attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from app.core.cells import CHUNKS, CellName, Unrolled, unroll

InitScheme = Literal["default", "orthogonal", "identity", "normal"]
INIT_SCHEMES: tuple[InitScheme, ...] = ("default", "orthogonal", "identity", "normal")
State = Tensor | tuple[Tensor, Tensor]


@dataclass(frozen=True)
class ModelSpec:
    cell: CellName
    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int = 1
    bidirectional: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


def fused_module(spec: ModelSpec) -> nn.RNNBase:
    """The torch.nn module whose parameter layout and names this project uses throughout."""
    kwargs = {
        "input_size": spec.input_size,
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "bidirectional": spec.bidirectional,
        "batch_first": True,
    }
    if spec.cell == "lstm":
        return nn.LSTM(**kwargs)
    if spec.cell == "gru":
        return nn.GRU(**kwargs)
    return nn.RNN(nonlinearity="tanh" if spec.cell == "rnn_tanh" else "relu", **kwargs)


class RecurrentNet(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.rnn = fused_module(spec)
        self.readout = nn.Linear(spec.directions * spec.hidden_size, spec.output_size)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T, I) -> outputs (B, T, O) and the final state, through the fused kernel."""
        h, state = self.rnn(x, state)  # (B, T, D*H)
        return self.readout(h), state

    def unrolled(
        self, x: Tensor, state: State | None = None, window: int | None = None
    ) -> tuple[Tensor, Unrolled]:
        """The same computation, one named step at a time: the reference (app.core.cells.unroll)."""
        spec = self.spec
        u = unroll(spec.cell, self.recurrent_params(), x, spec.num_layers, spec.bidirectional, state, window)
        return self.readout(u.output), u

    def recurrent_params(self) -> dict[str, Tensor]:
        return dict(self.rnn.named_parameters())


def initialize(
    net: RecurrentNet,
    scheme: InitScheme = "default",
    gain: float = 1.0,
    forget_bias: float | None = None,
) -> None:
    """Set the recurrent weights W_hh (each gate block on its own) by `scheme`:

    - default: PyTorch's U(-1/sqrt(H), 1/sqrt(H)) as the module drew it, W_hh scaled by `gain`;
    - orthogonal: W_hh = gain * Q, Q a random orthogonal matrix (Saxe et al. 2014);
    - identity: W_hh = gain * I and recurrent biases zero (IRNN, Le et al. 2015), input weights
      N(0, 0.001^2) as in the paper;
    - normal: W_hh ~ N(0, gain^2 / H), the classic knob: gain < 1 vanishes, gain > 1 explodes.

    `forget_bias` (LSTM only) sets the forget gate's total bias b_if + b_hf to that value.
    Random draws use torch's global generator: seed it (under torch.random.fork_rng) first.
    """
    spec = net.spec
    H = spec.hidden_size
    G = CHUNKS[spec.cell]
    with torch.no_grad():
        for name, p in net.rnn.named_parameters():
            if scheme == "identity":
                if name.startswith("bias"):
                    p.zero_()
                elif name.startswith("weight_ih"):
                    p.copy_(torch.randn(p.shape) * 1e-3)
            if not name.startswith("weight_hh"):
                continue
            for block in p.view(G, H, H):  # one (H, H) block per gate
                if scheme == "default":
                    block.mul_(gain)
                elif scheme == "orthogonal":
                    q, r = torch.linalg.qr(torch.randn(H, H))
                    block.copy_(gain * q * torch.sign(torch.diagonal(r)))
                elif scheme == "identity":
                    block.copy_(gain * torch.eye(H))
                else:  # normal
                    block.copy_(torch.randn(H, H) * (gain / math.sqrt(H)))
        if forget_bias is not None:
            if spec.cell != "lstm":
                raise ValueError("forget_bias applies to LSTM only")
            for name, p in net.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    p[H : 2 * H] = forget_bias
                elif name.startswith("bias_hh"):
                    p[H : 2 * H] = 0.0

"""The network Gatescope trains: a recurrent stack plus a per-timestep linear readout.

What this is: `RecurrentNet` wraps the recurrent stack as `self.rnn` and a `readout` Linear
applied at every timestep. The stack is a fused torch.nn.RNN / LSTM / GRU (batch_first=True), so
`net.rnn.state_dict()` loads straight into a plain torch.nn module and back, or one of the modern
cells, `app.core.minrnn.MinRNN` (minGRU, minLSTM: a parallel scan) or `app.core.slstm.SLSTM`
(docs/api.md gives their checkpoint layout). `net.unrolled(x)` runs the same parameters through
the reference, one named step at a time, keeping every h_t, c_t and gate. `initialize` sets
the weights by one of the schemes a person uses to make gradients vanish or explode on purpose.

What this is not: a general model zoo. There is no embedding (inputs arrive one-hot or as
values), no dropout, no attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import Tensor, nn

from app.core import minrnn, slstm
from app.core.cells import CHUNKS, GATES, WITHOUT_W_HH, CellName, CellOptions, Unrolled, is_torch_cell, unroll

InitScheme = Literal["default", "orthogonal", "identity", "normal"]
INIT_SCHEMES: tuple[InitScheme, ...] = ("default", "orthogonal", "identity", "normal")
State = Tensor | tuple[Tensor, ...]  # h; (h, c) LSTM; (h, c, n, m) sLSTM


@dataclass(frozen=True)
class ModelSpec:
    cell: CellName
    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int = 1
    bidirectional: bool = False
    options: CellOptions = field(default_factory=CellOptions)

    def __post_init__(self) -> None:
        if self.bidirectional and not is_torch_cell(self.cell):
            raise ValueError(f"{self.cell} runs one way only: a bidirectional {self.cell} is not built")
        if self.options != CellOptions() and self.cell != "slstm":
            raise ValueError(f"the forget and stabilizer options apply to slstm only, not {self.cell}")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


def recurrent_module(spec: ModelSpec) -> nn.Module:
    """The stack `RecurrentNet.rnn`: forward(x (B, T, I), state) -> (h (B, T, D*H), state)."""
    if spec.cell in ("mingru", "minlstm"):
        return minrnn.MinRNN(spec.cell, spec.input_size, spec.hidden_size, spec.num_layers)
    if spec.cell == "slstm":
        o = spec.options
        return slstm.SLSTM(spec.input_size, spec.hidden_size, spec.num_layers, o.forget, o.stabilizer)
    return fused_module(spec)


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
        self.rnn = recurrent_module(spec)
        self.readout = nn.Linear(spec.directions * spec.hidden_size, spec.output_size)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T, I) -> outputs (B, T, O) and the final state, through the fused kernel."""
        h, state = self.rnn(x, state)  # (B, T, D*H)
        return self.readout(h), state

    def unrolled(
        self, x: Tensor, state: State | None = None, window: int | None = None
    ) -> tuple[Tensor, Unrolled]:
        """The same computation, one named step at a time: the reference (app.core.cells.unroll)."""
        spec, params = self.spec, self.recurrent_params()
        if spec.cell in ("mingru", "minlstm"):
            assert not isinstance(state, tuple)
            u = minrnn.unroll(spec.cell, params, x, spec.num_layers, state, window)
        elif spec.cell == "slstm":
            o = spec.options
            four = cast(tuple[Tensor, Tensor, Tensor, Tensor] | None, state)  # (h, c, n, m)
            u = slstm.unroll(
                params, x, spec.num_layers, four, window, forget=o.forget, stabilizer=o.stabilizer
            )
        else:
            assert is_torch_cell(spec.cell)
            two = cast(Tensor | tuple[Tensor, Tensor] | None, state)  # h, or (h, c)
            u = unroll(spec.cell, params, x, spec.num_layers, spec.bidirectional, two, window)
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

    `forget_bias` (the cells with a forget gate f: LSTM, minLSTM, sLSTM) sets the forget gate's
    total bias (LSTM: b_if + b_hf) to that value. minGRU and minLSTM have no W_hh: their gates
    read x_t alone, so only the default scheme at gain 1 applies to them (ValueError otherwise).
    Random draws use torch's global generator: seed it (under torch.random.fork_rng) first.
    """
    spec = net.spec
    H = spec.hidden_size
    G = CHUNKS[spec.cell]
    refusal = init_refusal(spec.cell, scheme, gain, forget_bias)
    if refusal:
        raise ValueError(refusal)
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
            write_forget_bias(net, forget_bias)


def write_forget_bias(net: RecurrentNet, value: float) -> None:
    """The forget gate's total bias = `value` in every layer and direction (LSTM: b_if + b_hf,
    with b_hf set to 0; minLSTM, sLSTM: their one bias's f rows). ValueError for a cell without f."""
    cell, H = net.spec.cell, net.spec.hidden_size
    if "f" not in GATES[cell]:
        raise ValueError(
            f"forget_bias applies to the cells with a forget gate (lstm, minlstm, slstm), not {cell}"
        )
    k = GATES[cell].index("f")
    with torch.no_grad():
        for name, p in net.rnn.named_parameters():
            if name.startswith(("bias_ih", "bias_l")):
                p[k * H : (k + 1) * H] = value
            elif name.startswith("bias_hh"):
                p[k * H : (k + 1) * H] = 0.0


def init_refusal(cell: CellName, scheme: InitScheme, gain: float, forget_bias: float | None) -> str | None:
    """Why `initialize` refuses these settings for `cell` (None: it does not)."""
    if cell in WITHOUT_W_HH and (scheme != "default" or gain != 1.0):
        return (
            f"{cell} has no recurrent weights W_hh (its gates read x_t alone), so init scheme "
            f"{scheme!r} at gain {gain:g} has nothing to set: use the default scheme at gain 1"
        )
    if forget_bias is not None and "f" not in GATES[cell]:
        return f"forget_bias applies to the cells with a forget gate (lstm, minlstm, slstm), not {cell}"
    return None

"""Probe math for a person's own torch.nn.RNN / LSTM / GRU: one captured call, one frame.

What this is:
- `layout_of(module)` reads what a module is (`Layout`: cell, sizes, layers, directions,
  batch_first, bias, dropout) and refuses, with a sentence, what a frame could not show exactly
  (an LSTM with proj_size, a subclass of RNNBase that is none of the three);
- `probe_call(...)` makes the `ProbeFrame` of one sample of one call of such a module from what
  `gatescope.watch` captured: the sample's input and initial state, the module's weights at
  forward time, and the gradient the real loss sent into the module (dL/d output, dL/dh_n,
  dL/dc_n) for that sample. It recomputes the states and gates with the fused kernels and
  carries every gradient back through time by hand: the very computation of a built-in probe
  (`app.core.probes`), from a different source of entering gradient;
- `packed_rows`: where one sample's steps sit in a PackedSequence's data.

A loss step s is a step where gradient enters the module from outside: the output at s, or
h_n / c_n at the step where a direction ended (T - 1 forward, 0 backward); l_s is the part of L
entering there. The frame's mask is 1 exactly at the loss steps.

What this is not: the hooks that capture (gatescope.watch), nor any I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from app.core.cells import CHUNKS, TorchCell
from app.core.probes import Entering, ProbeFrame, Source, backprop, forward_traces, make_frame

MAX_FRAME_T = 2000  # the timesteps of an attached frame at most (the server refuses longer ones)


@dataclass(frozen=True)
class Layout:
    """What one torch.nn.RNN / LSTM / GRU is, read off the module."""

    cell: TorchCell  # rnn_tanh | rnn_relu | lstm | gru
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool
    bias: bool
    dropout: float  # between layers, in training mode only

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def layout_of(module: nn.Module) -> Layout:
    """The layout of `module`; ValueError with a sentence if a frame of it would be wrong."""
    name = type(module).__name__
    if isinstance(module, nn.LSTM):
        if module.proj_size > 0:
            raise ValueError(
                f"{name} with proj_size={module.proj_size} is not supported: its hidden state is a "
                "projection of the cell output, which Gatescope does not recompute; watch a "
                "module without proj_size"
            )
        cell: TorchCell = "lstm"
    elif isinstance(module, nn.GRU):
        cell = "gru"
    elif isinstance(module, nn.RNN):
        cell = "rnn_relu" if module.nonlinearity == "relu" else "rnn_tanh"
    else:
        raise ValueError(f"{name} is not an nn.RNN, nn.LSTM or nn.GRU: Gatescope probes only those three")
    assert isinstance(module, nn.RNNBase)
    return Layout(
        cell=cell,
        input_size=int(module.input_size),
        hidden_size=int(module.hidden_size),
        num_layers=int(module.num_layers),
        bidirectional=bool(module.bidirectional),
        batch_first=bool(module.batch_first),
        bias=bool(module.bias),
        dropout=float(module.dropout),
    )


def dropout_note(layout: Layout) -> str:
    """The sentence a frame carries when the module applied dropout between its layers."""
    return (
        f"nn.{_TORCH_NAMES[layout.cell]} dropout={layout.dropout:g} between layers: this frame is "
        "computed without dropout, so layers above the first differ from training."
    )


_TORCH_NAMES: dict[TorchCell, str] = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}


def probe_call(
    layout: Layout,
    params: Mapping[str, Tensor],
    x: Tensor,
    h0: Tensor | None,
    c0: Tensor | None,
    grad_out: Tensor | None,
    grad_hn: Tensor | None,
    grad_cn: Tensor | None,
    *,
    step: int,
    tokens: list[str] | None,
    itemize: bool,
    notes: list[str],
    source: Source,
    loss: float | None = None,
    spectra: bool = True,
) -> ProbeFrame:
    """The frame of one sample of one call of a module of `layout` (with the W_hh spectra if
    `spectra`: app.core.jacobians.spectra_every).

    x (T, I) the sample's input; h0, c0 (L*D, H) its initial state (None: zeros); `params` the
    module's weights in torch.nn names (detached; biases absent if bias=False); grad_out
    (T, D*H) dL/d(output) of this sample (None if the output did not reach the loss), grad_hn,
    grad_cn (L*D, H) dL/dh_n, dL/dc_n (None if unused). `loss` the batch loss, if known.
    """
    T = _check(layout, x, h0, c0, grad_out, grad_hn, grad_cn)
    full = _with_biases(layout, params)
    lstm = layout.cell == "lstm"
    seqs = forward_traces(
        layout.cell, full, x, layout.num_layers, layout.bidirectional, h0, c0 if lstm else None
    )
    entering = Entering(top=grad_out, h_last=grad_hn, c_last=grad_cn if lstm else None)
    steps = loss_steps(entering, T, layout.directions)
    grads = backprop(layout.cell, full, seqs, entering, steps, itemize=itemize)
    mask = torch.zeros(T)
    mask[steps] = 1.0
    if not steps:
        notes = [*notes, "no gradient reached this module in this step: only its states and gates are shown."]
    return make_frame(
        layout.cell,
        seqs,
        grads,
        step=step,
        inputs=x,
        mask=mask,
        loss=float("nan") if loss is None else float(loss),
        tokens=tokens,
        notes=notes,
        source=source,
        params=full,
        spectra=spectra,
    )


def loss_steps(entering: Entering, T: int, directions: int) -> list[int]:
    """The steps where any gradient enters, ascending: outputs with a non-zero gradient, and
    where each direction ended (T - 1 forward, 0 backward) if h_n or c_n carry one."""
    steps: set[int] = set()
    if entering.top is not None:
        steps.update(int(t) for t in torch.nonzero((entering.top != 0).any(dim=1)).flatten())
    for last in (entering.h_last, entering.c_last):
        if last is None:
            continue
        live = (last != 0).any(dim=1).reshape(-1, directions).any(dim=0)  # (D,) per direction
        if bool(live[0]):
            steps.add(T - 1)
        if directions == 2 and bool(live[1]):
            steps.add(0)
    return sorted(steps)


def packed_rows(batch_sizes: Tensor, unsorted_indices: Tensor | None, sample: int = 0) -> Tensor:
    """The rows of a PackedSequence's data that hold `sample`'s steps, in time order (T_sample,).

    Packed data lists step 0 of every sequence (longest first), then step 1, ...: the sample sits
    at position p = unsorted_indices[sample] within each step it reaches."""
    p = int(unsorted_indices[sample]) if unsorted_indices is not None else sample
    sizes = batch_sizes.to(torch.long)
    length = int((sizes > p).sum())
    starts = torch.cumsum(sizes, 0) - sizes  # where each step's rows begin
    return starts[:length] + p


def _with_biases(layout: Layout, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`params` with zero biases where the module has none (bias=False): the same computation."""
    full = dict(params)
    if layout.bias:
        return full
    width = CHUNKS[layout.cell] * layout.hidden_size
    zeros = params["weight_hh_l0"].new_zeros(width)
    for name in list(params):
        if name.startswith("weight_ih"):
            suffix = name[len("weight_ih") :]
            full[f"bias_ih{suffix}"] = zeros
            full[f"bias_hh{suffix}"] = zeros
    return full


def _check(
    layout: Layout,
    x: Tensor,
    h0: Tensor | None,
    c0: Tensor | None,
    grad_out: Tensor | None,
    grad_hn: Tensor | None,
    grad_cn: Tensor | None,
) -> int:
    """T, after checking every shape against the layout (ValueError naming what is wrong)."""
    if x.dim() != 2 or x.shape[1] != layout.input_size:
        raise ValueError(f"x must be (T, {layout.input_size}), got {tuple(x.shape)}")
    T = int(x.shape[0])
    if not 1 <= T <= MAX_FRAME_T:
        raise ValueError(f"x has {T} timesteps: a frame has 1 to {MAX_FRAME_T}")
    state = (layout.num_layers * layout.directions, layout.hidden_size)
    expected = {"h0": state, "c0": state, "grad_hn": state, "grad_cn": state}
    expected["grad_out"] = (T, layout.directions * layout.hidden_size)
    given = {"h0": h0, "c0": c0, "grad_out": grad_out, "grad_hn": grad_hn, "grad_cn": grad_cn}
    for name, value in given.items():
        if value is not None and tuple(value.shape) != expected[name]:
            raise ValueError(f"{name} must be {expected[name]}, got {tuple(value.shape)}")
    return T

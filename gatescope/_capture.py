"""Capturing one call of a watched nn.RNN / LSTM / GRU: what `app.core.attach.probe_call` needs.

What this is: `ModuleCapture(module, layout)` puts a forward pre-hook (with kwargs) and a forward
hook on the module. While armed (on probe steps only) each call leaves a `Call`: sample 0's input
and initial state, a copy of the weights the call used, and, in "live" mode, tensor hooks on
the call's output, h_n and c_n that keep sample 0's share of the gradient the real loss sends
back (dL/d output, dL/dh_n, dL/dc_n). In "fixed" mode the call keeps those tensors (and what
keeps their gradient) instead, for the watch's own `torch.autograd.grad`. Sample 0 is index 0
along the batch dimension (dim 0 with batch_first, else dim 1); of a PackedSequence, the
sequence of original index 0, at its own length. Every copy is float32 on the CPU, where the
probe runs.

What this is not: a writer. The hooks return None (the call's inputs, outputs and gradients
pass unchanged), touch no .grad and draw no random number; disarmed they cost one attribute test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.hooks import RemovableHandle

from app.core.attach import Layout, dropout_note, packed_rows
from app.core.probes import WatchSource

Mode = WatchSource


@dataclass
class Call:
    """What one call left for its probe (shapes as app.core.attach.probe_call takes them)."""

    x: Tensor  # (T, I) sample 0's input
    h0: Tensor | None  # (L*D, H) its initial state, None if the call started from zeros
    c0: Tensor | None  # (L*D, H), LSTM
    params: dict[str, Tensor]  # the weights the call used, in torch.nn names
    notes: list[str]
    graded: bool  # its outputs require grad: it can be part of the loss
    grad_out: Tensor | None = None  # (T, D*H) dL/d(output) of sample 0, once backward reached it
    grad_hn: Tensor | None = None  # (L*D, H)
    grad_cn: Tensor | None = None  # (L*D, H)
    outputs: list[tuple[Tensor, Callable[[Tensor | None], None]]] = field(default_factory=list)
    # "fixed" mode: each output that can carry gradient, and what keeps sample 0's share of it


@dataclass
class _Pending:
    """What the pre-hook read, until the forward hook sees the outputs."""

    x: Tensor
    h0: Tensor | None
    c0: Tensor | None
    rows: Tensor | None  # PackedSequence: sample 0's rows of the data
    unbatched: bool


class ModuleCapture:
    """The hooks on one watched module, and the last call they captured in this step."""

    def __init__(self, module: nn.Module, layout: Layout) -> None:
        self.module = module
        self.layout = layout
        self.mode: Mode | None = None  # None: disarmed
        self.call: Call | None = None
        self.calls = 0  # calls with gradient captured since armed
        self.seconds = 0.0  # time spent copying since armed
        self._pending: _Pending | None = None
        self._weights: tuple[tuple[int, ...], dict[str, Tensor]] | None = None  # (identities, copies)
        self._handles: list[RemovableHandle] = [
            module.register_forward_pre_hook(self._before, with_kwargs=True),
            module.register_forward_hook(self._after),
        ]

    def arm(self, mode: Mode | None) -> None:
        """Capture calls from now on in `mode` (None: stop), forgetting what was captured."""
        self.mode, self.call, self.calls, self.seconds, self._pending = mode, None, 0, 0.0, None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.arm(None)

    # -- the hooks ----------------------------------------------------------------------------

    def _before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.mode is None:
            return
        started = time.perf_counter()
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        h0, c0 = hx if isinstance(hx, tuple) else (hx, None)
        rows = None
        if isinstance(x, PackedSequence):
            rows = packed_rows(x.batch_sizes, x.unsorted_indices)
            sample, unbatched = x.data[rows.to(x.data.device)], False
        elif isinstance(x, Tensor) and x.dim() in (2, 3):
            unbatched = x.dim() == 2
            sample = x if unbatched else (x[0] if self.layout.batch_first else x[:, 0])
        else:  # not a call nn.RNNBase accepts: the module itself will say so
            return
        self._pending = _Pending(_copy(sample), _state(h0, unbatched), _state(c0, unbatched), rows, unbatched)
        self.seconds += time.perf_counter() - started

    def _after(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        pending, self._pending = self._pending, None
        if self.mode is None or pending is None:
            return
        started = time.perf_counter()
        out, final = output
        h_n, c_n = final if isinstance(final, tuple) else (final, None)
        out = out.data if isinstance(out, PackedSequence) else out
        tensors = {"out": out, "h_n": h_n} | ({"c_n": c_n} if c_n is not None else {})
        tensors = {k: t for k, t in tensors.items() if isinstance(t, Tensor) and t.requires_grad}
        if not tensors and self.call is not None and self.call.graded:
            return  # a call without gradient (e.g. under no_grad) never replaces one with it
        notes = [dropout_note(self.layout)] if self._drops() else []
        call = Call(pending.x, pending.h0, pending.c0, self._params(), notes, graded=bool(tensors))
        for name, t in tensors.items():
            keep = self._keeper(call, name, pending)
            if self.mode == "live":
                t.register_hook(keep)
            else:
                call.outputs.append((t, keep))
        self.call = call
        self.calls += call.graded
        self.seconds += time.perf_counter() - started

    def _keeper(self, call: Call, name: str, pending: _Pending) -> Callable[[Tensor | None], None]:
        """A tensor hook that adds sample 0's share of the gradient to `call` (returns None)."""

        def keep(grad: Tensor | None) -> None:
            if grad is None:  # autograd ran the call's node for another output: none entered here
                return
            started = time.perf_counter()
            add(call, name, sample_grad(grad, name, pending, self.layout.batch_first))
            self.seconds += time.perf_counter() - started

        return keep

    def _drops(self) -> bool:
        """The call applies dropout between layers (training mode), which the frame leaves out."""
        lay = self.layout
        return lay.dropout > 0 and lay.num_layers > 1 and self.module.training

    def _params(self) -> dict[str, Tensor]:
        """Copies of the weights this call uses, made once while they do not change."""
        names: list[str] = list(getattr(self.module, "_flat_weights_names", []))
        tensors = [getattr(self.module, n) for n in names]
        versions = tuple(v for t in tensors for v in (id(t), t._version))  # the same tensors, unchanged
        if self._weights is None or self._weights[0] != versions:
            self._weights = versions, {n: _copy(t) for n, t in zip(names, tensors, strict=True)}
        return self._weights[1]


def sample_grad(grad: Tensor, name: str, pending: _Pending, batch_first: bool) -> Tensor:
    """Sample 0's part of the gradient at one of a call's outputs, as a float32 CPU copy."""
    if name == "out":
        if pending.rows is not None:
            return _copy(grad[pending.rows.to(grad.device)])  # (T, D*H) of the packed data
        if pending.unbatched:
            return _copy(grad)
        return _copy(grad[0] if batch_first else grad[:, 0])
    return _copy(grad if pending.unbatched else grad[:, 0])  # (L*D, H)


def add(call: Call, name: str, grad: Tensor) -> None:
    """Add a gradient to the call's (a tensor reached twice, e.g. by two backward passes, sums)."""
    attr = {"out": "grad_out", "h_n": "grad_hn", "c_n": "grad_cn"}[name]
    before = getattr(call, attr)
    setattr(call, attr, grad if before is None else before + grad)


def _state(h: Any, unbatched: bool) -> Tensor | None:
    if not isinstance(h, Tensor):
        return None
    return _copy(h if unbatched else h[:, 0])  # (L*D, H)


def _copy(t: Tensor) -> Tensor:
    return t.detach().to("cpu", torch.float32, copy=True)

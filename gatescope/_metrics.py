"""The every-step measurements of a watch: one StepIn row per `Watch.step()`.

What this is: `StepMeter(model, optimizer)` hooks every parameter's gradient accumulation
(register_post_accumulate_grad_hook) to keep its norm as backward leaves it, before any
clipping; `row(step, loss, seconds)` then reads the gradients as they stand at step() (after
clipping), the update ratio ||theta_k - theta_{k-1}|| / ||theta_{k-1}|| against its own snapshot
of the parameters (taken at the previous step(), or when the watch began), and the learning rate
of the optimizer's first parameter group. Everything is a few passes over the parameters (foreach
ops, and norms as BLAS dot products) and one sync;
non-finite numbers become None (the wire carries only finite floats).

What this is not: a writer of anything the training reads. The hooks only read .grad, the
snapshot is a copy, and no random generator is touched.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


class StepMeter:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.optimizer = optimizer
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self._at_backward: list[Tensor | None] = [None] * len(self.params)  # 0-d norms, this step
        self._handles: list[RemovableHandle] = [
            p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(self.params)
        ]
        with torch.no_grad():
            self._before = [p.detach().clone() for p in self.params]  # theta_{k-1}
            self._before_norm = self._total(_norms(self._before))  # ||theta_{k-1}||, 0-d

    def _hook(self, i: int) -> Any:
        def hook(p: Tensor) -> None:
            if p.grad is not None:
                with torch.no_grad():
                    self._at_backward[i] = _norm(p.grad)

        return hook

    def row(self, step: int, loss: float | None, seconds: float) -> dict[str, Any]:
        """The StepIn row of training step `step` (docs/api.md)."""
        with torch.no_grad():
            have = [i for i, p in enumerate(self.params) if p.grad is not None]
            after = _norms([g for g in (p.grad for p in self.params) if g is not None])
            before = [_pick(self._at_backward[i], a) for i, a in zip(have, after, strict=True)]
            delta, size = self._update()
            numbers = torch.stack(
                [*before, *after, self._total(before), self._total(after), delta, size]
            ).double()
            values = numbers.tolist()  # the one sync
        self._at_backward = [None] * len(self.params)
        n = len(have)
        by_param: dict[str, float | None] = dict.fromkeys(self.names)
        for j, i in enumerate(have):
            by_param[self.names[i]] = finite(values[j])
        grad_norm, clipped_norm = (finite(values[2 * n]), finite(values[2 * n + 1])) if n else (None, None)
        return {
            "step": step,
            "loss": finite(loss),
            "metric": None,
            "grad_norm": grad_norm,
            "grad_norm_clipped": clipped_norm,
            "clipped": grad_norm is not None
            and clipped_norm is not None
            and clipped_norm < grad_norm * (1 - 1e-6),
            "param_grad_norms": by_param,
            "update_ratio": finite(values[-2] / values[-1]) if values[-1] > 0 else None,
            "lr": finite(_lr(self.optimizer)),
            "seconds": max(seconds, 0.0),
        }

    def _update(self) -> tuple[Tensor, Tensor]:
        """||theta_k - theta_{k-1}|| and ||theta_{k-1}|| (0-d), and theta_k becomes the snapshot."""
        now = [p.detach() for p in self.params]
        size = self._before_norm
        torch._foreach_sub_(self._before, now)  # theta_{k-1} - theta_k, in the snapshot's memory
        delta = self._total(_norms(self._before))
        torch._foreach_copy_(self._before, now)
        self._before_norm = self._total(_norms(self._before))
        return delta, size

    def _total(self, norms: list[Tensor]) -> Tensor:
        """The norm of the concatenation, from the parts' norms (0 if there are none)."""
        if not norms:
            return torch.zeros((), device=self.device)
        total: Tensor = torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))
        return total

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def finite(x: float | None) -> float | None:
    """x as a float, or None if it is None, NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _pick(at_backward: Tensor | None, now: Tensor) -> Tensor:
    """A parameter's norm before clipping: as backward left it, or (untouched by backward this
    step) as it stands."""
    return at_backward if at_backward is not None else now


def _lr(optimizer: torch.optim.Optimizer | None) -> float | None:
    if optimizer is None or not optimizer.param_groups:
        return None
    lr = optimizer.param_groups[0].get("lr")
    return float(lr) if isinstance(lr, int | float | Tensor) else None


def _norm(t: Tensor) -> Tensor:
    """The 2-norm of `t` (0-d): sqrt(t . t) by BLAS, faster and more exact than vector_norm."""
    flat = (t.coalesce().values() if t.is_sparse else t).reshape(-1)
    if flat.dtype in (torch.float32, torch.float64):
        return torch.dot(flat, flat).sqrt()
    norm: Tensor = torch.linalg.vector_norm(flat.float())
    return norm


def _norms(tensors: list[Tensor]) -> list[Tensor]:
    return [_norm(t) for t in tensors]

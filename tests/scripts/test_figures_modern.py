"""scripts/figures_modern.py's definitions of "solved": the held-out figure of a net that knows the
answer, and of one that does not, and the reach ratio's two precisions agreeing where float32 can
hold it."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scripts import figures_modern


class Oracle(nn.Module):
    """Outputs the task's answer from the inputs alone: adding's marked sum, copy's symbols."""

    def __init__(self, task: str, delay: int = 0, symbols: int = 0, blank: bool = False) -> None:
        super().__init__()
        self.task, self.delay, self.symbols, self.blank = task, delay, symbols, blank

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.task == "adding":
            y = torch.zeros(*x.shape[:2], 1)
            y[:, -1, 0] = (x[..., 0] * x[..., 1]).sum(dim=1)  # values times markers
            return y, y
        K, T = self.symbols, self.delay
        y = torch.zeros_like(x)  # (B, T + 2K, 10): blank everywhere ...
        y[..., 0] = 1.0
        if not self.blank:
            y[:, T + K :] = x[:, :K]  # ... then the K symbols seen first, in order
        return y, y


def test_an_oracle_solves_and_a_blank_guess_does_not() -> None:
    adding = figures_modern.trainer("gru", "adding", figures_modern.TASKS["adding"], seed=0, steps=1)
    adding.net = Oracle("adding")  # type: ignore[assignment]
    assert figures_modern.held_out(adding, "adding", 512) < 1e-10
    copy = figures_modern.trainer("gru", "copy", figures_modern.TASKS["copy"], seed=0, steps=1)
    copy.net = Oracle("copy", delay=50, symbols=10)  # type: ignore[assignment]
    assert figures_modern.held_out(copy, "copy", 256) == 1.0
    blank = Oracle("copy", delay=50, symbols=10, blank=True)  # blank at every step, as at init
    copy.net = blank  # type: ignore[assignment]
    assert figures_modern.held_out(copy, "copy", 256) == 0.0  # the blanks elsewhere do not count


def test_the_reach_ratio_in_float32_and_float64_agree_where_float32_holds_it() -> None:
    probe32, exact64 = figures_modern.reach("slstm", seed=0, T=20)
    assert 0 < probe32 < 10 and math.isclose(probe32, exact64, rel_tol=1e-4)
    probe32, exact64 = figures_modern.reach("lstm", seed=0, T=20)
    assert 0 < probe32 < 1 and math.isclose(probe32, exact64, rel_tol=1e-4)

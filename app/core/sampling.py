"""
Sampling text from a character-level language model, one character at a time.

The model reads a prime (a non-empty start text) and then writes `length` more characters, each
drawn from softmax(logits / temperature) with the caller's torch.Generator, feeding every drawn
character back in while carrying the recurrent state. Low temperatures give the likeliest,
repetitive text; high ones give varied text with more spelling mistakes.

This module is not: the model (any StepModel will do), the training loop, or a beam search.
It is pure PyTorch.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from app.core.tasks import CharLMTask


class StepModel(Protocol):
    """A recurrent model that can be run a piece at a time.

    Called as model(x, state) with inputs x (B, T, I) and the state from the previous call (None to
    start from zeros); returns outputs (B, T, O), raw logits here, and the state after the last step.
    """

    def __call__(self, x: Tensor, state: object | None, /) -> tuple[Tensor, object]: ...


def sample_text(
    model: StepModel,
    task: CharLMTask,
    prime: str,
    length: int,
    temperature: float,
    generator: torch.Generator,
) -> str:
    """Return `prime` followed by `length` characters sampled from `model`.

    The prime must be non-empty (the model's first prediction needs an input to read) and made of
    characters in the task's vocabulary; temperature must be a positive finite number. Runs under
    torch.no_grad() and leaves the model's train/eval mode alone. The same generator state gives the
    same text.
    """
    if not prime:
        raise ValueError("prime must be a non-empty text: the model needs at least one character to read")
    unknown = sorted(set(prime) - set(task.vocab))
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown)
        raise ValueError(f"prime has characters not in the vocabulary: {shown}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if length < 0:
        raise ValueError(f"length must be at least 0, got {length}")

    V = len(task.vocab)
    out: list[int] = []
    with torch.no_grad():
        x = F.one_hot(task.encode(prime), V).to(torch.float32)[None]  # (1, P, V)
        y, state = model(x, None)  # (1, P, V)
        for _ in range(length):
            probs = F.softmax(y[0, -1].to(torch.float64) / temperature, dim=-1)  # (V,)
            ix = torch.multinomial(probs, num_samples=1, generator=generator)  # (1,)
            out.append(int(ix))
            if len(out) < length:  # feed the drawn character back in (not after the last one)
                x = F.one_hot(ix, V).to(torch.float32)[None]  # (1, 1, V)
                y, state = model(x, state)  # (1, 1, V)
    return prime + task.decode(out)

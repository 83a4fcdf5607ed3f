"""
Sequence tasks for training small RNNs: seeded batch generators with their loss, metric and baseline.

Each task says how a problem is written down as tensors, which of the classic RNN "shapes"
(Karpathy's one-to-many, many-to-one, many-to-many diagrams) it exercises, and how good a trivial
predictor already is (`baseline_loss`), so a loss curve can be read against it.

    char_lm   many_to_many         next-character prediction on "hello", Hamlet or your own text
    adding    many_to_one          Hochreiter & Schmidhuber's adding problem (regression)
    copy      many_to_many         Arjovsky et al.'s copy memory: reproduce symbols after a long delay
    recall    many_to_one          name the first symbol after a run of distractors
    tagging   many_to_many_synced  tag local peaks: needs the next input, so a bidirectional RNN wins
    counting  one_to_many          from one start symbol, count on by one each step

Conventions, for every task:
- inputs (B, T, I) float32; symbols are one-hot.
- targets (B, T) int64 class ids for loss_kind "xent", (B, T, O) float32 for "mse". Steps that
  carry no loss still hold a valid target (class 0, or 0.0), so no index is ever out of range.
- mask (B, T) float32: 1.0 where a loss term is taken. The loss is the mean over those terms.
- tokens: per sample, per timestep a short display label of the input; marks: per sample, the
  timesteps that matter to the task (adding's two marked values, copy's delimiter), named by the
  task's `mark_label`, or None for tasks without marks. What the pages draw as the input at each
  t: the tokens as text, or the channel `input_value` names as a bar (adding's value); the
  stretches of t that mean the same in every sample are the task's `spans()` (copy's recall window).
- sample() draws only from the torch.Generator it is given: the global RNG is never read or
  advanced, and the same generator state gives the identical batch.

This package is not: the models (cells.py, model.py), the training loop (engine.py), or anything
web-facing. It is pure PyTorch and the standard library. Build tasks with make_task(), which
checks every parameter against its ParamSpec; the constructors run the same checks.
"""

from __future__ import annotations

from typing import Any, cast

from app.core.tasks.base import (
    MAX_SEQ_LEN,
    Batch,
    InputValue,
    LossKind,
    MetricName,
    ParamSpec,
    Shape,
    Span,
    Task,
    check_params,
)
from app.core.tasks.synthetic import AddingTask, CopyTask, CountingTask, RecallTask, TaggingTask
from app.core.tasks.text import MAX_TEXT_CHARS, MAX_VOCAB, CharLMTask, display_char, load_corpus

__all__ = [
    "MAX_SEQ_LEN",
    "MAX_TEXT_CHARS",
    "MAX_VOCAB",
    "TASKS",
    "AddingTask",
    "Batch",
    "CharLMTask",
    "CopyTask",
    "CountingTask",
    "InputValue",
    "LossKind",
    "MetricName",
    "ParamSpec",
    "RecallTask",
    "Shape",
    "Span",
    "TaggingTask",
    "Task",
    "check_params",
    "display_char",
    "load_corpus",
    "make_task",
]

# -----------------------------------------------------------------------------
# the registry

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (CharLMTask, AddingTask, CopyTask, RecallTask, TaggingTask, CountingTask)
}


def make_task(name: str, **params: object) -> Task:
    """Build a task by name. Every parameter is checked against its ParamSpec (ValueError if not)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are: {', '.join(TASKS)}")
    cls = TASKS[name]
    check_params(cls, params)  # before the call, so a wrong name is a ValueError, not a TypeError
    return cls(**cast(dict[str, Any], params))

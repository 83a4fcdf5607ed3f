"""The task interface every sequence task implements: Batch, its parameters' specs and checks, Task.

What this is: the data a task hands out (`Batch`, `Span`, `InputValue`), how a parameter is
described and checked (`ParamSpec`, `check_params`, `seq_len_spec`), and the abstract `Task`
with the loss, metric and masking every task shares. What this is not: any task (text.py,
synthetic.py) or the registry (the package's `make_task`). The conventions are in the
package's docstring.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Shape = Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many", "many_to_many_synced"]
LossKind = Literal["xent", "mse"]
MetricName = Literal["accuracy", "mse", "bpc"]

MAX_SEQ_LEN = 2000  # upper bound on every seq_len parameter

# -----------------------------------------------------------------------------
# the data a task hands out, and the description of its parameters


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value, so compare batches by identity
class Batch:
    inputs: Tensor  # (B, T, I) float32 (one-hot for symbols)
    targets: Tensor  # (B, T) int64 class ids for loss_kind "xent"; (B, T, O) float32 for "mse"
    mask: Tensor  # (B, T) float32: 1.0 where a loss term is taken, else 0.0
    tokens: list[list[str]] | None  # per sample, per timestep a short display label of the input
    marks: list[list[int]] | None = None  # per sample, the timesteps the task marks (see Task.mark_label)


@dataclass(frozen=True)
class Span:
    """Timesteps start <= t < stop with one meaning in every sample of a task (copy's recall window)."""

    start: int
    stop: int
    label: str


@dataclass(frozen=True)
class InputValue:
    """The input channel whose value the pages draw as a bar at each t, on the scale [low, high]."""

    channel: int
    low: float
    high: float


@dataclass(frozen=True)
class ParamSpec:
    """One task parameter, for the API catalog and for validation.

    For kind "int" and "float", minimum/maximum bound the value; for kind "str" they bound its
    length in characters; kind "choice" takes one of `choices`.
    """

    name: str
    kind: Literal["int", "float", "str", "choice"]
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""


def seq_len_spec(default: int, minimum: int = 1, doc: str = "number of timesteps T") -> ParamSpec:
    return ParamSpec("seq_len", "int", default, minimum=minimum, maximum=MAX_SEQ_LEN, doc=doc)


def _check_param(task_name: str, spec: ParamSpec, value: object) -> None:
    """Raise ValueError, naming the field and the limit, if `value` does not fit `spec`."""
    field = f"{task_name}.{spec.name}"
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{field} must be an integer, got {type(value).__name__} {value!r}")
        size: float = value
        unit = ""
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{field} must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{field} must be a finite number, got {value!r}")
        size = value
        unit = ""
    elif spec.kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{field} must be a string, got {type(value).__name__}")
        size = len(value)
        unit = " characters long"
    else:  # choice
        choices = spec.choices or ()
        if not isinstance(value, str) or value not in choices:
            options = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{field} must be one of {options}, got {value!r}")
        return
    shown = f"{size} characters" if spec.kind == "str" else repr(value)
    if spec.minimum is not None and size < spec.minimum:
        raise ValueError(f"{field} must be at least {_number(spec.minimum)}{unit}, got {shown}")
    if spec.maximum is not None and size > spec.maximum:
        raise ValueError(f"{field} must be at most {_number(spec.maximum)}{unit}, got {shown}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def check_params(task: type[Task], values: Mapping[str, object]) -> None:
    """Check named parameter values against the task's ParamSpecs (unknown names are errors too)."""
    specs = {spec.name: spec for spec in task.params}
    for name, value in values.items():
        if name not in specs:
            known = ", ".join(specs) or "none"
            raise ValueError(f"task {task.name!r} has no parameter {name!r}; its parameters are: {known}")
        _check_param(task.name, specs[name], value)


def one_hot(ids: Tensor, n: int) -> Tensor:
    return F.one_hot(ids, n).to(torch.float32)


# -----------------------------------------------------------------------------
# the task interface: subclasses generate batches; loss, metric and masking live here once


class Task(ABC):
    name: ClassVar[str]  # key in TASKS, e.g. "adding"
    title: ClassVar[str]  # human name, e.g. "Adding problem"
    shape: ClassVar[Shape]
    doc: ClassVar[str]  # the encoding, and what the task demonstrates
    loss_kind: ClassVar[LossKind]
    metric_name: ClassVar[MetricName]
    params: ClassVar[tuple[ParamSpec, ...]]
    mark_label: ClassVar[str | None] = None  # what Batch.marks are ("marked", "delimiter"); None: no marks
    input_value: ClassVar[InputValue | None] = None  # None: the tokens (characters, symbols) are the input

    input_size: int  # I
    output_size: int  # O
    seq_len: int  # T, the length of the sequences sample() returns

    @property
    @abstractmethod
    def baseline_loss(self) -> float:
        """Loss of the trivial baseline predictor, in the units of loss() (nats, or squared error)."""

    @abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A batch drawn with `generator` only: the same generator state gives the identical batch."""

    def spans(self) -> list[Span]:
        """The stretches of t that mean the same in every sample (none by default)."""
        return []

    def step_losses(self, y: Tensor, batch: Batch) -> Tensor:
        """Per-step loss (B, T) of raw outputs y (B, T, O), already multiplied by the mask."""
        B, T = batch.mask.shape
        if y.shape != (B, T, self.output_size):
            raise ValueError(f"outputs must have shape {(B, T, self.output_size)}, got {tuple(y.shape)}")
        if self.loss_kind == "xent":
            losses = F.cross_entropy(y.reshape(B * T, -1), batch.targets.reshape(B * T), reduction="none")
            losses = losses.view(B, T)  # (B, T)
        else:
            losses = (y - batch.targets).pow(2).mean(dim=-1)  # (B, T)
        return losses * batch.mask

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        """Scalar: the mean loss over the masked steps (0 if the batch has no loss terms)."""
        return self.step_losses(y, batch).sum() / batch.mask.sum().clamp_min(1.0)

    def metric(self, y: Tensor, batch: Batch) -> float:
        """Accuracy over masked steps ("accuracy"), mean squared error ("mse") or bits per char ("bpc")."""
        with torch.no_grad():
            if self.metric_name == "accuracy":
                hits = (y.argmax(dim=-1) == batch.targets).to(torch.float32)  # (B, T)
                return float((hits * batch.mask).sum() / batch.mask.sum().clamp_min(1.0))
            nats = float(self.loss(y, batch))
            return nats / math.log(2) if self.metric_name == "bpc" else nats

    def encode_text(self, text: str) -> Batch:
        """A single-sample batch from a person's text. Only the character language model reads text."""
        raise ValueError(
            f"The {self.title} task ({self.name}) does not take text; only the char_lm task encodes text."
        )

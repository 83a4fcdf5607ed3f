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

This module is not: the models (cells.py, model.py), the training loop (engine.py), or anything
web-facing. It is pure PyTorch and the standard library. Build tasks with make_task(), which
checks every parameter against its ParamSpec; the constructors run the same checks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor

Shape = Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many", "many_to_many_synced"]
LossKind = Literal["xent", "mse"]
MetricName = Literal["accuracy", "mse", "bpc"]

MAX_SEQ_LEN = 2000  # upper bound on every seq_len parameter
MAX_TEXT_CHARS = 1_000_000  # longest custom text for char_lm
MAX_VOCAB = 512  # most distinct characters a char_lm text may have (keeps one-hot inputs small)
DATA_DIR = Path(__file__).resolve().parent / "data"

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


def _seq_len_spec(default: int, minimum: int = 1, doc: str = "number of timesteps T") -> ParamSpec:
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


def _one_hot(ids: Tensor, n: int) -> Tensor:
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


# -----------------------------------------------------------------------------
# 1. character-level language model


@cache
def load_corpus(name: str) -> str:
    """The text of a bundled corpus: "hello" or "shakespeare" (Hamlet, see data/SOURCE.md)."""
    if name == "hello":
        return "hello"
    if name == "shakespeare":
        return (DATA_DIR / "shakespeare.txt").read_text(encoding="utf-8")
    raise ValueError(f"unknown corpus {name!r}; the bundled corpora are 'hello' and 'shakespeare'")


_DISPLAY = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def display_char(ch: str) -> str:
    """A visible one-character label: space -> ␣, newline -> ⏎, tab -> ⇥, other controls -> \\xNN."""
    if ch in _DISPLAY:
        return _DISPLAY[ch]
    return ch if ch.isprintable() else f"\\x{ord(ch):02x}"


class CharLMTask(Task):
    name = "char_lm"
    title = "Character-level language model"
    shape = "many_to_many"
    doc = (
        "Predict the next character. The vocabulary is the text's distinct characters in order of "
        "first appearance (so 'hello' gives h, e, l, o, as in Karpathy's classic example). Input at "
        "step t is the one-hot of character t, the target is character t+1, and every step carries "
        "loss. Corpus 'hello' is the single sequence 'hell' -> 'ello' (T = 4); the other corpora give "
        "random windows of T+1 characters. Shows the hidden state tracking context: 'l' is followed "
        "by 'l' the first time and by 'o' the second, which only memory can tell apart. The baseline "
        "predicts the text's character frequencies: its loss is their entropy. Metric: bits per "
        "character (loss / ln 2)."
    )
    loss_kind = "xent"
    metric_name = "bpc"
    params = (
        ParamSpec(
            "corpus",
            "choice",
            "hello",
            choices=("hello", "shakespeare", "custom"),
            doc=(
                "'hello' (the 4-step classic), 'shakespeare' (Hamlet, 174 KB) or 'custom' (your text); "
                "without it, 'custom' when text is given, else 'hello'"
            ),
        ),
        ParamSpec(
            "text",
            "str",
            "",
            minimum=0,
            maximum=MAX_TEXT_CHARS,
            doc=(
                "your training text, for corpus 'custom' (or no corpus): up to 1,000,000 characters, "
                f"at least 2 and at most {MAX_VOCAB} distinct ones, and at least seq_len + 1 long"
            ),
        ),
        _seq_len_spec(50, doc="window length T in characters (ignored by 'hello', which is always 4)"),
    )

    def __init__(self, corpus: str | None = None, text: str = "", seq_len: int = 50) -> None:
        corpus = self.resolve_corpus(corpus, text)
        check_params(type(self), {"corpus": corpus, "text": text, "seq_len": seq_len})
        if corpus == "custom":
            if len(set(text)) < 2:
                raise ValueError("char_lm.text must contain at least 2 distinct characters")
            if len(text) < seq_len + 1:
                raise ValueError(
                    f"char_lm.text must be at least seq_len + 1 = {seq_len + 1} characters long "
                    f"for windows of seq_len {seq_len}, got {len(text)}"
                )
        else:
            text = load_corpus(corpus)
            seq_len = 4 if corpus == "hello" else seq_len
        self.corpus = corpus
        self.text = text
        self.vocab: list[str] = list(dict.fromkeys(text))  # distinct characters, in order of first appearance
        if len(self.vocab) > MAX_VOCAB:
            raise ValueError(
                f"char_lm.text may have at most {MAX_VOCAB} distinct characters, got {len(self.vocab)}"
            )
        self._charset = frozenset(self.vocab)
        codes = torch.tensor([ord(ch) for ch in self.vocab])  # (V,) code points, in vocabulary order
        self._by_code = codes.argsort()  # (V,) vocabulary ids, sorted by code point
        self._sorted_codes = codes[self._by_code]  # (V,)
        self._labels = [display_char(ch) for ch in self.vocab]
        self.data = self.encode(text)  # (N,) int64, the whole text as ids
        self.input_size = self.output_size = len(self.vocab)
        self.seq_len = seq_len

    @staticmethod
    def resolve_corpus(corpus: str | None, text: str) -> str:
        """The corpus a run trains on: as given, else 'custom' with text and 'hello' without.

        ValueError if text is given with a bundled corpus, which would leave the text unread.
        """
        if corpus is None:
            return "custom" if text else "hello"
        if text and corpus != "custom":
            raise ValueError(
                f"char_lm.text is read only when char_lm.corpus is 'custom', but corpus is {corpus!r}: "
                "set corpus to 'custom' (or leave corpus out) to train on your text, or drop the text"
            )
        return corpus

    def encode(self, text: str) -> Tensor:
        """Character ids (len(text),) int64; ValueError naming any character outside the vocabulary."""
        unknown = sorted(set(text) - self._charset)
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown)
            raise ValueError(f"characters not in the vocabulary of this corpus: {shown}")
        if not text:
            return torch.zeros(0, dtype=torch.int64)
        # vectorised lookup, a megabyte of text in milliseconds: code point -> place in sorted vocab -> id
        raw = bytearray(text.encode("utf-32-le", "surrogatepass"))  # 4 bytes per character
        codes = torch.frombuffer(raw, dtype=torch.int32).to(torch.int64)  # (L,)
        return self._by_code[torch.searchsorted(self._sorted_codes, codes)]

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """The text spelled by a sequence of character ids."""
        seq = ids.tolist() if isinstance(ids, Tensor) else ids
        return "".join(self.vocab[i] for i in seq)

    @property
    def baseline_loss(self) -> float:
        counts = torch.bincount(self.data[1:], minlength=len(self.vocab)).to(torch.float64)  # (V,)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())

    def _batch(self, chunk: Tensor, mask: Tensor) -> Batch:
        """chunk (B, T+1) ids -> inputs chunk[:, :-1] one-hot, targets chunk[:, 1:]."""
        x, y = chunk[:, :-1], chunk[:, 1:]  # (B, T), (B, T)
        tokens = [[self._labels[i] for i in row] for row in x.tolist()]
        return Batch(inputs=_one_hot(x, len(self.vocab)), targets=y.clone(), mask=mask, tokens=tokens)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T = batch_size, self.seq_len
        if self.corpus == "hello":
            chunk = self.data.expand(B, T + 1)  # (B, 5): the one sequence, repeated
        else:
            starts = torch.randint(0, len(self.data) - T, (B,), generator=generator)  # (B,)
            chunk = self.data[starts[:, None] + torch.arange(T + 1)]  # (B, T+1)
        return self._batch(chunk, torch.ones(B, T))

    def encode_text(self, text: str) -> Batch:
        """One sample reading all of `text`; targets are the next characters (none after the last)."""
        if not 1 <= len(text) <= MAX_SEQ_LEN:
            raise ValueError(f"text must be 1 to {MAX_SEQ_LEN} characters long, got {len(text)}")
        ids = self.encode(text)  # (L,)
        chunk = torch.cat([ids, ids.new_zeros(1)])[None]  # (1, L+1): a dummy target after the end
        mask = torch.ones(1, len(text))
        mask[0, -1] = 0.0  # the last character has no next character to predict
        return self._batch(chunk, mask)


# -----------------------------------------------------------------------------
# 2. the adding problem


class AddingTask(Task):
    name = "adding"
    title = "Adding problem"
    shape = "many_to_one"
    doc = (
        "Hochreiter & Schmidhuber (1997). Each step has 2 inputs: a value drawn from U(0, 1) and a "
        "marker, which is 1 at exactly two steps (one in the first half, steps 0..T/2-1 rounded down, "
        "one in the second half) and 0 elsewhere. At the last step the model outputs the sum of the "
        "two marked values; only that step carries loss (squared error). The marked value can sit "
        "T steps back, so this shows how far a gradient travels. Predicting 1 (the mean sum) scores "
        "the baseline MSE 1/6, the variance of a sum of two U(0, 1)."
    )
    loss_kind = "mse"
    metric_name = "mse"
    params = (_seq_len_spec(50, minimum=2),)
    mark_label = "marked"  # Batch.marks: the two marked steps (channel 1); tokens show the values alone
    input_value = InputValue(channel=0, low=0.0, high=1.0)  # the value drawn from U(0, 1)

    def __init__(self, seq_len: int = 50) -> None:
        check_params(type(self), {"seq_len": seq_len})
        self.input_size, self.output_size, self.seq_len = 2, 1, seq_len

    @property
    def baseline_loss(self) -> float:
        return 1.0 / 6.0

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T = batch_size, self.seq_len
        half = T // 2
        values = torch.rand(B, T, generator=generator)  # (B, T)
        first = torch.randint(0, half, (B,), generator=generator)  # (B,)
        second = torch.randint(half, T, (B,), generator=generator)  # (B,)
        markers = torch.zeros(B, T)
        rows = torch.arange(B)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        targets = torch.zeros(B, T, 1)
        targets[:, -1, 0] = (values * markers).sum(dim=1)
        mask = torch.zeros(B, T)
        mask[:, -1] = 1.0
        tokens = [[f"{v:.2f}" for v in row] for row in values.tolist()]
        marks = torch.stack([first, second], dim=1).tolist()  # (B, 2): the marked steps
        inputs = torch.stack([values, markers], dim=-1)  # (B, T, 2)
        return Batch(inputs=inputs, targets=targets, mask=mask, tokens=tokens, marks=marks)


# -----------------------------------------------------------------------------
# 3. copy memory


class CopyTask(Task):
    name = "copy"
    title = "Copy memory"
    shape = "many_to_many"
    doc = (
        "Arjovsky, Shah & Bengio (2016). With delay T and K symbols, sequences are T + 2K steps long: "
        "K symbols drawn from 1..8, then T-1 blanks (0), a delimiter (9), then K blanks. The target is "
        "blank for the first T + K steps and then the K symbols, in order. 10 categories, one-hot in "
        "and out, loss at every step. The model must hold K symbols for T steps. The baseline knows "
        "the layout (blank, blank, ..., then a uniform guess over the 8 symbols) and scores "
        "K ln 8 / (T + 2K) nats per step."
    )
    loss_kind = "xent"
    metric_name = "accuracy"
    params = (
        _seq_len_spec(
            50, doc="the delay T between the last symbol and the delimiter; sequences are T + 2K long"
        ),
        ParamSpec("n_symbols", "int", 10, minimum=1, maximum=50, doc="K, how many symbols to copy"),
    )
    BLANK, DELIMITER, N_CATEGORIES = 0, 9, 10
    mark_label = "delimiter"  # Batch.marks: the delimiter's step, after which the copy starts

    def __init__(self, seq_len: int = 50, n_symbols: int = 10) -> None:
        check_params(type(self), {"seq_len": seq_len, "n_symbols": n_symbols})
        self.delay, self.n_symbols = seq_len, n_symbols
        self.input_size = self.output_size = self.N_CATEGORIES
        self.seq_len = seq_len + 2 * n_symbols  # T + 2K: the length of the sequences, not the delay

    @property
    def baseline_loss(self) -> float:
        return self.n_symbols * math.log(8) / self.seq_len

    def spans(self) -> list[Span]:
        K, T = self.n_symbols, self.delay
        return [Span(0, K, "symbols to copy"), Span(T + K, T + 2 * K, "recall window")]

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T, K = batch_size, self.delay, self.n_symbols
        symbols = torch.randint(1, 9, (B, K), generator=generator)  # (B, K)
        x = torch.full((B, T + 2 * K), self.BLANK, dtype=torch.int64)  # (B, T+2K)
        x[:, :K] = symbols
        x[:, K + T - 1] = self.DELIMITER
        targets = torch.full_like(x, self.BLANK)
        targets[:, T + K :] = symbols
        labels = ["·", *map(str, range(1, 9)), "▶"]  # blank, symbols 1..8, delimiter
        tokens = [[labels[i] for i in row] for row in x.tolist()]
        marks = [[K + T - 1] for _ in range(B)]
        return Batch(
            inputs=_one_hot(x, 10), targets=targets, mask=torch.ones(B, T + 2 * K), tokens=tokens, marks=marks
        )


# -----------------------------------------------------------------------------
# 4. recall the first symbol


class RecallTask(Task):
    name = "recall"
    title = "Recall the first symbol"
    shape = "many_to_one"
    doc = (
        "Many-to-one classification. Step 0 shows a symbol drawn from C classes; steps 1..T-1 show "
        "random distractors from the same C symbols; at the last step the model names the first "
        "symbol. One-hot in and out, loss at the last step only. The only useful gradient reaches "
        "back T-1 steps to the first input, so this shows vanishing gradients plainly: a vanilla RNN "
        "fails as T grows where gated cells still learn. Guessing uniformly scores the baseline ln C."
    )
    loss_kind = "xent"
    metric_name = "accuracy"
    params = (
        _seq_len_spec(20),
        ParamSpec("n_classes", "int", 8, minimum=2, maximum=50, doc="C, the number of symbols"),
    )

    def __init__(self, seq_len: int = 20, n_classes: int = 8) -> None:
        check_params(type(self), {"seq_len": seq_len, "n_classes": n_classes})
        self.n_classes = n_classes
        self.input_size = self.output_size = n_classes
        self.seq_len = seq_len

    @property
    def baseline_loss(self) -> float:
        return math.log(self.n_classes)

    def spans(self) -> list[Span]:
        return [Span(0, 1, "the symbol to recall")]

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T, C = batch_size, self.seq_len, self.n_classes
        x = torch.randint(0, C, (B, T), generator=generator)  # (B, T): x[:, 0] is the one to recall
        targets = torch.zeros(B, T, dtype=torch.int64)
        targets[:, -1] = x[:, 0]
        mask = torch.zeros(B, T)
        mask[:, -1] = 1.0
        tokens = [[str(i) for i in row] for row in x.tolist()]
        return Batch(inputs=_one_hot(x, C), targets=targets, mask=mask, tokens=tokens)


# -----------------------------------------------------------------------------
# 5. local-peak tagging


class TaggingTask(Task):
    name = "tagging"
    title = "Local-peak tagging"
    shape = "many_to_many_synced"
    doc = (
        "Synced tagging: the inputs are random digits 0..9 (one-hot), and the tag at step t is 1 if "
        "the digit is strictly greater than both neighbours (a missing neighbour counts as -inf), "
        "else 0. Loss at every step. The tag at t depends on the digit at t+1, which a left-to-right "
        "RNN has not seen yet, so a bidirectional RNN does visibly better. A digit beats one "
        "neighbour with probability 0.45 and both with 0.285; the baseline predicts the overall tag "
        "frequency p at every step and scores the entropy H(p)."
    )
    loss_kind = "xent"
    metric_name = "accuracy"
    params = (_seq_len_spec(20, minimum=2),)

    def __init__(self, seq_len: int = 20) -> None:
        check_params(type(self), {"seq_len": seq_len})
        self.input_size, self.output_size, self.seq_len = 10, 2, seq_len

    @property
    def tag_rate(self) -> float:
        """The exact share of steps tagged 1, averaged over positions: the two ends have one neighbour."""
        T = self.seq_len  # at least 2
        beats_one = sum(x for x in range(10)) / 10**2  # P(x > a) for uniform digits = 45/100
        beats_two = sum(x * x for x in range(10)) / 10**3  # P(x > a and x > b) = 285/1000
        return (2 * beats_one + (T - 2) * beats_two) / T

    @property
    def baseline_loss(self) -> float:
        p = self.tag_rate
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))

    @staticmethod
    def tags(x: Tensor) -> Tensor:
        """x (B, T) digits -> (B, T) int64 tags: 1 where x is strictly above both neighbours."""
        edge = torch.full_like(x[:, :1], -1)  # below every digit: a missing neighbour never blocks a peak
        left = torch.cat([edge, x[:, :-1]], dim=1)  # (B, T)
        right = torch.cat([x[:, 1:], edge], dim=1)  # (B, T)
        return ((x > left) & (x > right)).to(torch.int64)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T = batch_size, self.seq_len
        x = torch.randint(0, 10, (B, T), generator=generator)  # (B, T)
        tokens = [[str(i) for i in row] for row in x.tolist()]
        return Batch(inputs=_one_hot(x, 10), targets=self.tags(x), mask=torch.ones(B, T), tokens=tokens)


# -----------------------------------------------------------------------------
# 6. counting from a start symbol


class CountingTask(Task):
    name = "counting"
    title = "Counting from a start symbol"
    shape = "one_to_many"
    doc = (
        "One-to-many generation: at step 0 the input is the one-hot of a start symbol s drawn from C "
        "classes; every later input is all zeros. The target at step t is (s + t) mod C, with loss at "
        "every step. The hidden state must carry s and advance a counter on its own, the one-to-many "
        "pattern of image captioning or music generation. Guessing uniformly scores the baseline ln C."
    )
    loss_kind = "xent"
    metric_name = "accuracy"
    params = (
        _seq_len_spec(20),
        ParamSpec("n_classes", "int", 10, minimum=2, maximum=50, doc="C, the counter wraps around after C"),
    )

    def __init__(self, seq_len: int = 20, n_classes: int = 10) -> None:
        check_params(type(self), {"seq_len": seq_len, "n_classes": n_classes})
        self.n_classes = n_classes
        self.input_size = self.output_size = n_classes
        self.seq_len = seq_len

    @property
    def baseline_loss(self) -> float:
        return math.log(self.n_classes)

    def spans(self) -> list[Span]:
        return [Span(0, 1, "the start symbol")]

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T, C = batch_size, self.seq_len, self.n_classes
        start = torch.randint(0, C, (B,), generator=generator)  # (B,)
        inputs = torch.zeros(B, T, C)
        inputs[:, 0] = _one_hot(start, C)
        targets = (start[:, None] + torch.arange(T)) % C  # (B, T)
        tokens = [[str(s)] + ["·"] * (T - 1) for s in start.tolist()]
        return Batch(inputs=inputs, targets=targets, mask=torch.ones(B, T), tokens=tokens)


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

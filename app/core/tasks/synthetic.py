"""The synthetic tasks: adding, copy memory, recall, tagging and counting, each a seeded generator.

What this is not: the text task (text.py) or the interface (base.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from app.core.tasks.base import Batch, InputValue, ParamSpec, Span, Task, check_params, one_hot, seq_len_spec

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
    params = (seq_len_spec(50, minimum=2),)
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
        seq_len_spec(
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
            inputs=one_hot(x, 10), targets=targets, mask=torch.ones(B, T + 2 * K), tokens=tokens, marks=marks
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
        seq_len_spec(20),
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
        return Batch(inputs=one_hot(x, C), targets=targets, mask=mask, tokens=tokens)


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
    params = (seq_len_spec(20, minimum=2),)

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
        return Batch(inputs=one_hot(x, 10), targets=self.tags(x), mask=torch.ones(B, T), tokens=tokens)


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
        seq_len_spec(20),
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
        inputs[:, 0] = one_hot(start, C)
        targets = (start[:, None] + torch.arange(T)) % C  # (B, T)
        tokens = [[str(s)] + ["·"] * (T - 1) for s in start.tolist()]
        return Batch(inputs=inputs, targets=targets, mask=torch.ones(B, T), tokens=tokens)

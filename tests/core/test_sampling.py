"""sample_text feeds the prime, carries the state, and draws with the given generator and temperature."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from app.core.sampling import sample_text
from app.core.tasks import CharLMTask, make_task


class TinyLM(nn.Module):
    """A stand-in for the project's model: an LSTM and a linear readout, called as model(x, state)."""

    def __init__(self, vocab_size: int, hidden_size: int = 16) -> None:
        super().__init__()
        self.rnn = nn.LSTM(vocab_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: Tensor, state: object | None) -> tuple[Tensor, object]:
        h, state = self.rnn(x, state)  # (B, T, H)
        return self.head(h), state  # (B, T, V)


class FixedLogits:
    """A stateless stand-in that always outputs the same logits, and records how it was called."""

    def __init__(self, logits: list[float]) -> None:
        self.logits = torch.tensor(logits)
        self.calls: list[tuple[int, bool, bool]] = []  # (steps fed, had a state, grad enabled)

    def __call__(self, x: Tensor, state: object | None) -> tuple[Tensor, object]:
        self.calls.append((x.shape[1], state is not None, torch.is_grad_enabled()))
        B, T, _ = x.shape
        return self.logits.expand(B, T, -1), len(self.calls)


def hello_task() -> CharLMTask:
    task = make_task("char_lm", corpus="hello")
    assert isinstance(task, CharLMTask)
    return task


def ab_task() -> CharLMTask:
    task = make_task("char_lm", corpus="custom", text="ab" * 4, seq_len=2)
    assert isinstance(task, CharLMTask)
    return task


@pytest.fixture(scope="module")
def hello_model() -> TinyLM:
    """An LSTM trained on 'hell' -> 'ello' until it knows the word (well under a second)."""
    task = hello_task()
    torch.manual_seed(0)
    model = TinyLM(len(task.vocab))
    batch = task.sample(1, torch.Generator().manual_seed(0))
    # plain gradient descent (about 60 steps here) keeps out torch.optim, whose first use costs ~3 s
    for _ in range(400):
        y, _ = model(batch.inputs, None)
        loss = task.loss(y, batch)
        if loss.item() < 0.01:
            break
        model.zero_grad()
        torch.autograd.backward(loss)
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.sub_(2.0 * p.grad)
    assert loss.item() < 0.01
    return model


def test_a_trained_lstm_says_hello(hello_model: TinyLM) -> None:
    # "l" is followed once by "l" and once by "o": only a carried state can get both right
    task = hello_task()
    assert sample_text(hello_model, task, "h", 4, 0.5, torch.Generator().manual_seed(0)) == "hello"
    assert sample_text(hello_model, task, "hel", 2, 0.5, torch.Generator().manual_seed(1)) == "hello"


def test_same_generator_state_same_text_other_seed_other_text(hello_model: TinyLM) -> None:
    task = hello_task()

    def run(seed: int) -> str:
        return sample_text(hello_model, task, "h", 30, 3.0, torch.Generator().manual_seed(seed))

    text = run(0)
    assert len(text) == 31
    assert set(text) <= set(task.vocab)
    assert run(0) == text
    assert run(1) != text


def test_sampling_leaves_the_global_rng_alone(hello_model: TinyLM) -> None:
    state = torch.get_rng_state()
    sample_text(hello_model, hello_task(), "h", 20, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_prime_is_fed_once_then_one_character_per_call_with_the_state_carried() -> None:
    model = FixedLogits([0.0, 0.0])
    text = sample_text(model, ab_task(), "abba", 3, 1.0, torch.Generator().manual_seed(0))
    assert text.startswith("abba")
    assert len(text) == 7
    assert model.calls == [(4, False, False), (1, True, False), (1, True, False)]  # under no_grad


def test_zero_length_returns_the_prime() -> None:
    assert sample_text(FixedLogits([0.0, 0.0]), ab_task(), "ab", 0, 1.0, torch.Generator()) == "ab"


@pytest.mark.parametrize(
    ("temperature", "low", "high"),
    [
        (1.0, 0.68, 0.78),  # P(b) = e / (1 + e) = 0.731
        (100.0, 0.45, 0.55),  # hot: close to a fair coin
        (0.01, 1.0, 1.0),  # cold: always the argmax
    ],
)
def test_temperature_divides_the_logits(temperature: float, low: float, high: float) -> None:
    text = sample_text(
        FixedLogits([0.0, 1.0]), ab_task(), "a", 1000, temperature, torch.Generator().manual_seed(0)
    )
    share_b = text[1:].count("b") / 1000
    assert low <= share_b <= high


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.nan, math.inf])
def test_temperature_must_be_positive(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        sample_text(FixedLogits([0.0, 0.0]), ab_task(), "a", 3, temperature, torch.Generator())


def test_prime_must_be_in_the_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'c', 'x'"):
        sample_text(FixedLogits([0.0, 0.0]), ab_task(), "abxc", 3, 1.0, torch.Generator())


def test_prime_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="prime must be a non-empty text"):
        sample_text(FixedLogits([0.0, 0.0]), ab_task(), "", 3, 1.0, torch.Generator())


def test_length_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="length must be at least 0"):
        sample_text(FixedLogits([0.0, 0.0]), ab_task(), "a", -1, 1.0, torch.Generator())

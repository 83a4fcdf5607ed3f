"""The tasks produce their documented encodings, deterministically, and their baselines hold when measured."""

from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.tasks import (
    TASKS,
    AddingTask,
    Batch,
    CharLMTask,
    CopyTask,
    CountingTask,
    RecallTask,
    Shape,
    TaggingTask,
    Task,
    load_corpus,
    make_task,
)
from app.core.tasks.text import DATA_DIR

# small but non-trivial settings of every task, so each test touches all six
SMALL: dict[str, dict[str, object]] = {
    "char_lm": {"corpus": "shakespeare", "seq_len": 30},
    "adding": {"seq_len": 30},
    "copy": {"seq_len": 12, "n_symbols": 4},
    "recall": {"seq_len": 15, "n_classes": 5},
    "tagging": {"seq_len": 25},
    "counting": {"seq_len": 15, "n_classes": 7},
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def digits(batch: Batch) -> torch.Tensor:
    """One-hot inputs (B, T, I) back to symbol ids (B, T)."""
    return batch.inputs.argmax(dim=-1)


def test_registry_covers_the_six_tasks_with_complete_catalog_entries() -> None:
    assert set(TASKS) == set(SMALL)
    shapes = typing.get_args(Shape)
    for name, cls in TASKS.items():
        assert cls.name == name
        assert cls.shape in shapes
        assert cls.title
        assert len(cls.doc) > 80
        assert (cls.loss_kind == "mse") == (cls.metric_name == "mse")
        for spec in cls.params:
            assert spec.doc, f"{name}.{spec.name} has no doc"
    assert TASKS["char_lm"].metric_name == "bpc"
    assert {cls.shape for cls in TASKS.values()} >= {
        "one_to_many",
        "many_to_one",
        "many_to_many",
        "many_to_many_synced",
    }


# -----------------------------------------------------------------------------
# shapes, dtypes, determinism


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_shapes_dtypes_and_tokens(name: str) -> None:
    task = make_task(name, **SMALL[name])
    B, T = 3, task.seq_len
    b = task.sample(B, gen(0))
    assert b.inputs.shape == (B, T, task.input_size)
    assert b.inputs.dtype == torch.float32
    assert b.mask.shape == (B, T)
    assert b.mask.dtype == torch.float32
    assert set(b.mask.flatten().tolist()) <= {0.0, 1.0}
    assert b.mask.sum() > 0
    if task.loss_kind == "xent":
        assert b.targets.shape == (B, T)
        assert b.targets.dtype == torch.int64
        assert int(b.targets.min()) >= 0
        assert int(b.targets.max()) < task.output_size
    else:
        assert b.targets.shape == (B, T, task.output_size)
        assert b.targets.dtype == torch.float32
    assert b.tokens is not None
    assert len(b.tokens) == B
    assert all(len(row) == T and all(isinstance(s, str) and 0 < len(s) <= 8 for s in row) for row in b.tokens)
    if task.mark_label is None:
        assert b.marks is None
    else:  # a few marked timesteps per sample, each a valid t
        assert b.marks is not None and len(b.marks) == B
        assert all(row and all(0 <= t < T for t in row) for row in b.marks)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(SMALL)), seq_len=st.integers(2, 60), batch=st.integers(1, 4))
def test_any_seq_len_gives_consistent_shapes(name: str, seq_len: int, batch: int) -> None:
    task = make_task(name, **{**SMALL[name], "seq_len": seq_len})
    b = task.sample(batch, gen(seq_len))
    assert b.inputs.shape == (batch, task.seq_len, task.input_size)
    assert b.mask.shape == (batch, task.seq_len)
    assert b.targets.shape[:2] == (batch, task.seq_len)
    y = torch.zeros(batch, task.seq_len, task.output_size)
    assert task.step_losses(y, b).shape == (batch, task.seq_len)
    assert math.isfinite(float(task.loss(y, b)))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_batch_other_seed_other_batch(name: str) -> None:
    task = make_task(name, **SMALL[name])
    a, b, c = task.sample(4, gen(7)), task.sample(4, gen(7)), task.sample(4, gen(8))
    assert torch.equal(a.inputs, b.inputs)
    assert torch.equal(a.targets, b.targets)
    assert torch.equal(a.mask, b.mask)
    assert a.tokens == b.tokens
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_sampling_uses_only_the_given_generator(name: str) -> None:
    task = make_task(name, **SMALL[name])
    torch.manual_seed(1)
    state = torch.get_rng_state()
    a = task.sample(4, gen(3))
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was advanced"
    torch.manual_seed(2)
    assert torch.equal(task.sample(4, gen(3)).inputs, a.inputs), "the global RNG changed the batch"


def test_a_generator_advances_between_batches() -> None:
    task = make_task("recall")
    g = gen(0)
    assert not torch.equal(task.sample(8, g).inputs, task.sample(8, g).inputs)


# -----------------------------------------------------------------------------
# the encodings, task by task


def test_hello_is_karpathys_example() -> None:
    task = make_task("char_lm", corpus="hello", seq_len=99)  # hello fixes T = 4
    assert isinstance(task, CharLMTask)
    assert task.vocab == ["h", "e", "l", "o"]
    assert (task.input_size, task.output_size, task.seq_len) == (4, 4, 4)
    b = task.sample(3, gen(0))
    for i in range(3):
        assert task.decode(digits(b)[i]) == "hell"
        assert task.decode(b.targets[i]) == "ello"
    assert b.tokens == [list("hell")] * 3
    assert torch.equal(b.inputs[0], torch.eye(4)[[0, 1, 2, 2]])
    assert b.mask.all()


def test_vocab_is_in_order_of_first_appearance_and_round_trips() -> None:
    task = make_task("char_lm", corpus="custom", text="banana bread\n", seq_len=5)
    assert isinstance(task, CharLMTask)
    assert task.vocab == ["b", "a", "n", " ", "r", "e", "d", "\n"]
    ids = task.encode("bread and\nbanana")
    assert ids.dtype == torch.int64
    assert task.decode(ids) == "bread and\nbanana"
    assert task.decode([0, 1, 2]) == "ban"
    with pytest.raises(ValueError, match=r"'x'.*'z'|'z'.*'x'"):
        task.encode("zebrax")


def test_char_lm_windows_are_slices_of_the_text_shifted_by_one() -> None:
    task = make_task("char_lm", corpus="shakespeare", seq_len=40)
    assert isinstance(task, CharLMTask)
    b = task.sample(16, gen(1))
    x, y = digits(b), b.targets  # (B, T), (B, T)
    assert torch.equal(x[:, 1:], y[:, :-1])
    for i in range(16):
        window = task.decode(x[i]) + task.vocab[int(y[i, -1])]
        assert window in task.text
    starts = {task.text.find(task.decode(x[i])) for i in range(16)}
    assert len(starts) > 8  # random places, not one


def test_char_lm_tokens_make_spaces_and_newlines_visible() -> None:
    task = make_task("char_lm", corpus="custom", text="a b\n" * 10, seq_len=8)
    b = task.sample(2, gen(0))
    assert b.tokens is not None
    assert set(b.tokens[0]) == {"a", "␣", "b", "⏎"}


def test_encode_text_reads_every_character_and_masks_the_last() -> None:
    task = make_task("char_lm", corpus="hello")
    assert isinstance(task, CharLMTask)
    b = task.encode_text("hello")
    assert b.inputs.shape == (1, 5, 4)
    assert b.tokens == [list("hello")]
    assert b.targets[0, :4].tolist() == task.encode("ello").tolist()
    assert b.mask.tolist() == [[1.0, 1.0, 1.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match=r"'a'.*'y'"):
        task.encode_text("hey a")
    with pytest.raises(ValueError, match="1 to 2000"):
        task.encode_text("")


@pytest.mark.parametrize("name", sorted(set(SMALL) - {"char_lm"}))
def test_other_tasks_refuse_text(name: str) -> None:
    with pytest.raises(ValueError, match="does not take text"):
        make_task(name).encode_text("hello")


@settings(max_examples=30, deadline=None)
@given(seq_len=st.integers(2, 80), seed=st.integers(0, 2**16))
def test_adding_has_one_marker_per_half_and_targets_their_sum(seq_len: int, seed: int) -> None:
    task = AddingTask(seq_len=seq_len)
    b = task.sample(16, gen(seed))
    values, markers = b.inputs[..., 0], b.inputs[..., 1]  # (B, T), (B, T)
    half = seq_len // 2
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.flatten().tolist()) <= {0.0, 1.0}
    assert (markers[:, :half].sum(dim=1) == 1).all()
    assert (markers[:, half:].sum(dim=1) == 1).all()
    expected = (values * markers).sum(dim=1)  # (B,)
    assert torch.allclose(b.targets[:, -1, 0], expected)
    assert (b.targets[:, :-1] == 0).all()
    assert b.mask[:, -1].eq(1).all()
    assert b.mask[:, :-1].eq(0).all()
    assert b.tokens is not None
    assert b.tokens[0][0] == f"{float(values[0, 0]):.2f}"  # the value alone: the marks show the marker
    assert b.marks == torch.nonzero(markers)[:, 1].view(16, 2).tolist()
    assert task.mark_label == "marked"


@settings(max_examples=30, deadline=None)
@given(delay=st.integers(1, 40), k=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_copy_layout(delay: int, k: int, seed: int) -> None:
    task = CopyTask(seq_len=delay, n_symbols=k)
    L = delay + 2 * k
    assert task.seq_len == L
    assert task.delay == delay
    b = task.sample(8, gen(seed))
    x, y = digits(b), b.targets  # (B, L), (B, L)
    symbols = x[:, :k]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (x[:, k : k + delay - 1] == 0).all()
    assert (x[:, k + delay - 1] == 9).all()
    assert (x[:, k + delay :] == 0).all()
    assert (y[:, : delay + k] == 0).all()
    assert torch.equal(y[:, delay + k :], symbols)
    assert b.mask.eq(1).all()
    assert b.inputs.sum(dim=-1).eq(1).all()  # one-hot everywhere, blanks included
    assert b.marks == [[k + delay - 1]] * 8 and task.mark_label == "delimiter"  # the delimiter's step


@settings(max_examples=20, deadline=None)
@given(seq_len=st.integers(1, 50), n_classes=st.integers(2, 20), seed=st.integers(0, 2**16))
def test_recall_asks_for_the_first_symbol_at_the_last_step(seq_len: int, n_classes: int, seed: int) -> None:
    task = RecallTask(seq_len=seq_len, n_classes=n_classes)
    b = task.sample(32, gen(seed))
    x = digits(b)
    assert torch.equal(b.targets[:, -1], x[:, 0])
    assert b.mask[:, -1].eq(1).all()
    assert b.mask[:, :-1].eq(0).all()
    assert int(x.max()) < n_classes


def test_tagging_labels_local_peaks() -> None:
    x = torch.tensor([[1, 3, 2, 2, 5], [9, 9, 0, 7, 1], [0, 0, 0, 0, 0]])
    assert TaggingTask.tags(x).tolist() == [[0, 1, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert TaggingTask.tags(torch.tensor([[4, 1], [0, 0]])).tolist() == [[1, 0], [0, 0]]


@settings(max_examples=20, deadline=None)
@given(seq_len=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_tagging_targets_match_a_plain_reference(seq_len: int, seed: int) -> None:
    b = TaggingTask(seq_len=seq_len).sample(4, gen(seed))
    for row, tags in zip(digits(b).tolist(), b.targets.tolist(), strict=True):
        padded = [-math.inf, *row, -math.inf]
        assert tags == [
            int(padded[t] > padded[t - 1] and padded[t] > padded[t + 1]) for t in range(1, seq_len + 1)
        ]


@pytest.mark.parametrize("seq_len", [2, 3, 4])
def test_tagging_tag_rate_is_exact(seq_len: int) -> None:
    # every one of the 10**T sequences once: the exact share of tagged steps
    grids = torch.meshgrid(*[torch.arange(10)] * seq_len, indexing="ij")
    x = torch.stack([g.reshape(-1) for g in grids], dim=1)  # (10**T, T)
    exact = TaggingTask.tags(x).double().mean().item()
    assert TaggingTask(seq_len=seq_len).tag_rate == pytest.approx(exact, rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(seq_len=st.integers(1, 60), n_classes=st.integers(2, 20), seed=st.integers(0, 2**16))
def test_counting_sees_only_the_start_and_counts_on(seq_len: int, n_classes: int, seed: int) -> None:
    task = CountingTask(seq_len=seq_len, n_classes=n_classes)
    b = task.sample(8, gen(seed))
    start = digits(b)[:, 0]  # (B,)
    assert b.inputs[:, 0].sum(dim=-1).eq(1).all()
    assert b.inputs[:, 1:].eq(0).all()
    assert torch.equal(b.targets, (start[:, None] + torch.arange(seq_len)) % n_classes)
    assert b.mask.eq(1).all()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_spans_and_the_input_value_describe_what_the_batch_holds(name: str) -> None:
    task = make_task(name, **SMALL[name])
    b = task.sample(8, gen(3))
    for span in task.spans():
        assert 0 <= span.start < span.stop <= task.seq_len and span.label
    value = task.input_value
    if value is not None:  # the channel the pages draw as a bar: on its scale, and what the tokens say
        channel = b.inputs[..., value.channel]
        assert ((channel >= value.low) & (channel <= value.high)).all()
        assert b.tokens is not None and b.tokens[0][1] == f"{float(channel[0, 1]):.2f}"
    spans = {span.label: range(span.start, span.stop) for span in task.spans()}
    x = digits(b)
    if name == "copy":  # the symbols to copy are the only non-blank inputs before the delimiter ...
        shown = range(int(x.shape[1]))
        symbols = [t for t in shown if bool(((x[:, t] >= 1) & (x[:, t] <= 8)).all())]
        assert list(spans["symbols to copy"]) == symbols
        # ... and the recall window is where the targets are the symbols
        assert list(spans["recall window"]) == [t for t in shown if bool((b.targets[:, t] != 0).any())]
    elif name == "recall":
        assert list(spans["the symbol to recall"]) == [0] and torch.equal(b.targets[:, -1], x[:, 0])
    elif name == "counting":
        assert list(spans["the start symbol"]) == [0] and b.inputs[:, 1:].eq(0).all()
    else:
        assert spans == {}
    assert (value is not None) == (name == "adding")


# -----------------------------------------------------------------------------
# losses, metrics and baselines


def test_step_losses_are_masked_cross_entropy_and_loss_is_their_masked_mean() -> None:
    task = make_task("recall", seq_len=6, n_classes=4)
    b = task.sample(5, gen(0))
    y = torch.randn(5, 6, 4, generator=gen(1))
    steps = task.step_losses(y, b)
    full = F.cross_entropy(y.reshape(-1, 4), b.targets.reshape(-1), reduction="none").view(5, 6)
    assert steps[:, :-1].eq(0).all()  # masked steps carry nothing, however wrong the outputs there
    assert torch.allclose(steps[:, -1], full[:, -1])
    assert torch.allclose(task.loss(y, b), full[:, -1].mean())


def test_mse_loss_and_metric() -> None:
    task = make_task("adding", seq_len=10)
    b = task.sample(6, gen(0))
    y = torch.full((6, 10, 1), 0.5)
    expected = ((0.5 - b.targets[:, -1, 0]) ** 2).mean()
    assert torch.allclose(task.loss(y, b), expected)
    assert task.metric(y, b) == pytest.approx(float(expected))


def test_accuracy_counts_only_masked_steps() -> None:
    task = make_task("recall", seq_len=5, n_classes=3)
    b = task.sample(10, gen(0))
    right = F.one_hot(b.targets, 3).float() * 10  # (B, T, C): right at every step
    assert task.metric(right, b) == 1.0
    wrong = right.clone()
    wrong[:, :-1] = F.one_hot((b.targets[:, :-1] + 1) % 3, 3).float() * 10  # wrong where no loss is taken
    assert task.metric(wrong, b) == 1.0
    half = right.clone()
    half[:5, -1] = F.one_hot((b.targets[:5, -1] + 1) % 3, 3).float() * 10
    assert task.metric(half, b) == 0.5


def test_bpc_is_loss_in_bits() -> None:
    task = make_task("char_lm", corpus="shakespeare", seq_len=20)
    b = task.sample(4, gen(0))
    y = torch.randn(4, 20, task.output_size, generator=gen(1))
    assert task.metric(y, b) == pytest.approx(float(task.loss(y, b)) / math.log(2))


def test_outputs_of_the_wrong_shape_are_refused() -> None:
    task = make_task("copy", seq_len=5, n_symbols=2)
    b = task.sample(2, gen(0))
    with pytest.raises(ValueError, match=r"\(2, 9, 10\)"):
        task.loss(torch.zeros(2, 9, 9), b)


def marginal_logits(b: Batch, n: int) -> torch.Tensor:
    """Logits (n,) of the targets' own frequencies over the masked steps: the best constant guess."""
    counts = torch.bincount(b.targets[b.mask.bool()], minlength=n).double()
    return (counts / counts.sum()).clamp_min(1e-12).log().float()


def baseline_outputs(task: Task, b: Batch) -> torch.Tensor:
    """What each task's trivial predictor outputs, written from the task's description alone."""
    B, T = b.mask.shape
    if isinstance(task, AddingTask):
        return torch.ones(B, T, 1)  # the mean of the sum
    if isinstance(task, CopyTask):  # knows the layout: sure of blank, then uniform over the 8 symbols
        y = torch.full((B, T, 10), -1e9)
        y[:, : task.delay + task.n_symbols, 0] = 0.0
        y[:, task.delay + task.n_symbols :, 1:9] = 0.0
        return y
    return marginal_logits(b, task.output_size).expand(B, T, -1)


BASELINE_CASES = [
    ("char_lm", {"corpus": "hello"}),
    ("char_lm", {"corpus": "shakespeare", "seq_len": 200}),
    ("char_lm", {"corpus": "custom", "text": "abracadabra, alakazam! " * 20, "seq_len": 30}),
    ("adding", {"seq_len": 20}),
    ("copy", {"seq_len": 30, "n_symbols": 5}),
    ("recall", {"seq_len": 5, "n_classes": 8}),
    ("tagging", {"seq_len": 2}),
    ("tagging", {"seq_len": 40}),
    ("counting", {"seq_len": 10, "n_classes": 10}),
]


@pytest.mark.parametrize(("name", "params"), BASELINE_CASES)
def test_declared_baseline_matches_the_measured_one(name: str, params: dict[str, object]) -> None:
    task = make_task(name, **params)
    batch_size = max(64, 60_000 // task.seq_len)
    b = task.sample(batch_size, gen(0))
    measured = float(task.loss(baseline_outputs(task, b), b))
    assert measured == pytest.approx(task.baseline_loss, rel=0.03)


def test_known_baseline_values() -> None:
    assert make_task("char_lm").baseline_loss == pytest.approx(1.5 * math.log(2))  # e, l, l, o
    assert make_task("adding").baseline_loss == pytest.approx(1 / 6)
    assert make_task("copy", seq_len=100, n_symbols=10).baseline_loss == pytest.approx(10 * math.log(8) / 120)
    assert make_task("recall", n_classes=8).baseline_loss == pytest.approx(math.log(8))
    assert make_task("counting", n_classes=10).baseline_loss == pytest.approx(math.log(10))
    p = (2 * 0.45 + 8 * 0.285) / 10
    assert make_task("tagging", seq_len=10).baseline_loss == pytest.approx(
        -p * math.log(p) - (1 - p) * math.log(1 - p)
    )


# -----------------------------------------------------------------------------
# make_task validation


def test_defaults_build_every_task() -> None:
    for name in TASKS:
        task = make_task(name)
        assert isinstance(task, TASKS[name])
        assert task.sample(2, gen(0)).inputs.shape[1] == task.seq_len


def test_bounds_are_inclusive() -> None:
    assert make_task("copy", seq_len=2000, n_symbols=50).seq_len == 2100
    assert make_task("copy", seq_len=1, n_symbols=1).seq_len == 3
    assert make_task("adding", seq_len=2).sample(3, gen(0)).inputs[..., 1].eq(1).all()


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, r"unknown task 'nope'.*char_lm"),
        ("copy", {"delay": 5}, r"no parameter 'delay'.*seq_len, n_symbols"),
        ("adding", {"seq_len": 1}, r"adding\.seq_len must be at least 2, got 1"),
        ("adding", {"seq_len": 2001}, r"adding\.seq_len must be at most 2000, got 2001"),
        ("copy", {"n_symbols": 51}, r"copy\.n_symbols must be at most 50"),
        ("copy", {"seq_len": 0}, r"copy\.seq_len must be at least 1"),
        ("recall", {"n_classes": 1}, r"recall\.n_classes must be at least 2"),
        ("counting", {"seq_len": "10"}, r"counting\.seq_len must be an integer, got str"),
        ("counting", {"seq_len": 10.0}, r"counting\.seq_len must be an integer, got float"),
        ("tagging", {"seq_len": True}, r"tagging\.seq_len must be an integer, got bool"),
        ("char_lm", {"corpus": "poems"}, r"char_lm\.corpus must be one of 'hello', 'shakespeare', 'custom'"),
        ("char_lm", {"corpus": "custom", "text": 42}, r"char_lm\.text must be a string"),
        ("char_lm", {"corpus": "custom", "text": "aaaaaaaa", "seq_len": 3}, r"at least 2 distinct"),
        ("char_lm", {"corpus": "custom", "text": "abcabc", "seq_len": 10}, r"at least seq_len \+ 1 = 11"),
    ],
)
def test_make_task_rejects_bad_parameters(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_task(name, **params)


def test_custom_text_over_a_million_characters_is_rejected() -> None:
    ok = make_task("char_lm", corpus="custom", text="ab" * 500_000)
    assert isinstance(ok, CharLMTask)
    assert len(ok.text) == 1_000_000
    with pytest.raises(ValueError, match=r"char_lm\.text must be at most 1000000 characters long"):
        make_task("char_lm", corpus="custom", text="ab" * 500_000 + "c")


def test_constructors_check_their_parameters_too() -> None:
    with pytest.raises(ValueError, match=r"copy\.n_symbols must be at least 1"):
        CopyTask(n_symbols=0)


def test_text_without_a_corpus_trains_on_the_text() -> None:
    task = make_task("char_lm", text="something else", seq_len=5)
    assert isinstance(task, CharLMTask)
    assert task.corpus == "custom" and task.text == "something else"
    plain = make_task("char_lm")
    assert isinstance(plain, CharLMTask) and plain.corpus == "hello"


@pytest.mark.parametrize("corpus", ["hello", "shakespeare"])
def test_text_with_a_bundled_corpus_is_refused_not_ignored(corpus: str) -> None:
    with pytest.raises(ValueError, match=r"char_lm\.text is read only when char_lm\.corpus is 'custom'"):
        make_task("char_lm", corpus=corpus, text="something else")
    assert isinstance(make_task("char_lm", corpus=corpus, text=""), CharLMTask)  # empty text says nothing


# -----------------------------------------------------------------------------
# the bundled corpus


def test_shakespeare_corpus_is_bundled_with_its_source() -> None:
    size = (DATA_DIR / "shakespeare.txt").stat().st_size
    assert 100_000 <= size < 1_200_000
    text = load_corpus("shakespeare")
    assert text.startswith("HAMLET, PRINCE OF DENMARK")
    assert "To be, or not to be" in text
    source = (DATA_DIR / "SOURCE.md").read_text(encoding="utf-8")
    assert "public domain" in source.lower()
    task = make_task("char_lm", corpus="shakespeare")
    assert isinstance(task, CharLMTask)
    assert 40 <= len(task.vocab) <= 100
    assert task.vocab[:3] == ["H", "A", "M"]

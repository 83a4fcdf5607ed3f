"""Every /learn lesson's claim, checked against its demo: the demo's exact runs are trained, stored
and read back as the findings route reads them, and the sentence the page prints must say what the
numbers say and hold the lesson's claim.

The runs go through worker.run in this process (the worker's own encoding of steps and frames,
without its process and pipe) into a real Storage, the way the manager's reader stores them. The
lessons are validated like the presets (catalog).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from app.services import worker
from app.services.claims import CLAIMS, RunNumbers, carried, findings, num, reach_ratio, run_numbers
from app.services.lessons import LESSONS, Lesson, lessons
from app.services.records import RunRecord
from app.services.storage import Storage

REPO_ROOT = Path(__file__).resolve().parents[2]
LESSON = {lesson.name: lesson for lesson in lessons()}


class _Pipe:
    """What worker.run needs of its Connection: send(), here kept in a list."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []

    def send(self, message: tuple[Any, ...]) -> None:
        self.messages.append(message)


def train(storage: Storage, lesson: Lesson, index: int) -> RunRecord:
    """Train panel `index` of `lesson` through worker.run and store what it sends; the record."""
    run = lesson.runs[index]
    config = run.config.model_copy(update={"name": run.title})
    record = RunRecord.new(f"{lesson.name}{index}", config, group=lesson.name)
    storage.create_run(record)
    pipe = _Pipe()
    code = worker.run(record.id, config.model_dump_json(), cast(Any, pipe), threading.Event())
    assert code == 0, pipe.messages[-1]
    rows: list[dict[str, Any]] = []
    for kind, *rest in pipe.messages:
        if kind == "step":
            rows.append(rest[0])
        elif kind == "probe":
            storage.add_steps(record.id, rows)
            rows = []
            step, full, display, *_ = rest  # then the checkpoint and the snapshot
            storage.add_probe(record.id, step, full, display)
        elif kind == "end":
            storage.add_steps(record.id, rows)
            status, step, reason = rest
            error = f"{reason} at step {step}" if status == "diverged" else None
            storage.update_run(record.id, status=status, error=error)
    updated = storage.get_run(record.id)
    assert updated is not None
    return updated


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    with Storage(tmp_path_factory.mktemp("lessons")) as store:
        yield store


@pytest.fixture(scope="module")
def demo(storage: Storage) -> Any:
    """demo(name): the lesson's runs trained and read back (once per lesson in this module)."""
    done: dict[str, list[RunNumbers]] = {}

    def numbers(name: str) -> list[RunNumbers]:
        if name not in done:
            lesson = LESSON[name]
            records = [train(storage, lesson, i) for i in range(len(lesson.runs))]
            done[name] = [
                run_numbers(storage, r, run.title) for r, run in zip(records, lesson.runs, strict=True)
            ]
        return done[name]

    return numbers


def holds(name: str, runs: list[RunNumbers]) -> str:
    finding = findings(LESSON[name], runs)
    assert finding.holds, f"{finding.failed}: {finding.sentence}"
    return finding.sentence


# -- the lessons as data ----------------------------------------------------------------------


def test_lessons_are_valid_runs_for_the_learn_pages_sections() -> None:
    page = (REPO_ROOT / "templates" / "learn.html").read_text(encoding="utf-8")
    assert set(LESSON) == set(re.findall(r'data-demo="([a-z]+)"', page)) == set(CLAIMS)
    assert [r.config.task.name for r in LESSON["shapes"].runs] == [
        "recall",
        "counting",
        "recall",
        "copy",
        "tagging",
    ]
    assert [r.config.cell for r in LESSON["vanishing"].runs] == ["rnn_tanh", "lstm", "gru"]
    assert len({r.config.seed for r in LESSON["vanishing"].runs}) == 1  # same data, same probe input
    assert [r.config.clip.mode for r in LESSON["exploding"].runs] == ["norm", "off"]
    assert LESSON["gates"].runs[0].config.init.forget_bias == 1.0
    assert LESSON["remedies"].runs[2].config.tbptt == 10
    modern = LESSON["modern"].runs
    assert [r.config.cell for r in modern] == ["rnn_tanh", "gru", "mingru", "minlstm", "slstm"]
    assert len({r.config.model_dump_json(exclude={"cell"}) for r in modern}) == 1  # only the cell differs
    assert modern[0].config.task.params == {"seq_len": 100}
    assert LESSON["mingates"].runs[0].config.cell == "mingru"
    for lesson in LESSON.values():
        titles = [run.title for run in lesson.runs]
        assert len(set(titles)) == len(titles)  # each run's name is its panel's title: one each
        for run in lesson.runs:  # small enough to train in seconds on a CPU
            assert run.config.steps <= 800 and run.config.hidden_size <= 32


def test_a_lesson_needs_runs_and_known_views() -> None:
    config = dict(LESSONS[0]["runs"][0]["config"])
    with pytest.raises(ValueError, match="runs"):
        Lesson.model_validate({"name": "x", "views": ["loss"], "runs": []})
    with pytest.raises(ValueError, match="views"):
        Lesson.model_validate({"name": "x", "views": ["nope"], "runs": [{"title": "t", "config": config}]})


def test_num_writes_powers_of_ten_out() -> None:
    assert [num(x) for x in (0.1667, 6.7e-11, 2.4e35, 0.0, 48.04)] == [
        "0.167",
        "6.7×10⁻¹¹",
        "2.4×10³⁵",
        "0",
        "48",
    ]


# -- each chapter's claim against its demo -----------------------------------------------------


def test_shapes(demo: Any) -> None:
    runs = demo("shapes")
    sentence = holds("shapes", runs)
    assert "input at t = 0 only" in sentence and "a loss at t = 9 only (T = 10)" in sentence
    assert "32 units, 2 directions × 16" in sentence and "5 of 5 below it" in sentence


def test_hello(demo: Any) -> None:
    (run,) = demo("hello")
    sentence = holds("hello", [run])
    assert run.last.header["tokens"] == ["h", "e", "l", "l"]
    assert f"the loss is {num(run.loss)} nats" in sentence and run.loss < 0.05


def test_bptt(demo: Any) -> None:
    (run,) = demo("bptt")
    sentence = holds("bptt", [run])
    itemized = run.last.arrays["itemized"][-1]
    diagonal = sum(int(np.argmax(itemized[s, : s + 1]) == s) for s in range(itemized.shape[0]))
    assert f"{diagonal} of 30 loss steps are brightest on the diagonal" in sentence


def test_vanishing(demo: Any) -> None:
    runs = demo("vanishing")
    sentence = holds("vanishing", runs)
    rnn, lstm, gru = runs
    assert reach_ratio(rnn.last) < 1e-6 < 1e-3 < min(reach_ratio(lstm.last), reach_ratio(gru.last))
    assert max(lstm.loss, gru.loss) < 0.5 * rnn.baseline <= rnn.loss
    for r in runs:
        assert (
            f"{num(reach_ratio(r.last))} ({r.title})" in sentence and f"{num(r.loss)} ({r.title})" in sentence
        )


def test_vanishing_claim_fails_on_numbers_that_contradict_it(demo: Any) -> None:
    rnn, lstm, _ = demo("vanishing")
    finding = findings(LESSON["vanishing"], [rnn, lstm, rnn])  # a GRU panel that did not learn
    assert not finding.holds and finding.failed == [
        "the gradient of the tanh RNN does not reach t = 0",
        "the tanh RNN did not learn",
    ]


def test_exploding(demo: Any) -> None:
    clipped, free = demo("exploding")
    sentence = holds("exploding", [clipped, free])
    assert free.status == "diverged" and f"the run diverged at step {free.steps + 1}" in sentence
    assert f"{clipped.clips} of {clipped.steps} updates clipped" in sentence and clipped.clips > 0


def test_remedies(demo: Any) -> None:
    runs = demo("remedies")
    sentence = holds("remedies", runs)
    assert "nonzero at the last 10 steps and exactly 0 before them" in sentence
    assert f"{num(reach_ratio(runs[1].last))} (IRNN: ReLU, W_hh = I)" in sentence


def test_gates(demo: Any) -> None:
    (run,) = demo("gates")
    sentence = holds("gates", [run])
    marks = run.last.header["marks"]
    assert f"t = {marks[0]}, {marks[1]} and" in sentence and f"Final loss {num(run.loss)}" in sentence


def test_modern(demo: Any) -> None:
    runs = demo("modern")
    sentence = holds("modern", runs)
    rnn, _, mingru, minlstm, slstm = runs
    assert max(reach_ratio(rnn.last), *(reach_ratio(r.first) for r in runs[:4])) < 1e-6
    assert min(reach_ratio(r.last) for r in runs[1:]) > 1e-3 < reach_ratio(slstm.first)
    for r in (mingru, minlstm):  # ∂ℓ_T/∂h_0 = Π_t diag(retention) ∂ℓ_T/∂h_(T-1): within the units' products
        low, high = carried(r, r.last)
        assert low <= reach_ratio(r.last) * (1 + 1e-3) and reach_ratio(r.last) <= high * (1 + 1e-3)
        assert f"{num(low)} to {num(high)} now" in sentence
    for r in runs:
        assert (
            f"{num(reach_ratio(r.first))} ({r.title})" in sentence
            and f"{num(r.loss)} ({r.title})" in sentence
        )


def test_modern_claim_fails_on_numbers_that_contradict_it(demo: Any) -> None:
    rnn, gru, mingru, minlstm, _ = demo("modern")
    finding = findings(LESSON["modern"], [gru, gru, mingru, minlstm, rnn])  # swapped: a GRU, a tanh "sLSTM"
    assert not finding.holds and finding.failed == [
        "the gradient of the GRU did not vanish",
        "the GRU learned",
        "the gradient of the tanh RNN did not reach t = 0 at step 0",
        "the gradient of the tanh RNN does not reach t = 0",
        "the tanh RNN did not learn",
    ]


def test_mingates(demo: Any) -> None:
    (run,) = demo("mingates")
    sentence = holds("mingates", [run])
    marks = run.last.header["marks"]
    assert f"at the marked steps t = {marks[0]}, {marks[1]} and" in sentence
    assert f"Final loss {num(run.loss)}" in sentence and run.loss < 0.5 * run.baseline
    z = run.last.arrays["gates.z"][-1]
    unit = int(sentence.split("'s hidden state")[0].removeprefix("Unit "))
    assert f"its update gate z is {num(float(z[marks, unit].mean()))}" in sentence


def test_mingates_claim_fails_on_a_run_that_did_not_learn(demo: Any) -> None:
    (run,) = demo("mingates")
    unlearned = dataclasses.replace(run, last=run.first)  # its step-0 frame as its last
    assert not findings(LESSON["mingates"], [unlearned]).holds

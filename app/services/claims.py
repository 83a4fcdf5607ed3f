"""What each /learn demo showed: a lesson's claim, checked against its runs' stored numbers.

What this is: `RunNumbers` (one finished run as storage holds it: its panel title, config,
status, step metrics and its first and last probe frames at full resolution, and its task's
baseline), `CLAIMS` (one function per lesson: the runs' numbers, in the lesson's panel order, ->
a `Finding`: the sentence the page prints under the demo, made of the measured values, and the
parts of the lesson's claim that did not hold), and `findings(lesson, runs)`, which the findings
route and the claim tests call. The thresholds below are what the lessons' words mean in numbers
("learned", "vanished", "near 1").

What this is not: the lessons' configs (lessons.py), their text (templates/learn.html), or the
check that the runs are the lesson's (app/web/lessons.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.core.frames import Frame
from app.core.tasks import make_task
from app.services.lessons import Lesson
from app.services.records import RunRecord
from app.services.schemas import RunCreate, RunStatus
from app.services.storage import Storage

FINAL_SHARE = 0.1  # a run's final loss: the mean over its last tenth of steps
LEARNED = 0.5  # learned: final loss below half the task's baseline
AT_BASELINE = 0.9  # did not learn: final loss at least 0.9 x the baseline
NEAR_ZERO = 0.05  # "near zero" loss, in nats
VANISHED = 1e-6  # ||dl_T/dh_0|| / ||dl_T/dh_T|| below this: the gradient vanished
ALIVE = 1e-3  # ... above this: it reached t = 0
FAR_LONGER = 1e4  # "far longer": a ratio at least this many times another's
FADES = 0.01  # a row of the itemized matrix has faded where it is below 1 % of its diagonal
EXPLODES = (10.0, 100.0)  # "exploding": a first gradient norm in the tens, hundreds within EARLY steps
EARLY = 20
SETTLES = 1.5  # "settles": final loss within 1.5 x the baseline
HOLDS_SUM = 0.9  # a cell-state unit holds the running sum: |correlation| at least this
OPEN_RATIO = 1.3  # a gate opens at the marked steps: its mean there >= 1.3 x elsewhere
NEAR_ONE = 0.9  # a forget gate near 1
MARKED_LARGER = 2.0  # "large only in the marked columns": at least twice its mean elsewhere


@dataclass(frozen=True)
class RunNumbers:
    """One finished run's stored numbers, as the claims read them."""

    title: str
    config: RunCreate
    status: RunStatus
    metrics: list[dict[str, Any]]  # Storage.metrics rows, in step order
    first: Frame  # the first probe frame, full resolution
    last: Frame  # the last one
    baseline: float  # the task's baseline loss at the run's parameters

    @property
    def loss(self) -> float:
        """The mean loss over the last FINAL_SHARE of steps (NaN without steps)."""
        losses = [float(m["loss"]) for m in self.metrics]
        tail = losses[-max(1, round(len(losses) * FINAL_SHARE)) :]
        return float(np.mean(tail)) if losses else math.nan

    @property
    def steps(self) -> int:
        return int(self.metrics[-1]["step"]) if self.metrics else 0

    @property
    def clips(self) -> int:
        return sum(bool(m["clipped"]) for m in self.metrics)

    def peak(self, steps: int | None = None) -> float:
        """The largest gradient norm (before clipping) of the first `steps` steps, or of all; NaN without."""
        norms = [float(m["grad_norm"]) for m in self.metrics[:steps]]
        return max(norms) if norms else math.nan

    def learned(self) -> bool:
        return self.loss < LEARNED * self.baseline


@dataclass(frozen=True)
class Finding:
    """What a demo showed: the sentence under it, and what of the lesson's claim did not hold."""

    sentence: str
    failed: list[str]

    @property
    def holds(self) -> bool:
        return not self.failed


def num(x: float) -> str:
    """A measured number for a sentence: 3 significant digits, powers of ten written out."""
    if not math.isfinite(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    digits = str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{mantissa}×10{digits}"


def reach_ratio(frame: Frame) -> float:
    """||dl_T/dh_0|| / ||dl_T/dh_T|| of the top layer: how much of the last loss's gradient reaches t = 0."""
    g = frame.arrays["grad_h_last"][-1]
    top = float(g[int(frame.header["last_step"])])
    return float(g[0]) / top if top > 0 else math.nan


def each(runs: Sequence[RunNumbers], value: Callable[[RunNumbers], float]) -> str:
    """ "0.184 (tanh RNN), 0.0024 (GRU)": a value of every run, named by its title."""
    return ", ".join(f"{num(value(r))} ({r.title})" for r in runs)


def _failures(*checks: tuple[bool, str]) -> list[str]:
    return [what for ok, what in checks if not ok]


# -- the claims, one per lesson ---------------------------------------------------------------


def _shapes(runs: Sequence[RunNumbers]) -> Finding:
    one, out_many, in_many, many_many, bi = runs

    def loss_at(r: RunNumbers) -> list[int]:
        return [int(t) for t in np.flatnonzero(r.last.arrays["mask"])]

    def input_at(r: RunNumbers) -> list[int]:
        return [int(t) for t in np.flatnonzero(np.abs(r.last.arrays["inputs"]).sum(axis=1))]

    T_one, T_in = len(one.last.arrays["mask"]), len(in_many.last.arrays["mask"])
    units, hidden = bi.last.arrays["h"].shape[-1], bi.config.hidden_size
    below = [r for r in runs if r.loss < r.baseline]
    facts = [
        f"{one.title} — reads {T_one} step",
        f"{out_many.title} — input at t = {', '.join(map(str, input_at(out_many)))} only, "
        f"a loss at {len(loss_at(out_many))} steps",
        f"{in_many.title} — a loss at t = {', '.join(map(str, loss_at(in_many)))} only (T = {T_in})",
        f"{many_many.title} — a loss at {len(loss_at(many_many))} of {len(many_many.last.arrays['mask'])} "
        "steps",
        f"{bi.title} — {units} units, {units // hidden} directions × {hidden}",
    ]
    sentence = (
        "; ".join(facts)
        + ". Final loss against the task's baseline: "
        + ", ".join(f"{num(r.loss)} vs {num(r.baseline)} ({r.title})" for r in runs)
        + f": {len(below)} of {len(runs)} below it."
    )
    failed = _failures(
        (T_one == 1, "the one-to-one run does not read a single step"),
        (input_at(out_many) == [0], "the one-to-many run has input beyond t = 0"),
        (loss_at(in_many) == [T_in - 1], "the many-to-one run has a loss before its last step"),
        (len(loss_at(many_many)) > 1, "the many-to-many run has a loss at one step only"),
        (units == 2 * hidden, "the bidirectional run's units are not two halves"),
        (len(below) == len(runs), "not every run ends below its task's baseline"),
    )
    return Finding(sentence, failed)


def _hello(runs: Sequence[RunNumbers]) -> Finding:
    (run,) = runs

    def apart(frame: Frame) -> float:
        """The distance between h at the first two 'l's, over their mean length (NaN without two)."""
        ls = [t for t, token in enumerate(frame.header["tokens"] or []) if token == "l"][:2]
        if len(ls) < 2:
            return math.nan
        h = frame.arrays["h"][-1].astype(np.float64)
        size = (np.linalg.norm(h[ls[0]]) + np.linalg.norm(h[ls[1]])) / 2
        return float(np.linalg.norm(h[ls[0]] - h[ls[1]]) / size) if size > 0 else math.nan

    start, end = apart(run.first), apart(run.last)
    sentence = (
        f"After {run.steps} steps the loss is {num(run.loss)} nats (the unigram baseline: "
        f"{num(run.baseline)}). The hidden states at the two 'l's differ by {num(end)} of their length, "
        f"against {num(start)} at step 0."
    )
    failed = _failures(
        (run.loss < NEAR_ZERO, f"the loss did not fall below {NEAR_ZERO}"),
        (end > 0.5 and end > start, "the two 'l' columns did not end up different"),
    )
    return Finding(sentence, failed)


def _bptt(runs: Sequence[RunNumbers]) -> Finding:
    (run,) = runs
    itemized = run.last.arrays["itemized"][-1].astype(np.float64)  # [s][t]
    rows = [s for s in np.flatnonzero(run.last.arrays["mask"]) if itemized[s, s] > 0]
    on_diagonal = sum(int(np.argmax(itemized[s, : s + 1]) == s) for s in rows)
    reaches = []  # per row: how many steps back it stays at FADES of its diagonal or more
    for s in rows:
        faded = np.flatnonzero(itemized[s, : s + 1][::-1] < FADES * itemized[s, s])
        if faded.size:
            reaches.append(int(faded[0]))
    T = itemized.shape[0]
    reach = float(np.median(reaches)) if reaches else math.inf
    sentence = (
        f"At step {run.last.step}, {on_diagonal} of {len(rows)} loss steps are brightest on the diagonal, "
        f"and a loss's gradient falls below 1 % of its own step's within a median {num(reach)} steps back "
        f"(T = {T}). Loss {num(run.loss)} against the unigram baseline {num(run.baseline)}."
    )
    failed = _failures(
        (on_diagonal >= 0.8 * len(rows), "most rows are not brightest on the diagonal"),
        (reach < T / 2, "the rows do not fade within half the sequence"),
    )
    return Finding(sentence, failed)


def _vanishing(runs: Sequence[RunNumbers]) -> Finding:
    rnn, *gated = runs
    sentence = (
        f"After {rnn.steps} steps, ‖∂ℓ_T/∂h_0‖ / ‖∂ℓ_T/∂h_T‖ is {each(runs, lambda r: reach_ratio(r.last))}; "
        f"at step 0 it was {each(runs, lambda r: reach_ratio(r.first))}. Final loss: "
        f"{each(runs, lambda r: r.loss)}, against the baseline {num(rnn.baseline)}."
    )
    failed = _failures(
        (
            all(reach_ratio(r.first) < ALIVE for r in runs),
            "a cell's gradient reached t = 0 already at step 0",
        ),
        (reach_ratio(rnn.last) < VANISHED, f"the gradient of the {rnn.title} did not vanish"),
        (rnn.loss >= AT_BASELINE * rnn.baseline, f"the {rnn.title} learned"),
        *(
            (reach_ratio(r.last) > ALIVE, f"the gradient of the {r.title} does not reach t = 0")
            for r in gated
        ),
        *((r.learned(), f"the {r.title} did not learn") for r in gated),
    )
    return Finding(sentence, failed)


def _exploding(runs: Sequence[RunNumbers]) -> Finding:
    clipped, free = runs
    early = [r.peak(EARLY) for r in runs]
    end = f"diverged at step {free.steps + 1}" if free.status == "diverged" else f"ended {free.status}"
    sentence = (
        f"The first step's gradient norm is {num(clipped.peak(1))}; within {EARLY} steps it reaches "
        f"{each(runs, lambda r: r.peak(EARLY))}. Clipped at {num(clipped.config.clip.threshold)}: "
        f"{clipped.clips} of {clipped.steps} updates clipped, the run {clipped.status}, final loss "
        f"{num(clipped.loss)} (baseline {num(clipped.baseline)}). Not clipped: the gradient norm grew to "
        f"{num(free.peak())} and the run {end}."
    )
    failed = _failures(
        (clipped.peak(1) >= EXPLODES[0], f"the first gradient norm is below {EXPLODES[0]:g}"),
        (max(early) >= EXPLODES[1], f"the gradient norm stayed below {EXPLODES[1]:g} for {EARLY} steps"),
        (clipped.clips > 0, "clipping never fired"),
        (
            clipped.status == "completed" and clipped.loss < SETTLES * clipped.baseline,
            "the clipped loss did not settle",
        ),
        (free.status == "diverged", "the unclipped run did not diverge"),
    )
    return Finding(sentence, failed)


def _remedies(runs: Sequence[RunNumbers]) -> Finding:
    rnn, irnn, truncated = runs
    k = truncated.config.tbptt or 0
    g = truncated.last.arrays["grad_h_last"][-1]
    T = int(truncated.last.header["last_step"])
    reached = int(np.count_nonzero(g[: T + 1]))
    zero_beyond = bool(np.all(g[: T + 1 - reached] == 0))
    sentence = (
        "At the last probe, ‖∂ℓ_T/∂h_0‖ / ‖∂ℓ_T/∂h_T‖ is "
        f"{each((rnn, irnn), lambda r: reach_ratio(r.last))}; "
        f"with truncated BPTT (k = {k}) the gradient is nonzero at the last {reached} steps and exactly 0 "
        f"before them. Final loss: {each(runs, lambda r: r.loss)}, against the baseline {num(rnn.baseline)}."
    )
    failed = _failures(
        (reached <= k and zero_beyond, f"truncated BPTT's gradient reaches further back than k = {k}"),
        (reach_ratio(rnn.last) < VANISHED, f"the gradient of the {rnn.title} did not vanish"),
        (
            reach_ratio(irnn.last) >= FAR_LONGER * reach_ratio(rnn.last) and reach_ratio(irnn.last) > ALIVE,
            f"the gradient of the {irnn.title} does not reach far longer than that of the {rnn.title}",
        ),
        (all(r.loss >= r.baseline for r in runs), "a run got below the baseline"),
    )
    return Finding(sentence, failed)


def _summing_unit(
    run: RunNumbers, state: str
) -> tuple[list[int], int, NDArray[np.float64], NDArray[np.intp]]:
    """The adding run's unit whose `state` ("c" or "h", top layer, last frame) best follows the
    running sum of the marked values: the marked steps, the unit, every unit's |correlation| with
    that sum, and the steps that are not marked."""
    frame = run.last
    marks = [int(t) for t in frame.header["marks"]]
    channel = make_task(run.config.task.name, **run.config.task.params).input_value
    assert channel is not None  # the adding task: its value channel
    values = frame.arrays["inputs"][:, channel.channel].astype(np.float64)
    running = np.zeros_like(values)
    for t in marks:
        running[t:] += values[t]
    x = frame.arrays[state][-1].astype(np.float64)  # (T, units)
    corr = np.array(
        [abs(np.corrcoef(x[:, u], running)[0, 1]) if x[:, u].std() > 0 else 0 for u in range(x.shape[1])]
    )
    return marks, int(np.argmax(corr)), corr, np.delete(np.arange(x.shape[0]), marks)


def _gates(runs: Sequence[RunNumbers]) -> Finding:
    (run,) = runs
    frame = run.last
    marks, u, corr, elsewhere = _summing_unit(run, "c")
    i, f = frame.arrays["gates.i"][-1][:, u], frame.arrays["gates.f"][-1][:, u]
    i_marks, i_else = float(i[marks].mean()), float(i[elsewhere].mean())
    f_mean = float(f.mean())
    sentence = (
        f"Unit {u}'s cell state follows the running sum of the marked values (correlation {num(corr[u])}): "
        f"its forget gate averages {num(f_mean)}, its input gate is {num(i_marks)} at the marked steps "
        f"t = {', '.join(map(str, marks))} and {num(i_else)} elsewhere. Final loss {num(run.loss)} against "
        f"the baseline {num(run.baseline)}."
    )
    failed = _failures(
        (run.learned(), "the LSTM did not learn"),
        (corr[u] >= HOLDS_SUM, "no unit's cell state holds the running sum"),
        (f_mean >= NEAR_ONE, "that unit's forget gate is not near 1"),
        (i_marks >= OPEN_RATIO * i_else, "its input gate does not open at the marked steps"),
    )
    return Finding(sentence, failed)


def retention(run: RunNumbers, frame: Frame) -> NDArray[np.float64]:
    """A minGRU's 1 − z_t or a minLSTM's f′_t = f_t / (f_t + i_t), top layer: (T, units), the
    factor that multiplies the gradient along h at each step (dh_t/dh_{t-1} = diag of it)."""

    def gate(name: str) -> NDArray[np.float64]:
        return np.asarray(frame.arrays[f"gates.{name}"][-1], dtype=np.float64)

    if run.config.cell == "mingru":
        return 1 - gate("z")
    f, i = gate("f"), gate("i")
    return f / (f + i)


def carried(run: RunNumbers, frame: Frame) -> tuple[float, float]:
    """The smallest and largest over units of Π_t retention over steps 1..T-1: ∂ℓ_T/∂h_0 is
    ∂ℓ_T/∂h_(T-1) times these products, unit by unit, so reach_ratio lies between them."""
    T = int(frame.header["last_step"])
    products = np.prod(retention(run, frame)[1 : T + 1], axis=0)
    return float(products.min()), float(products.max())


def _within(x: float, bounds: tuple[float, float], rtol: float = 1e-3) -> bool:
    low, high = bounds
    return low * (1 - rtol) <= x <= high * (1 + rtol)


def _modern(runs: Sequence[RunNumbers]) -> Finding:
    rnn, gru, mingru, minlstm, slstm = runs
    gated, minimal = (gru, mingru, minlstm, slstm), (mingru, minlstm)
    bounds = {r.title: (carried(r, r.first), carried(r, r.last)) for r in minimal}

    def span(bound: tuple[float, float]) -> str:
        return f"{num(bound[0])} to {num(bound[1])}"

    products = "; ".join(
        f"{r.title} ({'1 − z_t' if r.config.cell == 'mingru' else 'f′_t'}): {span(bounds[r.title][0])} "
        f"at step 0, {span(bounds[r.title][1])} now"
        for r in minimal
    )
    sentence = (
        f"After {rnn.steps} steps, ‖∂ℓ_T/∂h_0‖ / ‖∂ℓ_T/∂h_T‖ is {each(runs, lambda r: reach_ratio(r.last))}; "
        f"at step 0 it was {each(runs, lambda r: reach_ratio(r.first))}. The product over the T − 1 steps "
        f"of the factor along h, across units: {products}; each ratio lies within its range. Final loss: "
        f"{each(runs, lambda r: r.loss)}, against the baseline {num(rnn.baseline)}."
    )
    failed = _failures(
        (reach_ratio(rnn.last) < VANISHED, f"the gradient of the {rnn.title} did not vanish"),
        (rnn.loss >= AT_BASELINE * rnn.baseline, f"the {rnn.title} learned"),
        *(
            (reach_ratio(r.first) < VANISHED, f"the gradient of the {r.title} had not vanished at step 0")
            for r in (gru, *minimal)
        ),
        (
            reach_ratio(slstm.first) > ALIVE,
            f"the gradient of the {slstm.title} did not reach t = 0 at step 0",
        ),
        *(
            (
                _within(reach_ratio(frame), bounds[r.title][k]),
                f"the {r.title}'s ratio at step {frame.step} is not within its products of the factor",
            )
            for r in minimal
            for k, frame in enumerate((r.first, r.last))
        ),
        *(
            (reach_ratio(r.last) > ALIVE, f"the gradient of the {r.title} does not reach t = 0")
            for r in gated
        ),
        *((r.learned(), f"the {r.title} did not learn") for r in gated),
    )
    return Finding(sentence, failed)


def _mingates(runs: Sequence[RunNumbers]) -> Finding:
    (run,) = runs
    frame = run.last
    marks, u, corr, elsewhere = _summing_unit(run, "h")
    z = frame.arrays["gates.z"][-1][:, u].astype(np.float64)
    z_marks, z_else = float(z[marks].mean()), float(z[elsewhere].mean())
    size = np.abs(frame.arrays["gates.h_tilde"][-1].astype(np.float64)).mean(axis=1)  # (T,) mean |h̃_t|
    h_marks, h_else = float(size[marks].mean()), float(size[elsewhere].mean())
    sentence = (
        f"Unit {u}'s hidden state follows the running sum of the marked values (correlation {num(corr[u])}): "
        f"its update gate z is {num(z_marks)} at the marked steps t = {', '.join(map(str, marks))} and "
        f"{num(z_else)} elsewhere, so it keeps 1 − z = {num(1 - z_else)} of its state a step between them. "
        f"The candidate's mean |h̃_t| over units is {num(h_marks)} at the marked steps and {num(h_else)} "
        f"elsewhere. Final loss {num(run.loss)} against the baseline {num(run.baseline)}."
    )
    failed = _failures(
        (run.learned(), "the minGRU did not learn"),
        (
            h_marks >= MARKED_LARGER * h_else,
            f"the candidate is not {MARKED_LARGER:g}x larger at the marked steps",
        ),
        (corr[u] >= HOLDS_SUM, "no unit's hidden state holds the running sum"),
        (
            z_marks >= MARKED_LARGER * z_else,
            f"that unit's update gate is not {MARKED_LARGER:g}x larger at the marked steps",
        ),
        (1 - z_else >= NEAR_ONE, "between the marks it does not keep its state (1 − z not near 1)"),
    )
    return Finding(sentence, failed)


Claim = Callable[[Sequence[RunNumbers]], Finding]
CLAIMS: dict[str, Claim] = {
    "shapes": _shapes,
    "hello": _hello,
    "bptt": _bptt,
    "vanishing": _vanishing,
    "exploding": _exploding,
    "remedies": _remedies,
    "gates": _gates,
    "modern": _modern,
    "mingates": _mingates,
}


def run_numbers(storage: Storage, record: RunRecord, title: str) -> RunNumbers:
    """A finished built-in run's numbers from storage; ValueError if it has no probe frame."""
    config = RunCreate.model_validate(record.config)
    steps = storage.probe_steps(record.id)
    if not steps:
        raise ValueError(f"run {record.id} has no probe frame")
    first, last = (storage.probe(record.id, s, "full") for s in (steps[0], steps[-1]))
    assert first is not None and last is not None  # listed just now; a run's frames go only with it
    return RunNumbers(
        title=title,
        config=config,
        status=record.status,
        metrics=storage.metrics(record.id),
        first=Frame.from_bytes(first),
        last=Frame.from_bytes(last),
        baseline=float(make_task(config.task.name, **config.task.params).baseline_loss),
    )


def findings(lesson: Lesson, runs: Sequence[RunNumbers]) -> Finding:
    """The lesson's claim over its runs (one per panel, in the lesson's order)."""
    if len(runs) != len(lesson.runs):
        raise ValueError(f"lesson {lesson.name!r} has {len(lesson.runs)} runs, not {len(runs)}")
    return CLAIMS[lesson.name](runs)

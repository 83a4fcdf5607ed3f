"""The diagnosis held to the truth: the presets that are sick by design get their finding, healthy
runs get none, and each check fires on numbers that show its symptom and on no others.

The runs are trained through worker.run in this process and read back from a real Storage with
claims.run_numbers, as the route reads them (test_lessons.train). The vanishing preset is trained
for 300 of its 3000 steps: its gradient vanishes by design, from the first step. The healthy runs:
the hello preset's LSTM, the adding preset with a GRU (800 steps) and the vanishing lesson's LSTM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from app.core.frames import Frame
from app.services.claims import RunNumbers, run_numbers
from app.services.diagnosis import UPDATE_TARGET, Symptom, diagnose, patched
from app.services.interventions import Intervention, InterventionCreate, configured
from app.services.lessons import LESSONS, PRESETS, Lesson
from app.services.schemas import RunCreate
from app.services.storage import Storage
from tests.services.test_lessons import train

PRESET = {p["name"]: p for p in PRESETS}
LESSON_RUNS = {run["title"]: run["config"] for lesson in LESSONS for run in lesson["runs"]}
CONFIGS: dict[str, dict[str, Any]] = {
    "vanishing": {**PRESET["vanishing"]["config"], "steps": 300},
    "exploding, not clipped": PRESET["exploding"]["variants"][0],
    "hello": PRESET["hello"]["config"],
    "adding with a GRU": {**PRESET["adding"]["config"], "cell": "gru", "steps": 800},
    "LSTM, forget bias 1": LESSON_RUNS["LSTM, forget bias 1"],  # the vanishing lesson's
    "tanh RNN, truncated BPTT k = 10": LESSON_RUNS[
        "tanh RNN, truncated BPTT k = 10"
    ],  # the remedies lesson's
    "minGRU, adding T = 100": {
        "cell": "mingru",
        "hidden_size": 16,
        "task": {"name": "adding", "seq_len": 100},
        "steps": 20,
        "probe_every": 10,
    },
    "sLSTM without its stabiliser": {
        "cell": "slstm",
        "slstm": {"stabilizer": False},
        "hidden_size": 16,
        "init": {"forget_bias": 3.0},
        "task": {"name": "adding", "seq_len": 60},
        "steps": 20,
        "probe_every": 10,
    },
}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    with Storage(tmp_path_factory.mktemp("diagnosis")) as store:
        yield store


@pytest.fixture(scope="module")
def trained(storage: Storage) -> Any:
    """trained(name): the CONFIGS run trained and read back (once per name in this module)."""
    done: dict[str, RunNumbers] = {}

    def numbers(name: str) -> RunNumbers:
        if name not in done:
            lesson = Lesson.model_validate(
                {
                    "name": f"diagnosis{len(done)}",
                    "views": ["loss"],
                    "runs": [{"title": name, "config": CONFIGS[name]}],
                }
            )
            done[name] = run_numbers(storage, train(storage, lesson, 0), name)
        return done[name]

    return numbers


def kinds(run: RunNumbers) -> dict[str, Symptom]:
    found = diagnose(run)
    assert len({s.kind for s in found}) == len(found)  # one of each kind at most
    for s in found:  # every remedy is a valid run, and changes it
        assert patched(run.config, s.remedy.patch) != run.config
        assert s.remedy.config == patched(run.config, s.remedy.patch)
        if s.remedy.changes is not None:  # a valid intervention that makes the same change
            InterventionCreate.model_validate(s.remedy.changes)
            if "reinit" in s.remedy.changes:
                assert s.remedy.changes["reinit"]["scheme"] == s.remedy.config.init.scheme
                assert run.config.num_layers == 1
            else:
                now = Intervention(id="x", step=0, changes=s.remedy.changes, applied_at=datetime.now(UTC))
                assert configured(run.config, [now]) == s.remedy.config
    return {s.kind: s for s in found}


# -- the presets ------------------------------------------------------------------------------


def test_the_vanishing_preset_vanishes_and_is_stuck(trained: Any) -> None:
    run = trained("vanishing")
    found = kinds(run)
    assert set(found) == {"vanishing", "stuck"}
    vanishing = found["vanishing"]
    assert vanishing.evidence.step == run.last.step == 300 and vanishing.evidence.layer == 0
    ratio = vanishing.evidence.values["reach_ratio"]
    assert ratio is not None and ratio < 1e-6
    assert patched(run.config, vanishing.remedy.patch).cell == "lstm"
    assert vanishing.remedy.changes is None  # another cell: a new run only
    assert found["stuck"].evidence.values["loss"] == run.loss >= 0.9 * run.baseline


def test_the_unclipped_exploding_preset_explodes_and_diverges(trained: Any) -> None:
    run = trained("exploding, not clipped")
    found = kinds(run)
    assert set(found) == {"diverged", "exploding"}
    norms = [m["grad_norm"] for m in run.metrics]
    exploding = found["exploding"].evidence
    assert exploding.values["grad_norm"] == max(norms) >= 100
    assert exploding.step == run.metrics[int(np.argmax(norms))]["step"]
    assert found["diverged"].evidence.step == run.steps + 1
    for kind in ("diverged", "exploding"):
        assert patched(run.config, found[kind].remedy.patch).clip.mode == "norm"
        assert found[kind].remedy.changes == {"clip": {"mode": "norm", "threshold": 1.0}}


@pytest.mark.parametrize("name", ["hello", "adding with a GRU", "LSTM, forget bias 1"])
def test_healthy_runs_get_no_finding(trained: Any, name: str) -> None:
    run = trained(name)
    assert run.status == "completed" and run.learned()
    assert diagnose(run) == []


def test_a_truncated_run_s_vanishing_says_where_the_truncation_cuts(trained: Any) -> None:
    run = trained("tanh RNN, truncated BPTT k = 10")
    vanishing = kinds(run)["vanishing"]
    assert vanishing.explanation.endswith(", and truncated BPTT cuts the gradient beyond 10 steps.")
    assert not kinds(trained("vanishing"))["vanishing"].explanation.endswith("steps.")  # full BPTT


# -- each check on numbers that show its symptom ---------------------------------------------


def _with(run: RunNumbers, **metrics: Any) -> RunNumbers:
    """The run with every step's metrics changed so."""
    return dataclasses.replace(run, metrics=[{**m, **metrics} for m in run.metrics])


def _last(run: RunNumbers, header: dict[str, Any] | None = None, **arrays: np.ndarray) -> RunNumbers:
    """The run with its last frame's header fields and arrays changed so."""
    frame = Frame({**run.last.header, **(header or {})}, {**run.last.arrays, **arrays})
    return dataclasses.replace(run, last=frame)


def test_learning_rate_far_from_the_rule_of_thumb(trained: Any) -> None:
    run = trained("hello")
    assert run.config.optimizer.lr == 0.01
    high = kinds(_with(run, update_ratio=0.05))
    assert set(high) == {"lr_high"} and high["lr_high"].evidence.values["update_ratio"] == 0.05
    assert high["lr_high"].remedy.patch == {
        "optimizer": {"lr": float(f"{run.config.optimizer.lr * UPDATE_TARGET / 0.05:.1g}")}
    }
    low = kinds(_with(run, update_ratio=1e-5))
    assert set(low) == {"lr_low"} and low["lr_low"].remedy.patch == {"optimizer": {"lr": 1.0}}  # 0.01 x 100
    assert low["lr_low"].remedy.changes == {"lr": 1.0}
    assert kinds(_with(run, update_ratio=1e-4)) == {}  # the band's edge is inside it


def test_clipping_on_most_steps(trained: Any) -> None:
    run = trained("hello")
    found = kinds(_with(run, clipped=True))
    assert set(found) == {"clipping"}
    threshold = found["clipping"].remedy.patch["clip"]["threshold"]
    assert threshold == float(f"{np.percentile([m['grad_norm'] for m in run.metrics], 90):.2g}")
    assert found["clipping"].remedy.changes == {"clip": {"mode": "norm", "threshold": threshold}}
    half = [{**m, "clipped": i % 2 == 0} for i, m in enumerate(run.metrics)]  # exactly half: not most
    assert kinds(dataclasses.replace(run, metrics=half)) == {}


def test_saturated_gates(trained: Any) -> None:
    run = trained("hello")
    sides = run.last.header["saturation"]
    found = kinds(_last(run, {"saturation": {**sides, "f": {"low": [0.9], "high": [0.06]}}}))
    assert set(found) == {"saturated"} and found["saturated"].evidence.layer == 0
    assert found["saturated"].explanation.startswith("At step 300, 96 % of gate f's values in layer 0")
    assert kinds(_last(run, {"saturation": {**sides, "f": {"low": [0.9], "high": [0.04]}}})) == {}


def test_dead_relu_units(trained: Any) -> None:
    run = trained("adding with a GRU")
    relu = dataclasses.replace(
        run, config=RunCreate.model_validate({**CONFIGS["adding with a GRU"], "cell": "rnn_relu"})
    )
    h = run.last.arrays["h"].copy()
    assert kinds(_last(relu, h=h)) == {}
    h[:, :, :16] = 0  # half the units
    found = kinds(_last(relu, h=h))
    assert set(found) == {"dead"} and found["dead"].evidence.values["share"] == 0.5
    assert patched(relu.config, found["dead"].remedy.patch).init.scheme == "identity"
    assert found["dead"].remedy.changes == {"reinit": {"layer": 0, "scheme": "identity", "gain": 1.0}}
    two = dataclasses.replace(relu, config=relu.config.model_copy(update={"num_layers": 2}))
    h2 = np.concatenate([h, h])  # both layers half dead: re-initialising one is not the remedy
    assert kinds(_last(two, h=h2))["dead"].remedy.changes is None
    assert kinds(_last(run, h=h)) == {}  # a GRU has no ReLU units


def test_stuck_only_after_a_while(trained: Any) -> None:
    run = trained("hello")
    stuck = _with(run, loss=run.baseline)
    assert set(kinds(stuck)) == {"stuck"}
    assert kinds(dataclasses.replace(stuck, metrics=stuck.metrics[:99])) == {}


def test_a_merge_patch() -> None:
    config = RunCreate.model_validate(CONFIGS["hello"])
    changed = patched(config, {"optimizer": {"lr": 0.1}, "name": "x", "init": {"forget_bias": 1}})
    assert changed.optimizer.lr == 0.1 and changed.optimizer.name == "adam" and changed.name == "x"
    assert patched(changed, {"init": {"forget_bias": None}}).init.forget_bias is None  # null removes
    with pytest.raises(ValueError, match="forget_bias"):
        patched(config, {"cell": "gru", "init": {"forget_bias": 1}})


def test_a_gradient_norm_storage_holds_as_null_is_an_overflow(trained: Any) -> None:
    run = trained("hello")
    metrics = [dict(m) for m in run.metrics]
    metrics[150]["grad_norm"] = None  # SQLite stores a NaN as NULL
    found = kinds(dataclasses.replace(run, metrics=metrics))
    assert set(found) == {"exploding"}
    evidence = found["exploding"].evidence
    assert evidence.step == 151 and evidence.values["grad_norm"] is None
    assert evidence.values["median"] == float(
        np.median([m["grad_norm"] for m in run.metrics[:150] + run.metrics[151:]])
    )


def test_a_mingru_s_vanishing_gradient_gets_a_cell_that_can_keep_it(trained: Any) -> None:
    """minGRU at init keeps about half of h_(t-1) a step (z ~ 0.5): 100 steps back the gradient is
    gone, and having no W_hh to initialise, the remedy is a gated cell whose gates read h too."""
    found = kinds(trained("minGRU, adding T = 100"))
    assert "vanishing" in found
    remedy = found["vanishing"].remedy
    assert remedy.config is not None and remedy.config.cell == "lstm" and remedy.changes is None


def test_an_slstm_without_its_stabiliser_diverges_and_the_remedy_is_the_stabiliser(trained: Any) -> None:
    run = trained("sLSTM without its stabiliser")
    assert run.status == "diverged"
    found = kinds(run)
    config = found["diverged"].remedy.config
    assert config is not None and config.slstm is not None and config.slstm.stabilizer

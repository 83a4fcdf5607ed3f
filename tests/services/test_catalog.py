"""The catalog: every choice the API offers, the constants the pages share, the presets (the
lessons: tests/services/test_lessons.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import pytest

from app.core import frames
from app.core.cells import CELLS, GATES, MODERN_CELLS, STATES, WITHOUT_W_HH, CellName
from app.core.engine import End, StepMetrics, Trainer
from app.core.tasks import TASKS, make_task
from app.services.catalog import catalog, run_defaults
from app.services.lessons import presets
from app.services.schemas import FINISHED, LIMITS, CompareCreate, RunCreate, SLSTMSpec
from app.services.train_config import to_train_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_catalog_lists_every_cell_task_and_limit() -> None:
    c = catalog()
    assert [cell.name for cell in c.cells] == list(CELLS)
    assert {t.name for t in c.tasks} == set(TASKS)
    for info in c.tasks:
        cls = TASKS[info.name]
        assert [p.name for p in info.params] == [p.name for p in cls.params]
        assert info.baseline_loss == pytest.approx(make_task(info.name).baseline_loss)
        assert info.shape == cls.shape and info.metric_name == cls.metric_name
    assert c.limits == LIMITS
    assert catalog() is c  # built once


def test_presets_are_valid_and_say_what_to_look_for() -> None:
    found = {p.name: p for p in presets()}
    assert {
        "vanishing",
        "exploding",
        "hello",
        "adding",
        "copy",
        "shakespeare",
        "bidirectional",
        "parallel-remembers",
        "stabilizer",
    } <= set(found)
    for preset in found.values():
        assert preset.look_for.endswith(".") and preset.title
        if preset.compare is not None:
            CompareCreate(config=preset.config, cells=preset.compare)
    exploding = found["exploding"]
    assert exploding.config.init.scheme == "normal" and exploding.config.init.gain == 2.0
    assert exploding.config.clip.mode == "norm" and exploding.config.clip.threshold == 1.0
    assert [v.clip.mode for v in exploding.variants] == ["off"]
    assert found["vanishing"].config.task.params == {"seq_len": 100}
    assert found["hello"].config.task.params == {"corpus": "hello"}
    assert found["bidirectional"].config.task.name == "tagging"
    assert [v.bidirectional for v in found["bidirectional"].variants] == [False]


def test_the_exploding_preset_shows_what_it_says() -> None:
    """Clipped, the run trains through the explosion; unclipped, it diverges."""
    (exploding,) = [p for p in presets() if p.name == "exploding"]
    clipped = list(Trainer(to_train_config(exploding.config)).events())[-1]
    unclipped = list(Trainer(to_train_config(exploding.variants[0])).events())[-1]
    assert isinstance(clipped, End) and clipped.status == "completed"
    assert isinstance(unclipped, End) and unclipped.status == "diverged"


def _losses(config: RunCreate, **changes: Any) -> tuple[list[float], End]:
    """Train `config` (with `changes`) through the engine: each step's loss, and how it ended."""
    run = RunCreate.model_validate({**config.model_dump(mode="json"), **changes})
    events = list(Trainer(to_train_config(run)).events())
    end = events[-1]
    assert isinstance(end, End)
    return [e.loss for e in events if isinstance(e, StepMetrics)], end


def test_the_parallel_remembers_preset_shows_what_it_says() -> None:
    """On the preset's task and settings, shortened (probes off, to be quick): in 220 of its 600
    steps minGRU's loss falls well below the adding problem's 1/6 baseline; in 100 the tanh RNN's
    stays above it."""
    (preset,) = [p for p in presets() if p.name == "parallel-remembers"]
    assert preset.compare == ["rnn_tanh", "mingru"] and preset.config.task.params == {"seq_len": 200}
    baseline = make_task("adding", seq_len=200).baseline_loss
    assert baseline == pytest.approx(1 / 6, rel=0.05)
    quick = {"probe_every": 0, "itemize": False}
    learnt: dict[str, float] = {}
    for cell, steps in (("mingru", 220), ("rnn_tanh", 100)):
        losses, end = _losses(preset.config, cell=cell, steps=steps, **quick)
        assert end.status == "completed" and len(losses) == steps
        learnt[cell] = sum(losses[-20:]) / 20
    assert learnt["mingru"] < baseline / 3, learnt
    assert learnt["rnn_tanh"] > baseline, learnt


def test_the_stabilizer_preset_shows_what_it_says() -> None:
    """Without m_t the sLSTM overflows to NaN at the first step and the run diverges; with it, the same
    run trains (a shorter run here: its loss falls and stays finite)."""
    (preset,) = [p for p in presets() if p.name == "stabilizer"]
    (bare,) = preset.variants
    assert preset.config.slstm is not None and preset.config.slstm.stabilizer
    assert bare.slstm is not None and not bare.slstm.stabilizer
    assert bare.model_dump(exclude={"slstm", "name"}) == preset.config.model_dump(exclude={"slstm", "name"})
    losses, end = _losses(bare)
    assert (end.status, end.step, losses) == ("diverged", 1, [])
    losses, end = _losses(preset.config, steps=60, probe_every=0)
    assert end.status == "completed" and all(math.isfinite(v) for v in losses)
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20


def test_display_constants_are_the_frames_and_the_cores() -> None:
    shown = catalog().display
    assert (shown.max_t, shown.max_units) == (frames.MAX_T, frames.MAX_UNITS) == (500, 256)
    assert shown.floor == -30
    for cell in catalog().cells:  # every gate and state a view, each caption a sentence
        name = cast(CellName, cell.name)
        assert list(cell.views) == [*GATES[name], *STATES.get(name, ())]
        assert all(v.caption.endswith(".") and v.title for v in cell.views.values())
    lstm = next(c for c in catalog().cells if c.name == "lstm")
    assert {g for g, v in lstm.views.items() if v.kind == "sigmoid"} == {"i", "f", "o"}


def test_each_cell_says_whether_it_runs_both_ways_and_its_own_options() -> None:
    cells = {c.name: c for c in catalog().cells}
    assert [n for n, c in cells.items() if not c.bidirectional] == list(MODERN_CELLS)
    assert [n for n, c in cells.items() if not c.w_hh] == list(WITHOUT_W_HH)
    assert [n for n, c in cells.items() if c.options] == ["slstm"]
    forget, stabilizer = cells["slstm"].options
    assert (forget.name, forget.kind, forget.choices, forget.default) == (
        "forget",
        "choice",
        ["exp", "sigmoid"],
        "exp",
    )
    assert (stabilizer.name, stabilizer.kind, stabilizer.choices, stabilizer.default) == (
        "stabilizer",
        "bool",
        None,
        True,
    )
    assert SLSTMSpec.model_validate({o.name: o.default for o in cells["slstm"].options}) == SLSTMSpec()
    assert all(o.doc for o in cells["slstm"].options)
    for name in CELLS:  # what the form offers is what RunCreate takes
        RunCreate.model_validate(
            {"cell": name, "task": {"name": "adding"}, "bidirectional": cells[name].bidirectional}
        )


def test_statuses_list_every_run_status_and_the_finished_ones() -> None:
    statuses = catalog().statuses
    assert statuses.all[0] == "queued" and set(statuses.all) >= FINISHED | {"running"}
    assert set(statuses.finished) == FINISHED and len(statuses.finished) == len(FINISHED)


def test_defaults_are_a_runcreates_own() -> None:
    defaults = run_defaults()
    made = RunCreate.model_validate({"cell": "gru", "task": {"name": "adding"}}).model_dump(mode="json")
    assert defaults == {k: v for k, v in made.items() if k not in ("cell", "task")}
    assert (
        defaults["hidden_size"] == 64 and defaults["optimizer"]["lr"] == 0.003 and defaults["tbptt"] is None
    )
    assert RunCreate.model_validate({**defaults, "cell": "lstm", "task": {"name": "copy"}})  # a valid base

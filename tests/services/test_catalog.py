"""The catalog: every choice the API offers, the constants the pages share, the presets (the
lessons: tests/services/test_lessons.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core import frames
from app.core.cells import CELLS, GATES
from app.core.display import GATE_CAPTIONS
from app.core.tasks import TASKS, make_task
from app.services.catalog import catalog, run_defaults
from app.services.lessons import presets
from app.services.schemas import FINISHED, LIMITS, CompareCreate, RunCreate

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
    assert {"vanishing", "exploding", "hello", "adding", "copy", "shakespeare", "bidirectional"} <= set(found)
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
    from app.core.engine import End, Trainer
    from app.services.schemas import to_train_config

    (exploding,) = [p for p in presets() if p.name == "exploding"]
    clipped = list(Trainer(to_train_config(exploding.config)).events())[-1]
    unclipped = list(Trainer(to_train_config(exploding.variants[0])).events())[-1]
    assert isinstance(clipped, End) and clipped.status == "completed"
    assert isinstance(unclipped, End) and unclipped.status == "diverged"


def test_display_constants_are_the_frames_and_the_cores() -> None:
    shown = catalog().display
    assert (shown.max_t, shown.max_units) == (frames.MAX_T, frames.MAX_UNITS) == (500, 256)
    assert shown.floor == -30
    every_gate = {g for cell in CELLS for g in GATES[cell]}
    assert set(shown.gate_kinds) == every_gate
    assert {g for g, kind in shown.gate_kinds.items() if kind == "sigmoid"} == {"i", "f", "o", "r", "z"}
    assert shown.gate_kinds["g"] == shown.gate_kinds["n"] == "tanh"
    assert set(GATE_CAPTIONS) == every_gate | {"c"} and all(
        text.endswith(".") for text in GATE_CAPTIONS.values()
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

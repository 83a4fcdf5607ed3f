"""The catalog: every choice the API offers, and presets that are valid runs."""

from __future__ import annotations

import pytest

from app.core.cells import CELLS
from app.core.tasks import TASKS, make_task
from app.services.catalog import catalog, presets
from app.services.schemas import LIMITS, CompareCreate


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

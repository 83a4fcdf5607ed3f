"""Sweeps (app.services.sweeps, sweep_store): the grid's product in its stated order with named
runs, validation naming the path and value, all or none, and the figures of real tiny runs
(final loss over the last tenth, the task's baseline, the step-0 gradient ratio), stop, delete."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.frames import Frame
from app.services import manager as manager_module
from app.services.claims import reach_ratio
from app.services.estimates import check_cost
from app.services.lessons import sweep_presets
from app.services.manager import QueueFull, RunManager
from app.services.migrations import SCHEMA_VERSION
from app.services.schemas import RunCreate
from app.services.storage import DB_NAME, Storage
from app.services.sweep_schemas import SweepCreate
from app.services.sweep_store import SweepStore
from app.services.sweeps import BadSweep, Sweeps, expand, run_name
from app.settings import Settings

TINY: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 4,
    "task": {"name": "recall", "seq_len": 5, "n_classes": 3},
    "batch_size": 4,
    "steps": 25,
    "probe_every": 10,
}
SLOW: dict[str, Any] = {**TINY, "cell": "lstm", "steps": 100_000, "probe_every": 50}
LIMITS = Settings()


def body(grid: dict[str, list[Any]], base: dict[str, Any] = TINY, **extra: Any) -> SweepCreate:
    return SweepCreate.model_validate({"base": base, "grid": grid, **extra})


@pytest.fixture
def made(tmp_path: Path) -> Iterator[tuple[Sweeps, Storage, RunManager]]:
    storage = Storage(tmp_path)
    manager = RunManager(storage, 2)
    manager.start()
    yield Sweeps(SweepStore(storage), manager), storage, manager
    manager.shutdown()
    storage.close()


def wait_done(sweeps: Sweeps, sweep_id: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        sweep = sweeps.get(sweep_id)
        assert sweep is not None
        if sweep.done == sweep.total:
            return sweep
        assert time.monotonic() < deadline, f"sweep still at {sweep.counts} after {timeout} s"
        time.sleep(0.1)


def test_the_grid_runs_in_product_order_the_last_path_fastest_each_named_from_its_values() -> None:
    grid: dict[str, list[Any]] = {
        "cell": ["rnn_tanh", "lstm"],
        "init.gain": [0.5, 2.0],
        "task.seq_len": [10, 50],
        "seed": [1],
    }
    points = expand(RunCreate.model_validate(TINY), grid)
    assert [tuple(p.params.values()) for p in points] == [
        (c, g, T, 1) for c in ("rnn_tanh", "lstm") for g in (0.5, 2.0) for T in (10, 50)
    ]
    first, last = points[0].config, points[-1].config
    assert first.name == "rnn_tanh · gain 0.5 · T 10 · seed 1"
    assert last.name == "lstm · gain 2 · T 50 · seed 1"
    assert (last.cell, last.init.gain, last.task.params["seq_len"], last.seed) == ("lstm", 2.0, 50, 1)
    assert last.task.params["n_classes"] == 3 and last.hidden_size == 4  # the rest is the base's
    assert run_name({"optimizer.lr": 0.01, "hidden_size": 8}) == "lr 0.01 · hidden size 8"


@pytest.mark.parametrize(
    ("grid", "base", "says"),
    [
        ({"nope": [1]}, TINY, "grid path 'nope': a run's config has no field 'nope'"),
        ({"init.nope": [1]}, TINY, "grid path 'init.nope': init has no field 'nope'"),
        ({"seed.x": [1]}, TINY, "grid path 'seed.x': seed is a value, not a section"),
        ({"name": ["a"]}, TINY, "the grid may not set name"),
        ({"init": [{"gain": 2.0}], "init.gain": [1.0]}, TINY, "grid paths 'init' and 'init.gain' overlap"),
        ({"init.gain": [1.0, 20]}, TINY, "grid value init.gain = 20 makes an invalid run (init.gain: "),
        ({"task.seq_len": [0]}, TINY, "grid value task.seq_len = 0 makes an invalid run"),
        ({"seed": [0, -1]}, TINY, "grid value seed = -1 makes an invalid run (Input should be greater than"),
        ({"seed": [-1, 0]}, TINY, "grid value seed = -1 makes an invalid run (seed: Input should be greater"),
        ({"task.colour": [1]}, TINY, "task 'recall' has no parameter 'colour'"),
        (
            {"cell": ["lstm", "gru"]},
            {**TINY, "cell": "lstm", "init": {"forget_bias": 1.0}},
            'grid value cell = "gru" makes an invalid run (init: forget_bias applies to the cells with',
        ),
        ({"seed": list(range(40)), "init.gain": [0.5] * 26}, TINY, "the grid makes 1,040 runs (40 seed × 26"),
    ],
)
def test_a_bad_grid_names_its_path_and_value_and_stores_nothing(
    made: tuple[Sweeps, Storage, RunManager], grid: dict[str, list[Any]], base: dict[str, Any], says: str
) -> None:
    sweeps, storage, _ = made
    with pytest.raises(BadSweep) as err:
        sweeps.create(body(grid, base), LIMITS)
    assert says in str(err.value)
    assert storage.list_runs()[1] == 0 and sweeps.list() == []


def test_a_run_beyond_the_cost_limits_refuses_the_sweep(made: tuple[Sweeps, Storage, RunManager]) -> None:
    sweeps, storage, _ = made
    huge = {"task.seq_len": [5, 1000], "hidden_size": [512], "batch_size": [512], "num_layers": [3]}
    with pytest.raises(BadSweep) as err:
        sweeps.create(body(huge, {**TINY, "cell": "lstm", "bidirectional": True}), LIMITS)
    assert str(err.value).startswith("the run task.seq_len = 1000, hidden_size = 512") and "lower" in str(
        err.value
    )
    assert storage.list_runs()[1] == 0 and sweeps.list() == []


def test_a_sweep_the_queue_cannot_take_stores_nothing(
    made: tuple[Sweeps, Storage, RunManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeps, storage, _ = made
    monkeypatch.setattr(manager_module, "MAX_QUEUED", 3)
    with pytest.raises(QueueFull):
        sweeps.create(body({"seed": list(range(6))}, SLOW), LIMITS)
    assert storage.list_runs()[1] == 0 and sweeps.list() == []


def test_the_figures_of_real_runs(made: tuple[Sweeps, Storage, RunManager]) -> None:
    sweeps, storage, _ = made
    created = sweeps.create(body({"cell": ["rnn_tanh", "gru"], "init.gain": [0.5, 1.5]}, name="tiny"), LIMITS)
    assert (created.name, created.total, created.grid) == (
        "tiny",
        4,
        {"cell": ["rnn_tanh", "gru"], "init.gain": [0.5, 1.5]},
    )
    sweep = wait_done(sweeps, created.id)
    assert sweep.counts == {"completed": 4} and [r.position for r in sweep.runs] == [0, 1, 2, 3]
    for run in sweep.runs:
        record = storage.get_run(run.id)
        assert record is not None and record.group == sweep.id and record.name == run.name
        losses = [m["loss"] for m in storage.metrics(run.id)]
        assert len(losses) == 25
        assert run.loss == pytest.approx(
            np.mean(losses[-3:])
        )  # the last tenth of 25 steps: round(2.5) = 3 in SQL
        assert run.baseline == pytest.approx(math.log(3)) and run.relative == pytest.approx(
            run.loss / math.log(3)
        )
        frame = Frame.from_bytes(storage.probe(run.id, 0) or b"")
        assert run.ratio == pytest.approx(reach_ratio(frame), rel=1e-6)
        assert run.ratio is not None and run.ratio > 0
    again = sweeps.get(sweep.id)  # read from the cache now
    assert again is not None and again.runs == sweep.runs
    [brief] = sweeps.list(sweep.runs[2].id)
    assert (brief.id, brief.done, brief.total) == (sweep.id, 4, 4)
    assert sweeps.list("no-such-run") == []


def test_stop_ends_queued_and_running_runs_and_delete_removes_them(
    made: tuple[Sweeps, Storage, RunManager],
) -> None:
    sweeps, storage, manager = made
    other = manager.submit(RunCreate.model_validate(TINY))
    created = sweeps.create(body({"seed": [0, 1, 2, 3, 4]}, SLOW), LIMITS)
    stopped = sweeps.stop(created.id)
    assert stopped is not None and set(stopped.counts) <= {"stopped", "running"}
    deadline = time.monotonic() + 30
    while (sweep := sweeps.get(created.id)) is not None and sweep.done < 5:
        assert time.monotonic() < deadline, sweep.counts
        time.sleep(0.1)
    assert sweep is not None and sweep.counts == {"stopped": 5}
    assert sweeps.delete(created.id) and sweeps.get(created.id) is None and not sweeps.delete(created.id)
    assert [r.id for r in storage.list_runs()[0]] == [other.id]  # only the sweep's runs went
    assert sweeps.stop("no-such-sweep") is None


def test_a_version_8_database_gains_the_sweep_tables(tmp_path: Path) -> None:
    Storage(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.executescript("DROP TABLE sweep_runs; DROP TABLE sweeps; PRAGMA user_version = 8;")
    conn.close()
    with Storage(tmp_path) as storage:
        manager = RunManager(storage, 1)
        created = Sweeps(SweepStore(storage), manager).create(body({"seed": [0, 1]}, SLOW), LIMITS)
        assert created.total == 2 and created.counts == {"queued": 2}  # never started: no worker
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sweep_runs").fetchone()[0] == 2
    conn.close()


def test_the_edge_of_chaos_preset_is_a_valid_sweep_within_the_cost_limits() -> None:
    [preset] = sweep_presets()
    assert preset.full is not None
    for sweep, runs in ((preset.sweep, 63), (preset.full, 120)):
        points = expand(sweep.base, sweep.grid)
        assert len(points) == runs and {p.config.cell for p in points} == {"rnn_tanh", "lstm", "gru"}
        for point in points:
            check_cost(point.config, LIMITS)

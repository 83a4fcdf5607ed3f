"""The cost model: its counts match the real network, it moves the right way, and it is honest.

Honesty in memory is tested here: a worker-like process's peak resident size against the
estimate, within cost.FACTOR. Honesty in time is not a test (a timed test flakes on a busy
machine): `python -m scripts.bench_cost` measures real workers over a spread of configs and
prints estimate / measured side by side.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from app.core import cost
from app.core.cells import CellName
from app.core.model import ModelSpec, RecurrentNet

SHAPE = cost.Shape("lstm", 2, 1, 64, 1, False, 64, 50, loss_steps=1, steps=1000)


@pytest.mark.parametrize(
    ("cell", "inputs", "outputs", "H", "L", "bi"),
    [("lstm", 2, 1, 64, 1, False), ("gru", 10, 2, 32, 3, True), ("rnn_tanh", 65, 65, 128, 2, False)],
)
def test_parameters_count_the_real_network(
    cell: CellName, inputs: int, outputs: int, H: int, L: int, bi: bool
) -> None:
    net = RecurrentNet(ModelSpec(cell, inputs, H, outputs, L, bi))
    shape = cost.Shape(cell, inputs, outputs, H, L, bi, 8, 10, loss_steps=10, steps=1)
    assert shape.parameters == sum(p.numel() for p in net.parameters())


def test_probe_rows_follow_the_loss_steps_and_the_itemize_limit() -> None:
    assert SHAPE.probe_rows == 1  # many-to-one: one loss step, one row
    many = dataclasses.replace(SHAPE, loss_steps=50)
    assert many.probe_rows == 52  # L, its last term, each l_s
    assert dataclasses.replace(many, itemize=False).probe_rows == 2
    assert dataclasses.replace(many, seq_len=201, loss_steps=201).probe_rows == 2  # never itemized


def test_the_estimate_grows_with_what_costs_and_shrinks_with_what_saves() -> None:
    base = cost.estimate(SHAPE)
    for bigger in ({"hidden_size": 256}, {"num_layers": 3}, {"bidirectional": True}, {"batch_size": 256}):
        est = cost.estimate(dataclasses.replace(SHAPE, **bigger))
        assert est.train_seconds > base.train_seconds and est.memory_bytes > base.memory_bytes, bigger
    longer = cost.estimate(dataclasses.replace(SHAPE, seq_len=500))
    windowed = cost.estimate(dataclasses.replace(SHAPE, seq_len=500, tbptt=50))
    assert windowed.memory_bytes < longer.memory_bytes  # truncated BPTT keeps one window's activations
    every = cost.estimate(dataclasses.replace(SHAPE, probe_every=1))
    assert every.seconds_per_step == pytest.approx(every.train_seconds + every.probe_seconds * (1 + 1e-3))
    budget = cost.estimate(dataclasses.replace(SHAPE, probe_every=1, probe_budget=0.05))
    share = (budget.seconds_per_step - budget.train_seconds) / budget.train_seconds
    assert share < 0.05 + 2 * budget.probe_seconds / SHAPE.steps / budget.train_seconds + 1e-9
    assert cost.estimate(SHAPE, speed=2.0).seconds_per_step == pytest.approx(2 * base.seconds_per_step)
    assert base.eta_seconds == pytest.approx(
        cost.STARTUP_SECONDS + base.probe_seconds + SHAPE.steps * base.seconds_per_step
    )


def test_the_issues_run_is_estimated_as_the_monster_it_is() -> None:
    """3-layer bidirectional LSTM, H=512, T=1000, batch 64: ~90 s per step and ~10 GB in the issue;
    `scripts.bench_cost --big` measured 72 s of CPU (94 s wall) per step and a 9.1 GB peak."""
    big = cost.Shape("lstm", 2, 1, 512, 3, True, 64, 1000, loss_steps=1, steps=2000)
    est = cost.estimate(big)
    assert 90 / cost.FACTOR <= est.seconds_per_step <= 90 * cost.FACTOR
    assert 10e9 / cost.FACTOR <= est.memory_bytes <= 10e9 * cost.FACTOR


def test_calibration_runs_once_on_one_thread_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    first = cost.calibrate()

    def again() -> float:
        raise AssertionError("calibrated twice")

    monkeypatch.setattr(cost, "tiny_step_seconds", again)
    assert cost.calibrate() == first  # cached for the process
    assert torch.get_num_threads() == threads  # the caller's thread count is untouched
    assert 0.05 < first < 20  # a machine within a sane range of the reference


_PEAK = """
import json, resource, sys, torch
from app.services import worker  # a worker's imports
from app.core.engine import TrainConfig, Trainer
torch.set_num_threads(1)
config = TrainConfig(cell="lstm", task="adding", task_params={"seq_len": 200}, hidden_size=256, batch_size=64)
trainer = Trainer(config)
for _ in range(2):
    trainer.train_step()
worker.frame_bytes("peak", trainer.probe())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_the_memory_estimate_is_within_the_stated_factor_of_a_real_peak() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK], capture_output=True, text=True, check=True, timeout=120
    )
    peak = json.loads(out.stdout)
    shape = cost.Shape("lstm", 2, 1, 256, 1, False, 64, 200, loss_steps=1, steps=2000)
    ratio = cost.estimate(shape).memory_bytes / peak
    assert 1 / cost.FACTOR <= ratio <= cost.FACTOR, ratio

"""The training engine: metrics every step, probes on schedule, reproducibility, divergence."""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from app.core.engine import OPTIMIZERS, End, OptimizerName, StepMetrics, TrainConfig, Trainer
from app.core.frames import Frame
from app.core.probes import ProbeFrame
from app.core.tasks import Batch

SMALL = TrainConfig(
    cell="lstm", task="adding", task_params={"seq_len": 12}, hidden_size=8, batch_size=8, steps=6
)


def _events(config: TrainConfig) -> list[StepMetrics | ProbeFrame | End]:
    return list(Trainer(config).events())


def test_events_follow_the_schedule() -> None:
    events = _events(TrainConfig(**{**SMALL.__dict__, "steps": 7, "probe_every": 3}))
    kinds = [type(e).__name__[0] + str(getattr(e, "step", "")) for e in events]
    assert kinds == ["P0", "S1", "S2", "S3", "P3", "S4", "S5", "S6", "P6", "S7", "P7", "E7"]
    end = events[-1]
    assert isinstance(end, End) and end.status == "completed"


def test_step_metrics_are_complete_and_consistent() -> None:
    trainer = Trainer(TrainConfig(**{**SMALL.__dict__, "clip": "norm", "clip_threshold": 1e-3}))
    m = trainer.train_step()
    assert m is not None
    assert set(m.param_grad_norms) == {
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "readout.weight",
        "readout.bias",
    }
    assert math.isclose(m.grad_norm, math.sqrt(sum(v**2 for v in m.param_grad_norms.values())), rel_tol=1e-5)
    assert m.clipped and m.grad_norm > 1e-3
    assert math.isclose(m.grad_norm_clipped, 1e-3, rel_tol=1e-3)
    assert m.lr == SMALL.lr and m.update_ratio > 0 and m.seconds > 0
    assert m.metric >= 0  # MSE for the adding problem
    assert math.isclose(m.loss, m.metric, rel_tol=1e-5)  # the adding loss is its MSE


def test_value_clipping_and_no_clipping() -> None:
    m = Trainer(TrainConfig(**{**SMALL.__dict__, "clip": "value", "clip_threshold": 1e-4})).train_step()
    assert m is not None and m.clipped and m.grad_norm_clipped < m.grad_norm
    m = Trainer(TrainConfig(**{**SMALL.__dict__, "clip": "off"})).train_step()
    assert m is not None and not m.clipped and m.grad_norm_clipped == m.grad_norm


def _final_params(config: TrainConfig) -> list[torch.Tensor]:
    trainer = Trainer(config)
    trainer.run()
    return [p.detach().clone() for p in trainer.net.parameters()]


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_same_seed_trains_bit_for_bit_the_same_with_or_without_probes(cell: str) -> None:
    base = TrainConfig(**{**SMALL.__dict__, "cell": cell, "probe_every": 0})
    probed = TrainConfig(**{**base.__dict__, "probe_every": 1})
    a, b, c = _final_params(base), _final_params(base), _final_params(probed)
    for x, y, z in zip(a, b, c, strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)
    other = _final_params(TrainConfig(**{**base.__dict__, "seed": 1}))
    assert not all(torch.equal(x, y) for x, y in zip(a, other, strict=True))


def test_cells_compared_on_one_seed_see_the_same_probe_input() -> None:
    frames = [
        Trainer(TrainConfig(**{**SMALL.__dict__, "cell": c})).probe() for c in ("rnn_tanh", "lstm", "gru")
    ]
    for f in frames[1:]:
        np.testing.assert_array_equal(f.inputs, frames[0].inputs)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns_the_hello_model(optimizer: OptimizerName) -> None:
    lr = {"sgd": 0.5, "rmsprop": 0.01, "adam": 0.01, "adagrad": 0.3}[optimizer]
    config = TrainConfig(
        cell="lstm", task="char_lm", task_params={"corpus": "hello"}, hidden_size=16, batch_size=1,
        optimizer=optimizer, lr=lr, momentum=0.9 if optimizer == "sgd" else 0.0, steps=300, probe_every=0,
    )  # fmt: skip
    losses = [e.loss for e in Trainer(config).events() if isinstance(e, StepMetrics)]
    assert losses[-1] < 0.1 * losses[0]


def test_truncated_bptt_cuts_the_gradient_and_the_probe_shows_it() -> None:
    config = TrainConfig(**{**SMALL.__dict__, "tbptt": 4, "cell": "gru"})
    trainer = Trainer(config)
    frame = trainer.probe()
    # the adding loss sits at the last step: with windows of 4 nothing reaches t < 8
    assert np.all(frame.grad_h[0, :8] == 0) and np.all(frame.grad_h[0, 8:] > 0)
    full = Trainer(TrainConfig(**{**SMALL.__dict__, "cell": "gru"}))
    m_cut, m_full = trainer.train_step(), full.train_step()
    assert m_cut is not None and m_full is not None
    assert math.isclose(m_cut.loss, m_full.loss, rel_tol=1e-5)  # same forward, same batch
    name = "rnn.weight_ih_l0"
    assert m_cut.param_grad_norms[name] != m_full.param_grad_norms[name]


def test_divergence_ends_the_run_without_raising() -> None:
    config = TrainConfig(
        cell="rnn_relu", task="adding", task_params={"seq_len": 30}, hidden_size=16, init="identity",
        gain=3.0, optimizer="sgd", lr=1e6, clip="off", steps=50, probe_every=0,
    )  # fmt: skip
    events = _events(config)
    end = events[-1]
    assert isinstance(end, End) and end.status == "diverged"
    steps = [e.step for e in events if isinstance(e, StepMetrics)]
    assert end.step == (steps[-1] + 1 if steps else 1)
    assert all(math.isfinite(e.loss) for e in events if isinstance(e, StepMetrics))


def test_stop_takes_effect_after_the_current_step() -> None:
    trainer = Trainer(TrainConfig(**{**SMALL.__dict__, "steps": 100_000, "probe_every": 0}))
    seen: list[int] = []

    def on_step(m: StepMetrics) -> None:
        seen.append(m.step)
        if m.step == 5:
            threading.Thread(target=trainer.stop).start()

    end = trainer.run(on_step=on_step)
    assert end.status == "stopped" and trainer.status == "stopped"
    assert 5 <= end.step < 100 and seen[-1] == end.step


def test_probe_text_is_used_for_character_models() -> None:
    config = TrainConfig(
        cell="gru", task="char_lm", task_params={"corpus": "hello"}, probe_text="hello", steps=1
    )
    frame = Trainer(config).probe()
    assert frame.tokens == list("hello")


class _TimedTrainer(Trainer):
    """A trainer on an injected clock that advances by fixed costs: each training step takes
    `train` seconds, each probe `plain`, or `itemized` when it carries the itemized matrix."""

    def __init__(self, config: TrainConfig, train: float, plain: float, itemized: float) -> None:
        self.now, self.costs = 0.0, (train, plain, itemized)
        super().__init__(config, clock=lambda: self.now)

    def _forward_backward(self, batch: Batch) -> tuple[float, float]:
        self.now += self.costs[0]
        return super()._forward_backward(batch)

    def probe(
        self, sample: Batch | None = None, itemize: bool | None = None, spectra: bool = True
    ) -> ProbeFrame:
        frame = super().probe(sample, itemize, spectra)
        self.now += self.costs[2] if frame.itemized is not None else self.costs[1]
        return frame


def test_a_budgeted_run_keeps_its_probe_share_near_the_budget() -> None:
    config = TrainConfig(**{**SMALL.__dict__, "steps": 600, "probe_every": 0, "probe_budget": 0.05})
    trainer = _TimedTrainer(config, train=0.01, plain=0.002, itemized=0.02)
    frames = [e for e in trainer.events() if isinstance(e, ProbeFrame)]
    steps = [f.step for f in frames]
    assert steps[0] == 0 and steps[-1] == 600  # first and last, as without a budget
    # 0.05 x 6 s = 0.3 s of probing: the last probe is forced, so at most one probe over
    assert 0.04 <= trainer.budget.share <= 0.05 + 0.002 / 6
    itemized = [f.step for f in frames if f.itemized is not None]
    assert itemized[0] == 0 and len(itemized) >= 2  # later itemized probes on their 1 % share
    assert len(itemized) * 0.02 <= 0.01 * 6 + 0.02
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    # the first plain probe comes at once, to learn its cost; then 2 ms on 4 % of 10 ms steps:
    # every 5 steps, evenly
    assert gaps[0] == 1 and max(gaps[2:]) <= 6 and sorted(gaps)[len(gaps) // 2] == 5


def test_without_a_budget_probes_follow_probe_every_whatever_they_cost() -> None:
    config = TrainConfig(**{**SMALL.__dict__, "steps": 30, "probe_every": 10})
    trainer = _TimedTrainer(config, train=0.01, plain=1.0, itemized=1.0)
    frames = [e for e in trainer.events() if isinstance(e, ProbeFrame)]
    assert [f.step for f in frames] == [0, 10, 20, 30]
    assert all(f.itemized is not None for f in frames)  # itemize=True: every probe, as before
    assert trainer.budget.share == pytest.approx(4.0 / 0.3)


def _trained(
    events: Iterator[StepMetrics | ProbeFrame | End],
) -> list[tuple[float, float, ProbeFrame | None]]:
    """(loss, grad norm, the probe frame after it or None) of each step in `events`."""
    out: list[tuple[float, float, ProbeFrame | None]] = []
    for event in events:
        if isinstance(event, StepMetrics):
            out.append((event.loss, event.grad_norm, None))
        elif isinstance(event, ProbeFrame) and out:
            out[-1] = (*out[-1][:2], event)
    return out


def _same_frame(a: ProbeFrame | None, b: ProbeFrame | None) -> bool:
    """Both None, or frames whose every array is equal bit for bit (as their bytes say)."""
    if a is None or b is None:
        return a is b
    return Frame.from_probe("r", a).to_bytes() == Frame.from_probe("r", b).to_bytes()


@pytest.mark.parametrize(("cell", "optimizer"), [("lstm", "adam"), ("gru", "rmsprop"), ("rnn_tanh", "sgd")])
def test_a_restored_state_goes_on_bit_for_bit_as_the_run_did(cell: str, optimizer: OptimizerName) -> None:
    momentum = 0.5 if optimizer == "sgd" else 0.0
    config = TrainConfig(**{**SMALL.__dict__, "cell": cell, "optimizer": optimizer, "momentum": momentum})
    config = dataclasses.replace(config, steps=9, probe_every=3)
    parent = Trainer(config)
    events = parent.events()
    while not (isinstance(event := next(events), ProbeFrame) and event.step == 3):
        pass
    buf = io.BytesIO()
    torch.save(parent.state(), buf)  # as the worker sends it
    later = _trained(events)  # the parent's steps 4..9: its events go on where they were
    fork = Trainer(dataclasses.replace(config, lr=0.5, clip="off"))  # the state's knobs win
    fork.restore(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert fork.step == 3 and fork.config == config
    fork_events = fork.events()
    first = next(fork_events)  # the fork's own probe of step 3: the parent's
    assert isinstance(first, ProbeFrame) and first.step == 3 and _same_frame(first, event)
    forked = _trained(fork_events)
    assert len(later) == len(forked) == 6
    for (loss, norm, frame), (loss2, norm2, frame2) in zip(later, forked, strict=True):
        assert (loss, norm) == (loss2, norm2) and _same_frame(frame, frame2)
    assert sum(f is not None for _, _, f in forked) == 2  # probes at 6 and 9
    assert all(torch.equal(a, b) for a, b in zip(parent.net.parameters(), fork.net.parameters(), strict=True))

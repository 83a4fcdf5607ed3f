"""What a run will cost, and whether this server takes it: the estimate and the limits.

What this is: `estimate(config)`, the core's cost model (app.core.cost) of a RunCreate on this
machine (calibrated once per process), `problems(estimate, limits)`, one sentence per limit the
run is beyond, saying the estimate, the limit and what to lower, and `check_cost(config,
limits)`, which raises `TooCostly` (a ValueError, HTTP 422) with those sentences. Every route
that queues runs calls check_cost before it queues any. `limits` is anything with
`max_step_seconds` and `max_run_memory_mb` (app.settings.Settings is).

What this is not: the model itself (app/core/cost.py) or a route (app/web/estimate.py).
"""

from __future__ import annotations

from typing import Protocol

from app.core import cost
from app.core.engine import probe_sample
from app.core.tasks import make_task
from app.services.schemas import RunCreate, to_train_config


class CostLimits(Protocol):
    """The server's limits on one run (GATESCOPE_MAX_STEP_SECONDS, GATESCOPE_MAX_RUN_MEMORY_MB)."""

    @property
    def max_step_seconds(self) -> float: ...

    @property
    def max_run_memory_mb(self) -> int: ...


class TooCostly(ValueError):  # noqa: N818  (reads as the answer: the run is too costly)
    """The run is beyond this server's limits (HTTP 422); the message says what to lower."""


def shape_of(config: RunCreate) -> cost.Shape:
    """The cost model's view of a run: sizes from its task, loss steps from its probe sample."""
    train = to_train_config(config)
    task = make_task(train.task, **dict(train.task_params))
    sample = probe_sample(task, train)
    return cost.Shape(
        cell=config.cell,
        input_size=task.input_size,
        output_size=task.output_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        batch_size=config.batch_size,
        seq_len=task.seq_len,
        loss_steps=int(sample.mask.sum()),
        steps=config.steps,
        tbptt=config.tbptt,
        optimizer=config.optimizer.name,
        probe_every=config.probe_every,
        probe_budget=config.probe_budget,
        itemize=config.itemize,
    )


def estimate(config: RunCreate, speed: float | None = None) -> cost.Estimate:
    """The run's cost on this machine (`speed`: cost.calibrate() unless given)."""
    return cost.estimate(shape_of(config), cost.calibrate() if speed is None else speed)


def _seconds(x: float) -> str:
    return f"{x:.3g} s" if x < 120 else f"{x / 60:.3g} min"


SIZES = "hidden size, layers, bidirectional, batch size or the task's sequence length"


def problems(config: RunCreate, est: cost.Estimate, limits: CostLimits) -> list[str]:
    """A sentence per limit the run is beyond: the estimate, the limit, what to lower."""
    out = []
    if est.seconds_per_step > limits.max_step_seconds:
        probing = est.seconds_per_step - est.train_seconds > est.train_seconds  # probes cost the most
        probe = "probe less (a larger probe every, a probe budget, or itemize off), or " if probing else ""
        out.append(
            f"this run would take about {_seconds(est.seconds_per_step)} per step, beyond this server's "
            f"limit of {_seconds(limits.max_step_seconds)} (GATESCOPE_MAX_STEP_SECONDS): {probe}lower {SIZES}"
        )
    if est.memory_bytes > limits.max_run_memory_mb * 2**20:
        window = "set truncated BPTT" if config.tbptt is None else "lower the truncated BPTT window"
        out.append(
            f"this run would need about {est.memory_bytes / 2**20:,.0f} MB of memory, beyond this server's "
            f"limit of {limits.max_run_memory_mb:,} MB (GATESCOPE_MAX_RUN_MEMORY_MB): lower {SIZES}, "
            f"or {window}"
        )
    return out


def check_cost(config: RunCreate, limits: CostLimits) -> cost.Estimate:
    """The run's estimate; TooCostly (every problem in one sentence) if it is beyond `limits`."""
    est = estimate(config)
    found = problems(config, est, limits)
    if found:
        raise TooCostly("; ".join(found))
    return est

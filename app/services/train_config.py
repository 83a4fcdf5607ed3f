"""`to_train_config`: the one place a run's RunCreate becomes the core's TrainConfig.

What this is not: the RunCreate model (app.services.schemas, which re-exports this function) or
the training (app.core.engine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.cells import CellOptions
from app.core.engine import TrainConfig

if TYPE_CHECKING:
    from app.services.schemas import RunCreate


def to_train_config(run: RunCreate, threads: int = 1) -> TrainConfig:
    """The core's view of a run."""
    return TrainConfig(
        cell=run.cell,
        task=run.task.name,
        task_params=run.task.params,
        hidden_size=run.hidden_size,
        num_layers=run.num_layers,
        bidirectional=run.bidirectional,
        options=CellOptions(**run.slstm.model_dump()) if run.slstm is not None else CellOptions(),
        init=run.init.scheme,
        gain=run.init.gain,
        forget_bias=run.init.forget_bias,
        optimizer=run.optimizer.name,
        lr=run.optimizer.lr,
        momentum=run.optimizer.momentum,
        clip=run.clip.mode,
        clip_threshold=run.clip.threshold,
        tbptt=run.tbptt,
        batch_size=run.batch_size,
        steps=run.steps,
        seed=run.seed,
        probe_every=run.probe_every,
        probe_text=run.probe_text,
        itemize=run.itemize,
        probe_budget=run.probe_budget,
        threads=threads,
    )

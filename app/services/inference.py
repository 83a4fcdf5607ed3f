"""Using a run's trained weights after the fact: probe them on new input, or sample text.

What this is: `load_model` rebuilds a run's network from its config and checkpoint (the bytes
the worker saves with torch.save: {"config", "state_dict", "readout", "vocab"}); `inspect`
probes it on a person's text, raw input vectors or the run's own probe sample and returns the
probe's `frames.Frame` (the web layer answers its bytes or JSON, as for a stored frame): the
model's outputs (the readout's raw values) with its states and gradients; `sample` writes text
with a char_lm run.
These are blocking CPU work: the web layer calls them in a worker thread, a bounded few at once.

What this is not: training (worker.py), or a web route. Errors are ValueError with a sentence
for bad input (the web layer answers 422) and `NotCharLMError` for sampling from another task (409).
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from typing import cast

import torch

from app.core.engine import Trainer
from app.core.frames import Frame
from app.core.sampling import StepModel, sample_text
from app.core.tasks import Batch, CharLMTask, Task
from app.services.schemas import RunCreate, to_train_config


class NotCharLMError(Exception):
    """Sampling text needs a character language model (task char_lm)."""


@dataclass
class Loaded:
    trainer: Trainer  # its net holds the checkpoint's weights; its task is the run's task
    step: int  # the training step the weights are from (0 if the checkpoint does not say)


def load_model(config: RunCreate, checkpoint: bytes) -> Loaded:
    """The run's network with the checkpoint's weights (ValueError if the bytes do not fit the config)."""
    trainer = Trainer(to_train_config(config, threads=1))
    try:
        state = torch.load(io.BytesIO(checkpoint), weights_only=True, map_location="cpu")
        trainer.net.rnn.load_state_dict(state["state_dict"])
        trainer.net.readout.load_state_dict(state["readout"])
    except Exception as exc:  # a checkpoint from another config, or damaged bytes
        raise ValueError(f"the checkpoint does not fit this run's network: {exc}") from exc
    trainer.net.eval()
    step = state.get("step")
    return Loaded(trainer, step if isinstance(step, int) else 0)


def inputs_batch(task: Task, inputs: list[list[float]]) -> Batch:
    """A one-sample batch of raw input vectors (T, I). Targets are placeholders (class 0 or 0.0);
    loss terms sit where the task takes them: the last step for many-to-one tasks, else every step."""
    T = len(inputs)
    if T == 0:
        raise ValueError("inputs must have at least one step")
    widths = {len(row) for row in inputs}
    if widths != {task.input_size}:
        got = ", ".join(str(w) for w in sorted(widths))
        raise ValueError(
            f"inputs must have {task.input_size} values per step (the task's input size), got {got}"
        )
    x = torch.tensor(inputs, dtype=torch.float32)[None]  # (1, T, I)
    if task.loss_kind == "xent":
        targets = torch.zeros(1, T, dtype=torch.int64)
    else:
        targets = torch.zeros(1, T, task.output_size)
    if task.shape == "many_to_one":
        mask = torch.zeros(1, T)
        mask[0, -1] = 1.0
    else:
        mask = torch.ones(1, T)
    return Batch(inputs=x, targets=targets, mask=mask, tokens=None)


OWN_INPUTS_NOTE = (
    "Your own inputs have no targets: the loss and the targets are left out, and the gradients are "
    "those of placeholder targets (class 0, or 0.0), so read their shape, not their size."
)


def inspect(
    run_id: str,
    config: RunCreate,
    checkpoint: bytes,
    text: str | None = None,
    inputs: list[list[float]] | None = None,
    probe: bool = False,
) -> Frame:
    """The probe frame of the checkpoint on `text`, `inputs` or (`probe`) the run's own probe
    sample (exactly one), at full resolution. Its outputs are the readout's raw values (the
    prediction, or logits); its step is the training step the checkpoint is from.

    Text and the probe sample carry their targets, so the frame's loss and targets are real.
    Raw inputs have none: that frame has no loss and no targets, and says why in its notes."""
    if (text is not None) + (inputs is not None) + probe != 1:
        raise ValueError("give exactly one of text, inputs or probe")
    loaded = load_model(config, checkpoint)
    trainer = loaded.trainer
    sample: Batch | None = None  # None: the run's probe sample
    if text is not None:
        sample = trainer.task.encode_text(text)  # ValueError for tasks without text, or unknown characters
        if float(sample.mask.sum()) == 0:
            raise ValueError("text must be at least 2 characters long: the last one has no next character")
    elif inputs is not None:
        sample = inputs_batch(trainer.task, inputs)
    frame = trainer.probe(sample)
    frame.step = loaded.step
    if inputs is not None:
        frame.targets, frame.loss = None, math.nan
        frame.notes = [*frame.notes, OWN_INPUTS_NOTE]
    return Frame.from_probe(run_id, frame)


def sample(
    config: RunCreate,
    checkpoint: bytes,
    prime: str,
    length: int,
    temperature: float,
    seed: int | None = None,
) -> str:
    """`prime` and `length` characters written by a char_lm run (NotCharLMError for other tasks)."""
    if config.task.name != "char_lm":
        raise NotCharLMError(f"only char_lm runs can write text; this run's task is {config.task.name}")
    loaded = load_model(config, checkpoint)
    task = loaded.trainer.task
    assert isinstance(task, CharLMTask)
    generator = torch.Generator().manual_seed(seed if seed is not None else random.randrange(2**31))
    model = cast(StepModel, loaded.trainer.net)
    return sample_text(model, task, prime, length, temperature, generator)

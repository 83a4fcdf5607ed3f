"""The public shapes of a run: what a client sends (RunCreate) and gets back (RunPublic).

What this is: pydantic models with every bound the API enforces, so a 422 names the field and
the limit, and `to_train_config`, the one place a RunCreate becomes the core's TrainConfig.
What this is not: storage or transport; those live in storage.py, the web layer and frames.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.cells import CELLS, CellName
from app.core.engine import OPTIMIZERS, TrainConfig
from app.core.model import INIT_SCHEMES
from app.core.tasks import MAX_TEXT_CHARS, TASKS, CharLMTask, make_task

RunStatus = Literal["queued", "running", "completed", "stopped", "diverged", "failed", "interrupted"]
FINISHED: frozenset[str] = frozenset({"completed", "stopped", "diverged", "failed", "interrupted"})


class Limits(BaseModel):
    """Every bound the API checks, published in the catalog."""

    hidden_size: int = 512
    num_layers: int = 3
    batch_size: int = 512
    steps: int = 100_000
    probe_every: int = 10_000
    tbptt: int = 2000
    seed: int = 2**31 - 1
    text_chars: int = MAX_TEXT_CHARS
    sample_length: int = 10_000
    inspect_steps: int = 2000
    compare_cells: int = 4


LIMITS = Limits()


class InitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheme: Literal["default", "orthogonal", "identity", "normal"] = "default"
    gain: Annotated[float, Field(gt=0, le=10, description="scale of W_hh; <1 vanishes, >1 explodes")] = 1.0
    forget_bias: Annotated[float | None, Field(ge=-20, le=20, description="LSTM only: b_if + b_hf")] = None


class TaskSpec(BaseModel):
    """A task by name plus its parameters, e.g. {"name": "adding", "seq_len": 50}."""

    model_config = ConfigDict(extra="allow")
    name: Literal["char_lm", "adding", "copy", "recall", "tagging", "counting"]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        task = make_task(self.name, **self.params)  # raises ValueError naming the field and the limit
        if isinstance(task, CharLMTask) and self.model_extra is not None:
            self.model_extra.setdefault("corpus", task.corpus)  # the config says what is trained on
        return self


class OptimizerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["sgd", "rmsprop", "adam", "adagrad"] = "adam"
    lr: Annotated[float, Field(gt=0, le=10)] = 3e-3
    momentum: Annotated[float, Field(ge=0, lt=1, description="SGD only")] = 0.0


class ClipSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["off", "norm", "value"] = "norm"
    threshold: Annotated[float, Field(gt=0, le=1e6)] = 1.0


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cell: Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]
    hidden_size: Annotated[int, Field(ge=1, le=LIMITS.hidden_size)] = 64
    num_layers: Annotated[int, Field(ge=1, le=LIMITS.num_layers)] = 1
    bidirectional: bool = False
    init: InitSpec = InitSpec()
    task: TaskSpec
    optimizer: OptimizerSpec = OptimizerSpec()
    clip: ClipSpec = ClipSpec()
    tbptt: Annotated[int | None, Field(ge=1, le=LIMITS.tbptt, description="truncated BPTT window")] = None
    batch_size: Annotated[int, Field(ge=1, le=LIMITS.batch_size)] = 64
    steps: Annotated[int, Field(ge=1, le=LIMITS.steps)] = 2000
    seed: Annotated[int, Field(ge=0, le=LIMITS.seed)] = 0
    probe_every: Annotated[int, Field(ge=0, le=LIMITS.probe_every, description="0: first and last step")] = 10
    itemize: Annotated[
        bool, Field(description="itemized ||dl_s/dh_t|| in every probe (sequences up to 200 steps)")
    ] = True
    probe_text: Annotated[
        str | None, Field(min_length=2, max_length=1000, description="your own probe input (char_lm)")
    ] = None

    @model_validator(mode="after")
    def _check(self) -> RunCreate:
        if self.init.forget_bias is not None and self.cell != "lstm":
            raise ValueError("init.forget_bias applies to the lstm cell only")
        if self.probe_text is not None:
            make_task(self.task.name, **self.task.params).encode_text(self.probe_text)
        return self


class RunPublic(BaseModel):
    id: str
    status: RunStatus
    config: RunCreate
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int = 0  # steps trained so far
    steps: int  # steps asked for
    error: str | None = None
    group: str | None = None  # runs made together by /api/compare share a group


class RunsPublic(BaseModel):
    items: list[RunPublic]
    total: int


class CompareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: RunCreate
    cells: Annotated[
        list[Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]], Field(min_length=1, max_length=4)
    ] = [
        "rnn_tanh",
        "lstm",
        "gru",
    ]


class CompareGroup(BaseModel):
    group: str
    runs: list[RunPublic]


def to_train_config(run: RunCreate, threads: int = 1) -> TrainConfig:
    """The core's view of a run."""
    return TrainConfig(
        cell=run.cell,
        task=run.task.name,
        task_params=run.task.params,
        hidden_size=run.hidden_size,
        num_layers=run.num_layers,
        bidirectional=run.bidirectional,
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
        threads=threads,
    )


# the literal lists above must name exactly what the core offers
assert set(CELLS) == {"rnn_tanh", "rnn_relu", "lstm", "gru"}
assert set(OPTIMIZERS) == {"sgd", "rmsprop", "adam", "adagrad"}
assert set(INIT_SCHEMES) == {"default", "orthogonal", "identity", "normal"}
assert set(TASKS) == {"char_lm", "adding", "copy", "recall", "tagging", "counting"}
_cell: CellName = "lstm"

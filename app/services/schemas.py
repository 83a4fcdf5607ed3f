"""The public shapes of a run: what a client sends (RunCreate, AttachCreate) and gets back (RunPublic).

What this is: pydantic models with every bound the API enforces, so a 422 names the field and
the limit, and `to_train_config` (app.services.train_config), where a RunCreate becomes a TrainConfig.
Two kinds of run share RunPublic: "built-in" runs (config: RunCreate), which this server trains,
and "attached" runs (config: AttachedConfig), one per recurrent module a user's own script
watches (`gatescope.watch`), whose steps and frames arrive over the ingest endpoints (StepIn,
IngestReply, EndCreate; docs/api.md).
What this is not: storage or transport; those live in storage.py, the web layer and frames.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from app.core.cells import MODERN_CELLS, CellName, TorchCell
from app.core.engine import OPTIMIZERS
from app.core.model import INIT_SCHEMES, init_refusal
from app.core.probes import WatchSource
from app.core.tasks import MAX_TEXT_CHARS, TASKS, CharLMTask, make_task
from app.services.executors import ExecutorName
from app.services.lineage import ForkOf, ForkRef
from app.services.train_config import to_train_config as to_train_config
from gatescope.sink import EndStatus

RunStatus = Literal[
    "queued", "running", "paused", "completed", "stopped", "diverged", "failed", "interrupted"
]
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
    compare_runs: int = 8  # runs side by side: the compare page's columns, one group report's runs
    name_chars: int = 200  # a run's name, after trimming spaces
    tags: int = 20  # tags on one run
    tag_chars: int = 40  # one tag, after trimming spaces
    runs_page: int = 500  # runs in one page of GET /api/runs, or in one POST /api/runs/delete
    storage_mb: int = 100_000  # a run's storage budget (RunCreate.storage_mb, GATESCOPE_RUN_STORAGE_MB)


LIMITS = Limits()

# -- a run's name and tags (RunCreate; PATCH /api/runs/{id}, app.web.runs.RunPatch) ------------

TAG_CHARACTERS = re.compile(r"[\w .:/-]+")  # letters, digits, _, space and . : / -


def _run_name(value: str | None) -> str | None:
    """A name trimmed of spaces; blank or too long is an error (never silently None)."""
    if value is None:
        return None
    name = value.strip()
    if not name:
        raise ValueError("a run's name must not be blank: give it a character or more, or send null for none")
    if len(name) > LIMITS.name_chars:
        raise ValueError(f"a run's name may have at most {LIMITS.name_chars} characters, not {len(name)}")
    return name


def _tags(values: list[str]) -> list[str]:
    """Tags trimmed of spaces, each checked, duplicates dropped (the first kept, in order)."""
    out: list[str] = []
    for value in values:
        tag = value.strip()
        if not 1 <= len(tag) <= LIMITS.tag_chars:
            raise ValueError(f"a tag must have 1 to {LIMITS.tag_chars} characters, not {len(tag)}: {tag!r}")
        if not TAG_CHARACTERS.fullmatch(tag):
            raise ValueError(f"a tag may have only letters, digits, spaces and _ . : / -, not {tag!r}")
        if tag not in out:
            out.append(tag)
    return out


RunName = Annotated[
    str | None,
    Field(max_length=10 * LIMITS.name_chars, description=f"1 to {LIMITS.name_chars} characters"),
    AfterValidator(_run_name),
]
Tags = Annotated[
    list[Annotated[str, Field(max_length=10 * LIMITS.tag_chars)]],
    Field(
        max_length=LIMITS.tags, description=f"at most {LIMITS.tags}, each 1 to {LIMITS.tag_chars} characters"
    ),
    AfterValidator(_tags),
]


class InitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheme: Literal["default", "orthogonal", "identity", "normal"] = "default"
    gain: Annotated[float, Field(gt=0, le=10, description="scale of W_hh; <1 vanishes, >1 explodes")] = 1.0
    forget_bias: Annotated[
        float | None,
        Field(ge=-20, le=20, description="lstm, minlstm, slstm: the forget gate's bias (LSTM: b_if + b_hf)"),
    ] = None


class SLSTMSpec(BaseModel):
    """sLSTM's own options (app.core.cells.CellOptions)."""

    model_config = ConfigDict(extra="forbid")
    forget: Annotated[
        Literal["exp", "sigmoid"], Field(description="the forget gate: exp(f~) or sigmoid(f~)")
    ] = "exp"
    stabilizer: Annotated[
        bool, Field(description="the stabiliser state m_t; false: exp overflows, on purpose, to watch it")
    ] = True


TaskName = Literal["char_lm", "adding", "copy", "recall", "tagging", "counting"]


class TaskSpec(BaseModel):
    """A task by name plus its parameters, e.g. {"name": "adding", "seq_len": 50}."""

    model_config = ConfigDict(extra="allow")
    name: TaskName

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
    name: RunName = None  # the run's name as created (RunPublic.name is the current one)
    tags: Tags = []
    cell: CellName
    slstm: Annotated[SLSTMSpec | None, Field(description="slstm only: its forget gate and stabiliser")] = None
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
    probe_budget: Annotated[
        float | None,
        Field(gt=0, le=0.5, description="probing's share of training time; probe_every: the smallest gap"),
    ] = None
    probe_text: Annotated[
        str | None, Field(min_length=2, max_length=1000, description="your own probe input (char_lm)")
    ] = None
    storage_mb: Annotated[
        int | None, Field(ge=1, le=LIMITS.storage_mb, description="frames kept within; None: the server's")
    ] = None

    @model_validator(mode="after")
    def _check(self) -> RunCreate:
        if self.slstm is not None and self.cell != "slstm":
            raise ValueError(
                f"slstm (its forget gate and stabiliser) applies to the slstm cell only, not {self.cell}"
            )
        if self.bidirectional and self.cell in MODERN_CELLS:
            raise ValueError(f"bidirectional: {self.cell} runs one way only")
        refusal = init_refusal(self.cell, self.init.scheme, self.init.gain, self.init.forget_bias)
        if refusal:
            raise ValueError(f"init: {refusal}")
        if self.probe_text is not None:
            make_task(self.task.name, **self.task.params).encode_text(self.probe_text)
        return self


RunKind = Literal["built-in", "attached"]
ProbeSource = WatchSource


class AttachLimits(BaseModel):
    """Every bound the ingest endpoints check (docs/api.md)."""

    modules: int = 16
    input_size: int = 100_000
    hidden_size: int = 4096
    num_layers: int = 16
    parameters: int = 10_000
    steps_per_request: int = 1000
    name_chars: int = 200
    script_chars: int = 500
    error_chars: int = 2000
    every: int = 1_000_000


ATTACH_LIMITS = AttachLimits()
Text = Annotated[str, Field(max_length=200)]


class AttachedModule(BaseModel):
    """One watched nn.RNN / nn.LSTM / nn.GRU, as read off the module (app.core.attach.Layout)."""

    model_config = ConfigDict(extra="forbid")
    path: Annotated[str, Field(max_length=200, description='its name in the model, "" for the model itself')]
    cell: TorchCell
    input_size: Annotated[int, Field(ge=1, le=ATTACH_LIMITS.input_size)]
    hidden_size: Annotated[int, Field(ge=1, le=ATTACH_LIMITS.hidden_size)]
    num_layers: Annotated[int, Field(ge=1, le=ATTACH_LIMITS.num_layers)]
    bidirectional: bool
    batch_first: bool
    bias: bool
    dropout: Annotated[float, Field(ge=0, lt=1)]


class ClientInfo(BaseModel):
    """Who is sending: versions and the host the script runs on."""

    model_config = ConfigDict(extra="forbid")
    gatescope: Annotated[str, Field(max_length=50)]
    torch: Annotated[str, Field(max_length=50)]
    host: Text


Shape = Annotated[list[Annotated[int, Field(ge=0, le=2**31)]], Field(max_length=8)]
ParameterShapes = Annotated[
    dict[Annotated[str, Field(max_length=300)], Shape],
    Field(max_length=ATTACH_LIMITS.parameters, description="the model's named parameters and their shapes"),
]


class AttachCreate(BaseModel):
    """What `gatescope.watch` sends to attach: the script, how it probes, the watched modules."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str | None, Field(max_length=ATTACH_LIMITS.name_chars)] = None
    script: Annotated[str | None, Field(max_length=ATTACH_LIMITS.script_chars)] = None
    every: Annotated[int | None, Field(ge=1, le=ATTACH_LIMITS.every)] = None
    probe: ProbeSource = "live"
    probe_budget: Annotated[float | None, Field(gt=0, le=0.5)] = None
    storage_mb: Annotated[int | None, Field(ge=1, le=LIMITS.storage_mb)] = None  # None: the server's
    modules: Annotated[list[AttachedModule], Field(min_length=1, max_length=ATTACH_LIMITS.modules)]
    parameters: ParameterShapes = {}
    client: ClientInfo | None = None


class AttachedConfig(BaseModel):
    """The config of an attached run (one watched module), as the pages read it: the names of
    RunCreate where the idea is the same; no task (the script's own)."""

    model_config = ConfigDict(extra="forbid")
    cell: TorchCell
    hidden_size: int
    num_layers: int
    bidirectional: bool
    input_size: int
    batch_first: bool
    bias: bool
    dropout: float
    module: str  # the module's path in the model ("" for the model itself)
    name: str | None = None
    script: str | None = None
    every: int | None = None
    probe: ProbeSource = "live"
    probe_budget: float | None = None
    parameters: dict[str, list[int]] = {}
    client: ClientInfo | None = None
    stop_requested: bool = False  # someone pressed Stop on the dashboard
    dropped_frames: int = 0  # frames the script dropped because the server was slow or away

    @classmethod
    def of(cls, attach: AttachCreate, module: AttachedModule) -> AttachedConfig:
        """The config of the run of `module`, one of `attach.modules`."""
        return cls(
            **module.model_dump(exclude={"path"}),
            module=module.path,
            **attach.model_dump(include={"name", "script", "every", "probe", "probe_budget", "parameters"}),
            client=attach.client,
        )


def _config_kind(value: Any) -> str:
    """Which config a RunPublic carries: an AttachedConfig, or a dict without a task, is attached."""
    if isinstance(value, AttachedConfig) or (isinstance(value, dict) and "task" not in value):
        return "attached"
    return "built-in"


RunConfig = Annotated[
    Annotated[RunCreate, Tag("built-in")] | Annotated[AttachedConfig, Tag("attached")],
    Discriminator(_config_kind),
]


class RunPublic(BaseModel):
    id: str
    status: RunStatus
    kind: RunKind = "built-in"
    name: str | None = None  # the current name (PATCH /api/runs/{id}); an attached run's: its watch's
    tags: list[str] = []  # the current tags
    config: RunConfig  # RunCreate for built-in runs, AttachedConfig for attached ones
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int = 0  # steps trained so far
    steps: int  # steps asked for
    error: str | None = None
    group: str | None = None  # runs made together by /api/compare (or one watch) share a group
    queue_position: int | None = None  # queued runs ahead of it (0: it starts next); None unless queued
    fork: ForkOf | None = None  # where this run was forked from; None unless it is a fork
    forks: list[ForkRef] = []  # the run's own forks, oldest first
    storage_mb: int | None = None  # its storage budget (docs/api.md "Storage budget"); None: none
    storage_bytes: int = 0  # what its frames, snapshots, history rows and checkpoint take now
    notes: list[str] = []  # sentences about the run that are not errors (frames no longer recorded)
    executor: ExecutorName | None = None  # what trains it; None until it starts, and attached
    node: str | None = None  # the machine (local) or "<ip>/<node id>" (Ray) training it, once known

    @model_validator(mode="after")
    def _kind_matches(self) -> RunPublic:
        if (self.kind == "attached") != isinstance(self.config, AttachedConfig):
            wanted = "an attached run's config must be an AttachedConfig"
            raise ValueError(
                wanted if self.kind == "attached" else "a built-in run's config must be a RunCreate"
            )
        return self


class RunSummary(BaseModel):
    """A run as GET /api/runs lists it: RunPublic with a brief config (records.brief: no custom
    text, no parameter shapes); GET /api/runs/{id} has the whole config."""

    id: str
    status: RunStatus
    kind: RunKind = "built-in"
    name: str | None = None
    tags: list[str] = []
    config: dict[str, Any]  # the brief config
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int = 0
    steps: int
    error: str | None = None
    group: str | None = None
    queue_position: int | None = None  # as RunPublic's
    parent: str | None = None  # the run it was forked from (RunPublic.fork), None unless a fork


class CompareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: RunCreate
    cells: Annotated[list[CellName], Field(min_length=1, max_length=LIMITS.compare_cells)] = [
        "rnn_tanh",
        "lstm",
        "gru",
        "mingru",
    ]


class CompareGroup(BaseModel):
    """The runs of one group, in the order asked for (POST /api/compare, POST /api/groups)."""

    group: str
    runs: list[RunPublic]


# -- a group of runs started at once (POST /api/groups; the /learn demos) -----------------------

MAX_GROUP_RUNS = 8


class GroupRun(BaseModel):
    """One run of a group: its name, and its config (whose own name, if given, must be the same)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=10 * LIMITS.name_chars), AfterValidator(_run_name)]
    config: RunCreate

    @model_validator(mode="after")
    def _one_name(self) -> GroupRun:
        if self.config.name is not None and self.config.name != self.name:
            raise ValueError(
                f"config.name {self.config.name!r} differs from name {self.name!r}: give it once"
            )
        self.config = self.config.model_copy(update={"name": self.name})
        return self


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: Annotated[list[GroupRun], Field(min_length=1, max_length=MAX_GROUP_RUNS)]


class AttachedGroup(BaseModel):
    """The runs of one watch (one per module, in module order), or of one imported run file."""

    group: str
    runs: list[RunPublic]
    warnings: list[str] = []  # what an import found wrong but could keep (a truncated last record)


Finite = Annotated[float, Field(allow_inf_nan=False)]


class StepIn(BaseModel):
    """One training step of an attached run: the row built-in runs store (storage.METRIC_FIELDS).
    Floats are finite or null (the client sends non-finite values as null)."""

    model_config = ConfigDict(extra="forbid")
    step: Annotated[int, Field(ge=1, le=2**62)]
    loss: Finite | None = None
    metric: None = None
    grad_norm: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    grad_norm_clipped: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    clipped: bool = False
    param_grad_norms: Annotated[
        dict[
            Annotated[str, Field(max_length=300)], Annotated[float | None, Field(ge=0, allow_inf_nan=False)]
        ],
        Field(max_length=ATTACH_LIMITS.parameters),
    ] = {}
    update_ratio: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    lr: Finite | None = None
    seconds: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None


class StepsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=ATTACH_LIMITS.steps_per_request)]

    @model_validator(mode="after")
    def _increasing(self) -> StepsIn:
        check_increasing(self.steps)
        return self


def check_increasing(steps: list[StepIn]) -> None:
    """ValueError unless the steps are strictly increasing."""
    for before, after in pairwise(steps):
        if after.step <= before.step:
            raise ValueError(
                f"steps must be strictly increasing: step {after.step} follows step {before.step}"
            )


class EndCreate(BaseModel):
    """How the script ended its run."""

    model_config = ConfigDict(extra="forbid")
    status: EndStatus
    error: Annotated[str | None, Field(max_length=ATTACH_LIMITS.error_chars)] = None
    dropped_frames: Annotated[int, Field(ge=0, le=2**62)] = 0


class IngestReply(BaseModel):
    """What every ingest request answers: where the run stands, and whether to stop."""

    run_id: str
    step: int  # the last stored step
    frames: int  # frames received (stored, thinned since, or not recorded below the disk's floor)
    stop: bool  # someone pressed Stop on the dashboard (or the run has ended)


# the literal lists above must name exactly what the core offers
assert set(OPTIMIZERS) == {"sgd", "rmsprop", "adam", "adagrad"}
assert set(INIT_SCHEMES) == {"default", "orthogonal", "identity", "normal"}
assert set(TASKS) == {"char_lm", "adding", "copy", "recall", "tagging", "counting"}
_cell: CellName = "lstm"

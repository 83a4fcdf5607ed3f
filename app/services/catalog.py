"""The catalog: everything a client can choose when it starts a run, and the constants the pages share.

What this is: `catalog()` describes the cells (with their gates, states and each one's view: title,
kind, caption), the tasks (title, Karpathy
shape, doc, parameters as ParamSpecs, loss kind, metric and the baseline loss at the default
parameters), optimizers, init schemes, clip modes, the API's LIMITS, and the constants the pages
would otherwise restate: `display` (the display frame's sizes, the log floor of gradient views),
`statuses` (all and finished), `defaults` (a RunCreate's default values, read off the pydantic
model), and the presets, lessons and sweeps of app/services/lessons.py.
The cells and `display` are app.core.display's view catalog (what the one-file
report and the notebook widget carry without a server).
Served as GET /api/catalog; tests/test_constants.py keeps static/js from restating any of it.

What this is not: validation (schemas.py and app.core.tasks check every value) or a web route.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, get_args

from pydantic import BaseModel

from app.core.cells import GateKind
from app.core.display import view_catalog
from app.core.engine import OPTIMIZERS
from app.core.model import INIT_SCHEMES
from app.core.tasks import TASKS, ParamSpec, make_task
from app.services.lessons import Lesson, Preset, lessons, presets, sweep_presets
from app.services.schemas import FINISHED, LIMITS, Limits, RunCreate, RunStatus, SLSTMSpec
from app.services.sweep_schemas import SweepPreset

INIT_DOCS: dict[str, str] = {
    "default": "PyTorch's U(-1/sqrt(H), 1/sqrt(H)), W_hh scaled by gain",
    "orthogonal": "W_hh = gain * a random orthogonal matrix (Saxe et al. 2014)",
    "identity": "W_hh = gain * I, recurrent biases 0 (IRNN, Le et al. 2015)",
    "normal": "W_hh ~ N(0, gain^2 / H): gain < 1 vanishes, gain > 1 explodes",
}
OPTIMIZER_DOCS: dict[str, str] = {
    "sgd": "stochastic gradient descent, with optional momentum",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adagrad": "Adagrad",
}
CLIP_DOCS: dict[str, str] = {
    "off": "no clipping",
    "norm": "scale the whole gradient down to the threshold when its global norm exceeds it",
    "value": "clamp every gradient entry to [-threshold, threshold]",
}


class Choice(BaseModel):
    name: str
    doc: str


class ViewInfo(BaseModel):
    """One gate's or state's heatmap of a cell."""

    title: str
    kind: GateKind  # sigmoid gates lie in [0, 1], tanh ones in [-1, 1], a value on the layer's ±max
    caption: str  # what to look for in it


class CellInfo(BaseModel):
    name: str
    doc: str
    gates: list[str]  # in the order of its weight rows
    states: list[str]  # what it carries besides h (LSTM: c; sLSTM: c, n, m)
    w_hh: bool  # it has recurrent weights W_hh (minGRU, minLSTM: none, their gates read x_t alone)
    views: dict[str, ViewInfo]  # each gate's and state's heatmap
    bidirectional: bool  # it can run both ways (torch's cells; minGRU, minLSTM, sLSTM: one way only)
    options: list[CellOption]  # its own settings, RunCreate.<cell name> (sLSTM: forget gate, stabiliser)


class CellOption(BaseModel):
    """One of a cell's own settings, read off its spec model (e.g. schemas.SLSTMSpec)."""

    name: str
    kind: Literal["choice", "bool"]
    default: Any
    choices: list[str] | None  # a choice's values
    doc: str


CELL_SPECS: dict[str, type[BaseModel]] = {"slstm": SLSTMSpec}  # RunCreate.slstm


def cell_options(cell: str) -> list[CellOption]:
    """The settings of RunCreate.<cell>, in its spec's field order (none for most cells)."""
    spec = CELL_SPECS.get(cell)
    if spec is None:
        return []
    out: list[CellOption] = []
    for name, info in spec.model_fields.items():
        choices = get_args(info.annotation)
        out.append(
            CellOption(
                name=name,
                kind="bool" if info.annotation is bool else "choice",
                default=info.default,
                choices=None if info.annotation is bool else [str(c) for c in choices],
                doc=info.description or name,
            )
        )
    return out


class ParamInfo(BaseModel):
    name: str
    kind: Literal["int", "float", "str", "choice"]
    default: Any
    minimum: float | None
    maximum: float | None
    choices: list[str] | None
    doc: str


class TaskInfo(BaseModel):
    name: str
    title: str
    shape: str
    doc: str
    params: list[ParamInfo]
    loss_kind: str
    metric_name: str
    baseline_loss: float  # at the default parameters


class Display(BaseModel):
    max_t: int  # a display frame has at most this many timesteps (Frame.pooled)
    max_units: int  # ... and this many units per layer
    floor: int  # app.core.display.LOG_FLOOR


class Statuses(BaseModel):
    all: list[str]  # every run status, in lifecycle order
    finished: list[str]  # the statuses a run never leaves


class Catalog(BaseModel):
    cells: list[CellInfo]
    tasks: list[TaskInfo]
    optimizers: list[Choice]
    init_schemes: list[Choice]
    clip_modes: list[Choice]
    limits: Limits
    display: Display
    statuses: Statuses
    defaults: dict[str, Any]  # every RunCreate field that has a default, with it
    presets: list[Preset]
    lessons: list[Lesson]
    sweeps: list[SweepPreset]  # ready-made sweeps (POST /api/sweeps)


# -- presets ----------------------------------------------------------------------------------

# -- the rest of the catalog -----------------------------------------------------------------


def run_defaults() -> dict[str, Any]:
    """Every RunCreate field that has a default, with it (nested specs as their JSON)."""
    out: dict[str, Any] = {}
    for name, info in RunCreate.model_fields.items():
        if not info.is_required():
            value = info.get_default(call_default_factory=True)
            out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def _param(spec: ParamSpec) -> ParamInfo:
    return ParamInfo(
        name=spec.name,
        kind=spec.kind,
        default=spec.default,
        minimum=spec.minimum,
        maximum=spec.maximum,
        choices=list(spec.choices) if spec.choices is not None else None,
        doc=spec.doc,
    )


def _task(name: str) -> TaskInfo:
    cls = TASKS[name]
    return TaskInfo(
        name=name,
        title=cls.title,
        shape=cls.shape,
        doc=cls.doc,
        params=[_param(p) for p in cls.params],
        loss_kind=cls.loss_kind,
        metric_name=cls.metric_name,
        baseline_loss=make_task(name).baseline_loss,
    )


@cache
def catalog() -> Catalog:
    """The whole catalog (built once: the baselines need a task each); its cells, display and gate
    captions are app.core.display's view catalog."""
    view = view_catalog()
    return Catalog(
        cells=[
            CellInfo.model_validate({**cell, "options": cell_options(cell["name"])}) for cell in view["cells"]
        ],
        tasks=[_task(name) for name in TASKS],
        optimizers=[Choice(name=o, doc=OPTIMIZER_DOCS[o]) for o in OPTIMIZERS],
        init_schemes=[Choice(name=s, doc=INIT_DOCS[s]) for s in INIT_SCHEMES],
        clip_modes=[Choice(name=m, doc=CLIP_DOCS[m]) for m in CLIP_DOCS],
        limits=LIMITS,
        display=Display.model_validate(view["display"]),
        statuses=Statuses(all=list(get_args(RunStatus)), finished=sorted(FINISHED)),
        defaults=run_defaults(),
        presets=presets(),
        lessons=lessons(),
        sweeps=sweep_presets(),
    )

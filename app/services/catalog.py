"""The catalog: everything a client can choose when it starts a run, and the constants the pages share.

What this is: `catalog()` describes the cells (with their gates), the tasks (title, Karpathy
shape, doc, parameters as ParamSpecs, loss kind, metric and the baseline loss at the default
parameters), optimizers, init schemes, clip modes, the API's LIMITS, and the constants the pages
would otherwise restate: `display` (the display frame's sizes, the log floor of gradient views,
each gate's kind), `statuses` (all and finished), `defaults` (a RunCreate's default values, read
off the pydantic model), `gate_captions`, and the presets, lessons and sweeps of app/services/lessons.py.
Served as GET /api/catalog; tests/test_constants.py keeps static/js from restating any of it.

What this is not: validation (schemas.py and app.core.tasks check every value) or a web route.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, get_args

from pydantic import BaseModel

from app.core.cells import CELLS, GATES
from app.core.engine import OPTIMIZERS
from app.core.frames import MAX_T, MAX_UNITS
from app.core.model import INIT_SCHEMES
from app.core.probes import SIGMOID_GATES
from app.core.tasks import TASKS, ParamSpec, make_task
from app.services.lessons import Lesson, Preset, lessons, presets, sweep_presets
from app.services.schemas import FINISHED, LIMITS, Limits, RunCreate, RunStatus
from app.services.sweep_schemas import SweepPreset

LOG_FLOOR = -30  # log10 of the smallest gradient norm the pages tell apart: below it, the floor colour

CELL_DOCS: dict[str, str] = {
    "rnn_tanh": "Elman RNN, h_t = tanh(W_ih x_t + W_hh h_(t-1) + b): the one whose gradients vanish.",
    "rnn_relu": "Elman RNN with ReLU; with identity init (IRNN) it can hold values over long spans.",
    "lstm": "Long short-term memory: input i, forget f, cell g and output o gates around a cell state c.",
    "gru": "Gated recurrent unit: reset r, update z and candidate n gates, no separate cell state.",
}
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
# what to look for in each gate's heatmap (and the LSTM cell state's), shown under the run page's views
GATE_CAPTIONS: dict[str, str] = {
    "f": "Forget gate f (0..1). A forget gate near 1 (saturated) keeps the cell state, and the gradient, "
    "alive; near 0 it wipes the memory.",
    "i": "Input gate i (0..1): how much of the candidate g is written into the cell at each step. Look for "
    "it opening at the inputs that matter.",
    "o": "Output gate o (0..1): how much of the cell state is shown as h_t.",
    "g": "Candidate g (tanh, −1..1): the value the input gate may write into the cell.",
    "c": "Cell state c_t, the LSTM's memory, on a symmetric scale (±max|c|). Rows that stay steady across "
    "t are memories being kept.",
    "r": "Reset gate r (0..1): how much of h_(t−1) the candidate n may read. Near 0 the unit forgets its "
    "past when proposing n.",
    "z": "Update gate z (0..1): near 1 keeps the old state (and passes its gradient back unchanged), near 0 "
    "overwrites it with n.",
    "n": "Candidate n (tanh, −1..1): the new value the update gate may mix in.",
}


class Choice(BaseModel):
    name: str
    doc: str


class CellInfo(BaseModel):
    name: str
    gates: list[str]
    doc: str


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


GateKind = Literal["sigmoid", "tanh"]


class Display(BaseModel):
    max_t: int  # a display frame has at most this many timesteps (Frame.pooled)
    max_units: int  # ... and this many units per layer
    floor: int  # LOG_FLOOR
    gate_kinds: dict[str, GateKind]  # sigmoid gates lie in [0, 1], tanh ones in [-1, 1]


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
    gate_captions: dict[str, str]
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


def display() -> Display:
    gates = dict.fromkeys(g for cell in CELLS for g in GATES[cell])
    kinds: dict[str, GateKind] = {g: "sigmoid" if g in SIGMOID_GATES else "tanh" for g in gates}
    return Display(max_t=MAX_T, max_units=MAX_UNITS, floor=LOG_FLOOR, gate_kinds=kinds)


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
    """The whole catalog (built once: the baselines need a task each)."""
    return Catalog(
        cells=[CellInfo(name=c, gates=list(GATES[c]), doc=CELL_DOCS[c]) for c in CELLS],
        tasks=[_task(name) for name in TASKS],
        optimizers=[Choice(name=o, doc=OPTIMIZER_DOCS[o]) for o in OPTIMIZERS],
        init_schemes=[Choice(name=s, doc=INIT_DOCS[s]) for s in INIT_SCHEMES],
        clip_modes=[Choice(name=m, doc=CLIP_DOCS[m]) for m in CLIP_DOCS],
        limits=LIMITS,
        display=display(),
        statuses=Statuses(all=list(get_args(RunStatus)), finished=sorted(FINISHED)),
        defaults=run_defaults(),
        gate_captions=GATE_CAPTIONS,
        presets=presets(),
        lessons=lessons(),
        sweeps=sweep_presets(),
    )

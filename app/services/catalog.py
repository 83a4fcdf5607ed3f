"""The catalog: everything a client can choose when it starts a run, and the constants the pages share.

What this is: `catalog()` describes the cells (with their gates), the tasks (title, Karpathy
shape, doc, parameters as ParamSpecs, loss kind, metric and the baseline loss at the default
parameters), optimizers, init schemes, clip modes, the API's LIMITS, and the constants the pages
would otherwise restate: `display` (the display frame's sizes, the log floor of gradient views,
each gate's kind), `statuses` (all and finished), `defaults` (a RunCreate's default values, read
off the pydantic model), `gate_captions`, `PRESETS` (classic experiments, each a valid RunCreate
plus a sentence on what to look for and, where the point is a comparison, the cells to compare or
variant runs to start beside it) and `LESSONS` (the /learn page's one-click demos).
Served as GET /api/catalog; tests/test_constants.py keeps static/js from restating any of it.

What this is not: validation (schemas.py and app.core.tasks check every value) or a web route.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, get_args

from pydantic import BaseModel, model_validator

from app.core.cells import CELLS, GATES
from app.core.engine import OPTIMIZERS
from app.core.model import INIT_SCHEMES
from app.core.probes import SIGMOID_GATES
from app.core.tasks import TASKS, ParamSpec, make_task
from app.services.frames import MAX_T, MAX_UNITS
from app.services.schemas import FINISHED, LIMITS, CompareCreate, Limits, RunCreate, RunStatus

CellChoice = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]
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


class Preset(BaseModel):
    name: str
    title: str
    look_for: str  # one sentence: what to watch
    config: RunCreate
    compare: list[CellChoice] | None = None  # start with POST /api/compare over these cells
    variants: list[RunCreate] = []  # or start these runs beside `config`, each differing in one setting


LessonView = Literal["loss", "hidden", "itemized", "gradflow", "gradnorm", "gate-f", "gate-i", "gate-o", "c"]


class LessonRun(BaseModel):
    title: str  # the run's panel heading
    config: RunCreate  # POST /api/runs


class Lesson(BaseModel):
    """One /learn demo: runs to start (or one comparison) and the views its panels draw."""

    name: str  # the section's data-demo key in templates/learn.html
    views: list[LessonView]
    runs: list[LessonRun] = []
    compare: CompareCreate | None = None  # POST /api/compare instead of `runs`

    @model_validator(mode="after")
    def _one_way_to_start(self) -> Lesson:
        if bool(self.runs) == (self.compare is not None):
            raise ValueError(f"lesson {self.name!r} needs either runs or a comparison, not both or neither")
        return self


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


# -- presets ----------------------------------------------------------------------------------

_ADDING_100 = {"name": "adding", "seq_len": 100}
_TAGGING = {"name": "tagging", "seq_len": 20}
_EXPLODING = {
    "cell": "rnn_tanh",
    "hidden_size": 32,
    "init": {"scheme": "normal", "gain": 2.0},
    "task": {"name": "adding", "seq_len": 50},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "steps": 1000,
    "probe_every": 20,
}
PRESETS: tuple[dict[str, Any], ...] = (
    {
        "name": "vanishing",
        "title": "Vanishing gradients: tanh RNN vs LSTM vs GRU on the adding problem, T = 100",
        "look_for": (
            "In the probe's ||dl_T/dh_t|| the tanh RNN's gradient falls by orders of magnitude within a "
            "few dozen steps back and its loss stays at the 1/6 baseline, while the gated cells "
            "carry the gradient across all 100 steps and learn."
        ),
        "config": {
            "cell": "rnn_tanh",
            "hidden_size": 32,
            "task": _ADDING_100,
            "steps": 3000,
            "probe_every": 50,
        },
        "compare": ["rnn_tanh", "lstm", "gru"],
    },
    {
        "name": "exploding",
        "title": "Exploding gradients: tanh RNN with W_hh ~ N(0, 4/H), clipping at norm 1 vs off",
        "look_for": (
            "The gradient norm jumps by orders of magnitude (to ~300 here). Clipped, each update stays "
            "bounded and the loss settles near the baseline; unclipped, one huge step throws the "
            "weights out and the run diverges within about a hundred steps."
        ),
        "config": {**_EXPLODING, "clip": {"mode": "norm", "threshold": 1.0}},
        "variants": [{**_EXPLODING, "clip": {"mode": "off"}}],
    },
    {
        "name": "hello",
        "title": 'char-rnn on "hello": learn h -> e -> l -> l -> o',
        "look_for": (
            "Within a few hundred steps the loss drops to near zero; the hidden state after the "
            "first 'l' and the second 'l' must differ, since one predicts 'l' and the other 'o'."
        ),
        "config": {
            "cell": "lstm",
            "hidden_size": 8,
            "task": {"name": "char_lm", "corpus": "hello"},
            "batch_size": 1,
            "optimizer": {"name": "adam", "lr": 0.01},
            "steps": 300,
            "probe_every": 10,
        },
    },
    {
        "name": "adding",
        "title": "The adding problem with an LSTM, T = 50",
        "look_for": (
            "The loss sits at the 1/6 baseline for a while, then drops once the forget gate learns "
            "to hold the two marked values; the gates saturate at the marker steps."
        ),
        "config": {
            "cell": "lstm",
            "hidden_size": 32,
            "task": {"name": "adding", "seq_len": 50},
            "steps": 2000,
        },
    },
    {
        "name": "copy",
        "title": "Copy memory: hold 5 symbols across a delay of 20 steps",
        "look_for": (
            "The loss first reaches the memoryless baseline (blanks, then guesses), then falls below "
            "it as the network learns to keep the symbols; the itemized gradient links each output "
            "to its symbol 25 steps back."
        ),
        "config": {
            "cell": "lstm",
            "hidden_size": 64,
            "task": {"name": "copy", "seq_len": 20, "n_symbols": 5},
            "steps": 3000,
            "probe_every": 50,
        },
    },
    {
        "name": "shakespeare",
        "title": "char-rnn on Hamlet",
        "look_for": (
            "Bits per character fall from about 4.5 towards 2; sample the run as it trains and watch "
            "words and line breaks appear."
        ),
        "config": {
            "cell": "lstm",
            "hidden_size": 128,
            "task": {"name": "char_lm", "corpus": "shakespeare", "seq_len": 100},
            "batch_size": 32,
            "steps": 5000,
            "probe_every": 100,
            "tbptt": 50,
            "probe_text": "To be, or not to be, that is the question:",
        },
    },
    {
        "name": "bidirectional",
        "title": "Tagging local peaks: a bidirectional LSTM vs a one-way LSTM",
        "look_for": (
            "The one-way LSTM cannot see the next digit, so about 87% accuracy is its ceiling; the "
            "bidirectional one reads both neighbours and gets close to 100%."
        ),
        "config": {"cell": "lstm", "hidden_size": 32, "bidirectional": True, "task": _TAGGING, "steps": 1500},
        "variants": [{"cell": "lstm", "hidden_size": 32, "task": _TAGGING, "steps": 1500}],
    },
)

# -- lessons: the /learn page's demos, small enough to train in seconds --------------------------

_TINY = {
    "hidden_size": 16,
    "batch_size": 32,
    "steps": 200,
    "probe_every": 10,
    "optimizer": {"name": "adam", "lr": 0.01},
}
_TINY_GRU = {**_TINY, "cell": "gru"}
_ADDING_50 = {
    "hidden_size": 32,
    "task": {"name": "adding", "seq_len": 50},
    "steps": 400,
    "probe_every": 20,
    "batch_size": 32,
}
_EXPLODING_30 = {**_EXPLODING, "task": {"name": "adding", "seq_len": 30}, "steps": 300, "batch_size": 32}
LESSONS: tuple[dict[str, Any], ...] = (
    {
        "name": "shapes",
        "views": ["hidden"],
        "runs": [
            {
                "title": "one-to-one: recall, T = 1",
                "config": {**_TINY_GRU, "task": {"name": "recall", "seq_len": 1, "n_classes": 4}},
            },
            {
                "title": "one-to-many: counting",
                "config": {**_TINY_GRU, "task": {"name": "counting", "seq_len": 10, "n_classes": 10}},
            },
            {
                "title": "many-to-one: recall",
                "config": {**_TINY_GRU, "task": {"name": "recall", "seq_len": 10, "n_classes": 4}},
            },
            {
                "title": "many-to-many: copy",
                "config": {**_TINY_GRU, "task": {"name": "copy", "seq_len": 4, "n_symbols": 3}},
            },
            {
                "title": "bidirectional: tagging",
                "config": {**_TINY_GRU, "bidirectional": True, "task": {"name": "tagging", "seq_len": 12}},
            },
        ],
    },
    {
        "name": "hello",
        "views": ["loss", "hidden"],
        "runs": [
            {
                "title": 'LSTM on "hello"',
                "config": {
                    "cell": "lstm",
                    "hidden_size": 8,
                    "task": {"name": "char_lm", "corpus": "hello"},
                    "batch_size": 1,
                    "optimizer": {"name": "adam", "lr": 0.02},
                    "steps": 300,
                    "probe_every": 10,
                },
            }
        ],
    },
    {
        "name": "bptt",
        "views": ["itemized"],
        "runs": [
            {
                "title": "tanh RNN on Hamlet, T = 30",
                "config": {
                    "cell": "rnn_tanh",
                    "hidden_size": 32,
                    "task": {"name": "char_lm", "corpus": "shakespeare", "seq_len": 30},
                    "batch_size": 16,
                    "steps": 200,
                    "probe_every": 20,
                    "optimizer": {"name": "adam", "lr": 0.005},
                },
            }
        ],
    },
    {
        "name": "vanishing",
        "views": ["gradflow"],
        "compare": {"config": {**_ADDING_50, "cell": "rnn_tanh"}, "cells": ["rnn_tanh", "lstm", "gru"]},
    },
    {
        "name": "exploding",
        "views": ["gradnorm", "loss"],
        "runs": [
            {
                "title": "clipped at norm 1",
                "config": {**_EXPLODING_30, "clip": {"mode": "norm", "threshold": 1}},
            },
            {"title": "no clipping", "config": {**_EXPLODING_30, "clip": {"mode": "off", "threshold": 1}}},
        ],
    },
    {
        "name": "remedies",
        "views": ["gradflow"],
        "runs": [
            {
                "title": "IRNN: ReLU, W_hh = I",
                "config": {
                    **_ADDING_50,
                    "cell": "rnn_relu",
                    "init": {"scheme": "identity", "gain": 1},
                    "optimizer": {"name": "adam", "lr": 0.001},
                },
            },
            {
                "title": "tanh RNN, truncated BPTT k = 10",
                "config": {**_ADDING_50, "cell": "rnn_tanh", "tbptt": 10},
            },
            {
                "title": "tanh RNN with RMSprop",
                "config": {**_ADDING_50, "cell": "rnn_tanh", "optimizer": {"name": "rmsprop", "lr": 0.001}},
            },
        ],
    },
    {
        "name": "gates",
        "views": ["gate-f", "gate-i", "gate-o", "c"],
        "runs": [
            {
                "title": "LSTM, adding T = 30, forget bias 1",
                "config": {
                    "cell": "lstm",
                    "hidden_size": 16,
                    "init": {"forget_bias": 1},
                    "task": {"name": "adding", "seq_len": 30},
                    "batch_size": 32,
                    "steps": 500,
                    "probe_every": 20,
                    "optimizer": {"name": "adam", "lr": 0.01},
                },
            }
        ],
    },
)


def presets() -> list[Preset]:
    """PRESETS, each validated: a wrong value fails at import of the catalog, not on a click."""
    return [Preset.model_validate(p) for p in PRESETS]


def lessons() -> list[Lesson]:
    """LESSONS, each validated like the presets."""
    return [Lesson.model_validate(lesson) for lesson in LESSONS]


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
    )

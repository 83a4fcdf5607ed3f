"""The catalog: everything a client can choose when it starts a run, and ready-made presets.

What this is: `catalog()` describes the cells (with their gates), the tasks (title, Karpathy
shape, doc, parameters as ParamSpecs, loss kind, metric and the baseline loss at the default
parameters), optimizers, init schemes, clip modes, the API's LIMITS, and `PRESETS`: classic
experiments, each a valid RunCreate plus a sentence on what to look for and, where the point is a
comparison, the cells to compare (POST /api/compare) or variant runs to start beside it.

What this is not: validation (schemas.py and app.core.tasks check every value) or a web route.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel

from app.core.cells import CELLS, GATES
from app.core.engine import OPTIMIZERS
from app.core.model import INIT_SCHEMES
from app.core.tasks import TASKS, ParamSpec, make_task
from app.services.schemas import LIMITS, Limits, RunCreate

CellChoice = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]

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


class Catalog(BaseModel):
    cells: list[CellInfo]
    tasks: list[TaskInfo]
    optimizers: list[Choice]
    init_schemes: list[Choice]
    clip_modes: list[Choice]
    limits: Limits
    presets: list[Preset]


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


def _run(data: dict[str, Any]) -> RunCreate:
    return RunCreate.model_validate(data)


def presets() -> list[Preset]:
    adding_100 = {"name": "adding", "seq_len": 100}
    tagging = {"name": "tagging", "seq_len": 20}
    exploding = {
        "cell": "rnn_tanh",
        "hidden_size": 32,
        "init": {"scheme": "normal", "gain": 2.0},
        "task": {"name": "adding", "seq_len": 50},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "steps": 1000,
        "probe_every": 20,
    }
    return [
        Preset(
            name="vanishing",
            title="Vanishing gradients: tanh RNN vs LSTM vs GRU on the adding problem, T = 100",
            look_for=(
                "In the probe's ||dl_T/dh_t|| the tanh RNN's gradient falls by orders of magnitude within a "
                "few dozen steps back and its loss stays at the 1/6 baseline, while the gated cells "
                "carry the gradient across all 100 steps and learn."
            ),
            config=_run(
                {"cell": "rnn_tanh", "hidden_size": 32, "task": adding_100, "steps": 3000, "probe_every": 50}
            ),
            compare=["rnn_tanh", "lstm", "gru"],
        ),
        Preset(
            name="exploding",
            title="Exploding gradients: tanh RNN with W_hh ~ N(0, 4/H), clipping at norm 1 vs off",
            look_for=(
                "The gradient norm jumps by orders of magnitude (to ~300 here). Clipped, each update stays "
                "bounded and the loss settles near the baseline; unclipped, one huge step throws the "
                "weights out and the run diverges within about a hundred steps."
            ),
            config=_run({**exploding, "clip": {"mode": "norm", "threshold": 1.0}}),
            variants=[_run({**exploding, "clip": {"mode": "off"}})],
        ),
        Preset(
            name="hello",
            title='char-rnn on "hello": learn h -> e -> l -> l -> o',
            look_for=(
                "Within a few hundred steps the loss drops to near zero; the hidden state after the "
                "first 'l' and the second 'l' must differ, since one predicts 'l' and the other 'o'."
            ),
            config=_run(
                {
                    "cell": "lstm",
                    "hidden_size": 8,
                    "task": {"name": "char_lm", "corpus": "hello"},
                    "batch_size": 1,
                    "optimizer": {"name": "adam", "lr": 0.01},
                    "steps": 300,
                    "probe_every": 10,
                }
            ),
        ),
        Preset(
            name="adding",
            title="The adding problem with an LSTM, T = 50",
            look_for=(
                "The loss sits at the 1/6 baseline for a while, then drops once the forget gate learns "
                "to hold the two marked values; the gates saturate at the marker steps."
            ),
            config=_run(
                {"cell": "lstm", "hidden_size": 32, "task": {"name": "adding", "seq_len": 50}, "steps": 2000}
            ),
        ),
        Preset(
            name="copy",
            title="Copy memory: hold 5 symbols across a delay of 20 steps",
            look_for=(
                "The loss first reaches the memoryless baseline (blanks, then guesses), then falls below "
                "it as the network learns to keep the symbols; the itemized gradient links each output "
                "to its symbol 25 steps back."
            ),
            config=_run(
                {
                    "cell": "lstm",
                    "hidden_size": 64,
                    "task": {"name": "copy", "seq_len": 20, "n_symbols": 5},
                    "steps": 3000,
                    "probe_every": 50,
                }
            ),
        ),
        Preset(
            name="shakespeare",
            title="char-rnn on Hamlet",
            look_for=(
                "Bits per character fall from about 4.5 towards 2; sample the run as it trains and watch "
                "words and line breaks appear."
            ),
            config=_run(
                {
                    "cell": "lstm",
                    "hidden_size": 128,
                    "task": {"name": "char_lm", "corpus": "shakespeare", "seq_len": 100},
                    "batch_size": 32,
                    "steps": 5000,
                    "probe_every": 100,
                    "tbptt": 50,
                    "probe_text": "To be, or not to be, that is the question:",
                }
            ),
        ),
        Preset(
            name="bidirectional",
            title="Tagging local peaks: a bidirectional LSTM vs a one-way LSTM",
            look_for=(
                "The one-way LSTM cannot see the next digit, so about 87% accuracy is its ceiling; the "
                "bidirectional one reads both neighbours and gets close to 100%."
            ),
            config=_run(
                {"cell": "lstm", "hidden_size": 32, "bidirectional": True, "task": tagging, "steps": 1500}
            ),
            variants=[_run({"cell": "lstm", "hidden_size": 32, "task": tagging, "steps": 1500})],
        ),
    ]


@cache
def catalog() -> Catalog:
    """The whole catalog (built once: the baselines need a task each)."""
    tasks = [
        TaskInfo(
            name=name,
            title=cls.title,
            shape=cls.shape,
            doc=cls.doc,
            params=[_param(p) for p in cls.params],
            loss_kind=cls.loss_kind,
            metric_name=cls.metric_name,
            baseline_loss=make_task(name).baseline_loss,
        )
        for name, cls in TASKS.items()
    ]
    return Catalog(
        cells=[CellInfo(name=c, gates=list(GATES[c]), doc=CELL_DOCS[c]) for c in CELLS],
        tasks=tasks,
        optimizers=[Choice(name=o, doc=OPTIMIZER_DOCS[o]) for o in OPTIMIZERS],
        init_schemes=[Choice(name=s, doc=INIT_DOCS[s]) for s in INIT_SCHEMES],
        clip_modes=[Choice(name=m, doc=CLIP_DOCS[m]) for m in CLIP_DOCS],
        limits=LIMITS,
        presets=presets(),
    )

"""Ready-made experiments: the dashboard's presets and sweeps, and the /learn page's lessons.

What this is: `PRESETS` (classic experiments, each a valid RunCreate plus a sentence on what to
look for and, where the point is a comparison, the cells to compare or variant runs to start
beside it) and `LESSONS` (the /learn page's one-click demos: the runs one POST /api/groups starts,
each named by its panel's title, and the views their panels draw) and `SWEEPS` (ready-made
sweeps: a POST /api/sweeps body, app.services.sweep_schemas.SweepPreset), as data, with
`presets()`, `lessons()` and `sweep_presets()` validating them. The catalog (catalog.py) serves them.

What this is not: the catalog itself, validation beyond the RunCreate models, or what a demo's
runs showed (claims.py checks each lesson's claim against them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from app.core.cells import CellName
from app.services.schemas import MAX_GROUP_RUNS, RunCreate, RunStatus
from app.services.sweep_schemas import SweepPreset


class Preset(BaseModel):
    name: str
    title: str
    look_for: str  # one sentence: what to watch
    config: RunCreate
    compare: list[CellName] | None = None  # start with POST /api/compare over these cells
    variants: list[RunCreate] = []  # or start these runs beside `config`, each differing in one setting


LessonView = Literal[
    "loss",
    "hidden",
    "itemized",
    "gradflow",
    "gradnorm",
    "gate-f",
    "gate-i",
    "gate-o",
    "gate-z",
    "gate-h_tilde",
    "c",
    "why",
]  # "why": static/js/why.js, the bound of the product of Jacobians over the measured gradient;
# "gate-<name>": that gate of the panel's cell, titled as the catalog's cell views title it


class LessonRun(BaseModel):
    title: str  # the run's panel heading, and its name
    config: RunCreate


RAN_ITS_COURSE: tuple[RunStatus, ...] = ("completed", "diverged")  # how a demo's run ends untouched


class Lesson(BaseModel):
    """One /learn demo: the runs to start as one group, and the views its panels draw."""

    name: str  # the section's data-demo key in templates/learn.html
    views: list[LessonView]
    runs: Annotated[list[LessonRun], Field(min_length=1, max_length=MAX_GROUP_RUNS)]
    findings_after: list[RunStatus] = list(RAN_ITS_COURSE)  # every run ended so: its findings can be read


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
# minGRU's gates read x_t alone, so its recurrence is a parallel scan; it still holds the two
# marked values across 200 steps, where the tanh RNN's gradient has vanished (measured: look_for)
_PARALLEL = {
    "cell": "mingru",
    "hidden_size": 64,
    "task": {"name": "adding", "seq_len": 200},
    "optimizer": {"name": "adam", "lr": 0.03},
    "steps": 600,
    "probe_every": 50,
}
# exp forget and input gates with a forget bias of 3: without m_t, c_t and n_t grow like e^(3t)
# and overflow float32 within the first forward pass of a 50-step sequence
_STABILIZER = {
    "cell": "slstm",
    "slstm": {"forget": "exp", "stabilizer": True},
    "hidden_size": 32,
    "init": {"forget_bias": 3.0},
    "task": {"name": "adding", "seq_len": 50},
    "optimizer": {"name": "adam", "lr": 0.01},
    "steps": 1000,
    "probe_every": 50,
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
        "config": {
            **_EXPLODING,
            "clip": {"mode": "norm", "threshold": 1.0},
            "name": "exploding · clipped at 1",
        },
        "variants": [{**_EXPLODING, "clip": {"mode": "off"}, "name": "exploding · not clipped"}],
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
        "config": {
            "cell": "lstm",
            "hidden_size": 32,
            "bidirectional": True,
            "task": _TAGGING,
            "steps": 1500,
            "name": "bidirectional · both ways",
        },
        "variants": [
            {
                "cell": "lstm",
                "hidden_size": 32,
                "task": _TAGGING,
                "steps": 1500,
                "name": "bidirectional · one way",
            }
        ],
    },
    {
        "name": "parallel-remembers",
        "title": "Parallel but remembers: minGRU vs tanh RNN on the adding problem, T = 200",
        "look_for": (
            "minGRU's gates read x_t alone, so it trains as a parallel scan, yet it holds the two marked "
            "values across 200 steps: its loss falls below the 1/6 baseline within 200 steps and to "
            "about 0.004 by step 600 (100-step means 0.13, 0.018, then 0.004), while the tanh RNN's "
            "never gets below the baseline (after its first 100 steps, its 100-step means stay between "
            "0.20 and 0.28)."
        ),
        "config": _PARALLEL,
        "compare": ["rnn_tanh", "mingru"],
    },
    {
        "name": "stabilizer",
        "title": "Exponential gates need a stabiliser: sLSTM with and without m_t",
        "look_for": (
            "Without m_t the exponential gates overflow float32: in the probe sample h turns NaN at "
            "t = 29 of 50 (c_t and n_t grow like e^(3t)), the first step's loss is NaN and the run "
            "ends diverged at step 1; the same run with the stabiliser trains, its loss falling "
            "below the 1/6 baseline to about 0.06 by step 1000."
        ),
        "config": {**_STABILIZER, "name": "sLSTM · stabilised"},
        "variants": [
            {**_STABILIZER, "slstm": {"stabilizer": False}, "name": "sLSTM · no stabiliser"},
        ],
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
# the vanishing demo: long enough, and at a learning rate high enough, for the gated cells to learn
# (the LSTM with a forget-gate bias of 1, as Jozefowicz et al. 2015 advise); the same seed for all
_VANISHING = {**_ADDING_50, "steps": 800, "optimizer": {"name": "adam", "lr": 0.01}}
_EXPLODING_30 = {**_EXPLODING, "task": {"name": "adding", "seq_len": 30}, "steps": 300, "batch_size": 32}
# after the LSTM: the adding problem at T = 100, twice the vanishing demo's span; the same seed for
# all five cells, sLSTM with its defaults (exponential forget gate, stabiliser on)
_MODERN = {**_VANISHING, "task": {"name": "adding", "seq_len": 100}, "steps": 600, "probe_every": 50}
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
        "views": ["itemized", "why"],
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
        "views": ["gradflow", "loss", "why"],
        "runs": [
            {"title": "tanh RNN", "config": {**_VANISHING, "cell": "rnn_tanh"}},
            {
                "title": "LSTM, forget bias 1",
                "config": {**_VANISHING, "cell": "lstm", "init": {"forget_bias": 1}},
            },
            {"title": "GRU", "config": {**_VANISHING, "cell": "gru"}},
        ],
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
            {"title": "tanh RNN", "config": {**_ADDING_50, "cell": "rnn_tanh"}},
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
    {
        "name": "modern",
        "views": ["gradflow", "loss"],
        "runs": [
            {"title": "tanh RNN", "config": {**_MODERN, "cell": "rnn_tanh"}},
            {"title": "GRU", "config": {**_MODERN, "cell": "gru"}},
            {"title": "minGRU", "config": {**_MODERN, "cell": "mingru"}},
            {"title": "minLSTM", "config": {**_MODERN, "cell": "minlstm"}},
            {"title": "sLSTM", "config": {**_MODERN, "cell": "slstm"}},
        ],
    },
    {
        "name": "mingates",
        "views": ["gate-z", "gate-h_tilde", "hidden"],
        "runs": [
            {
                "title": "minGRU, adding T = 30",
                "config": {
                    "cell": "mingru",
                    "hidden_size": 16,
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


# the edge of chaos: W_hh ~ N(0, g^2/H) makes a tanh RNN's map contract (g < 1: gradients vanish
# over T) or go chaotic (g > 1: they explode); recall's only useful gradient spans all T steps
_EDGE_BASE = {
    "cell": "rnn_tanh",
    "hidden_size": 32,
    "init": {"scheme": "normal", "gain": 1.0},
    "task": {"name": "recall", "seq_len": 50, "n_classes": 4},
    "batch_size": 32,
    "steps": 300,
    "probe_every": 100,
    "itemize": False,
}
_EDGE_CELLS = ["rnn_tanh", "lstm", "gru"]
SWEEPS: tuple[dict[str, Any], ...] = (
    {
        "name": "edge-of-chaos",
        "title": "The edge of chaos: tanh RNN, LSTM and GRU over init gain × sequence length (recall)",
        "look_for": (
            "The tanh RNN's step-0 gradient ratio stays near 1 only for gains from about 1 to 1.75: below, "
            "it vanishes by orders of magnitude as T grows, at gain 2 it explodes; from T = 50 on the RNN "
            "learns only at and above gain 1, never below. In 300 steps the LSTM and GRU (W_hh ~ N(0, g²/H) "
            "in every gate) learn only at short T: their half-open gates make gradients vanish at any gain."
        ),
        "sweep": {
            "name": "the edge of chaos",
            "base": _EDGE_BASE,
            "grid": {
                "cell": _EDGE_CELLS,
                "init.gain": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0],
                "task.seq_len": [10, 50, 200],
            },
        },
        "full": {
            "name": "the edge of chaos, full grid",
            "base": _EDGE_BASE,
            "grid": {
                "cell": _EDGE_CELLS,
                "init.gain": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
                "task.seq_len": [10, 25, 50, 100, 200],
            },
        },
        "cost": (
            "Measured on a shared 2-core machine, 2 runs at a time: 63 runs in 5.2 min (load average 2-5); "
            "the full grid, 120 runs, in 23 min (load average 5-6)."
        ),
    },
)


def presets() -> list[Preset]:
    """PRESETS, each validated: a wrong value fails at import of the catalog, not on a click."""
    return [Preset.model_validate(p) for p in PRESETS]


def lessons() -> list[Lesson]:
    """LESSONS, each validated like the presets."""
    return [Lesson.model_validate(lesson) for lesson in LESSONS]


def sweep_presets() -> list[SweepPreset]:
    """SWEEPS, each validated like the presets (the grid's runs are checked when one starts)."""
    return [SweepPreset.model_validate(p) for p in SWEEPS]

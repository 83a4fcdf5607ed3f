"""What ails a run: findings read from its stored numbers, each with its evidence and a remedy.

What this is: `diagnose(run)`, which reads one built-in run's stored numbers (claims.RunNumbers,
loaded by claims.run_numbers: its step metrics and first and last probe frames) and lists its
`Symptom`s, one per kind that the numbers show:

- vanishing: ||dl_T/dh_0|| / ||dl_T/dh_T|| of the top layer at the last probe below claims.VANISHED
  (not of a diverged run: its blown-up weights saturate every unit, so that is divergence again);
- exploding: a gradient norm (before clipping) of claims.EXPLODES[1] or more, or not finite;
- diverged: the run ended diverged;
- saturated: a gate of a layer outside [0.1, 0.9] for at least SATURATED of its values;
- dead: a ReLU RNN layer with at least DEAD of its units at 0 on every step of the probe input;
- clipping: clipping fired on more than CLIPPING of the steps;
- stuck: after STUCK_AFTER steps or more, the final loss at claims.AT_BASELINE x the task's baseline;
- lr_high / lr_low: the median update ratio ||dθ|| / ||θ|| over the last half of the steps
  outside UPDATE_BAND (a decade either side of the ~1e-3 rule of thumb).

Each symptom's remedy is a JSON merge patch (RFC 7396) over the run's RunCreate: `patched(config,
remedy.patch)` is the config with the change, checked to be a valid RunCreate when it is made and
kept as `remedy.config` (what a new run with the remedy trains). Where the change can also be made
to the trained weights between two steps, `remedy.changes` is it as an intervention
(InterventionCreate's shape, checked too: what "apply now" posts and a fork starts with); null when
only a new run can make it (another cell, twice the steps, a new init scheme for a net of several
layers, where an intervention re-initialises one layer).

What this is not: the loading of the numbers (claims.py), the route (app/web/diagnosis.py), or the
applying of a remedy (the run page posts an intervention, a fork or a new run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast

import numpy as np
from annotated_types import Le
from pydantic import BaseModel

from app.core.cells import GATES, WITHOUT_W_HH
from app.services.claims import AT_BASELINE, EXPLODES, VANISHED, RunNumbers, num, reach_ratio
from app.services.interventions import InterventionCreate
from app.services.schemas import LIMITS, ClipSpec, OptimizerSpec, RunCreate

SATURATED = 0.95  # a gate is saturated when this share of its values is below 0.1 or above 0.9
DEAD = 0.5  # a ReLU layer is dying when this share of its units is 0 all along the probe input
CLIPPING = 0.5  # clipping "on most steps": on more than half of them
STUCK_AFTER = 100  # a loss may sit at the baseline for a while: stuck only after this many steps
UPDATE_TARGET = 1e-3  # the rule of thumb for ||dθ|| / ||θ|| per step
UPDATE_BAND = (1e-4, 1e-2)  # far from it: a decade or more either way

Kind = Literal[
    "vanishing", "exploding", "diverged", "saturated", "dead", "clipping", "stuck", "lr_high", "lr_low"
]


class Evidence(BaseModel):
    step: int | None  # the training step the numbers are from (None: over the whole run)
    layer: int | None  # the layer they are of (None: the whole network)
    values: dict[str, float | None]  # the measured numbers by name (None: not finite)


class Remedy(BaseModel):
    description: str
    patch: dict[str, Any]  # a JSON merge patch over the run's RunCreate
    changes: dict[str, Any] | None = None  # the same change as an intervention, or None: a new run only
    config: RunCreate | None = None  # patched(run config, patch): set by _symptom


class Symptom(BaseModel):
    """One finding of a run's diagnosis."""

    kind: Kind
    evidence: Evidence
    explanation: str  # one sentence, with the numbers
    remedy: Remedy


def patched(config: RunCreate, patch: dict[str, Any]) -> RunCreate:
    """The config with the merge patch applied (ValueError if the result is not a valid RunCreate)."""

    def merge(base: Any, change: Any) -> Any:
        if not isinstance(change, dict) or not isinstance(base, dict):
            return change
        out = dict(base)
        for key, value in change.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base.get(key), value)
        return out

    return RunCreate.model_validate(merge(config.model_dump(), patch))


def _series(metrics: list[dict[str, Any]], key: str) -> list[float]:
    """One metric of every step (NaN where storage holds NULL: SQLite stores a NaN so)."""
    return [math.nan if m[key] is None else float(m[key]) for m in metrics]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _symptom(run: RunNumbers, kind: Kind, evidence: Evidence, explanation: str, remedy: Remedy) -> Symptom:
    """The finding, its remedy checked: a wrong patch or change fails here, not on a click."""
    config = patched(run.config, remedy.patch)
    if remedy.changes is not None:
        InterventionCreate.model_validate(remedy.changes)
    remedy = remedy.model_copy(update={"config": config})
    return Symptom(kind=kind, evidence=evidence, explanation=explanation, remedy=remedy)


def _scheme(run: RunNumbers, description: str, scheme: str) -> Remedy:
    """Initialise W_hh by `scheme` (gain 1); as an intervention only for a one-layer net, whose
    layer 0 an intervention can re-initialise whole (a net of several layers needs a new run)."""
    one = run.config.num_layers == 1
    return Remedy(
        description=description + ("" if one else " (a new run: an intervention re-initialises one layer)"),
        patch={"init": {"scheme": scheme, "gain": 1.0}},
        changes={"reinit": {"layer": 0, "scheme": scheme, "gain": 1.0}} if one else None,
    )


_CLIP_AT_1 = {"clip": {"mode": "norm", "threshold": 1.0}}
# an sLSTM without its stabiliser overflows exp(): a new run with m_t (no intervention changes the cell)
_STABILISE = Remedy(
    description="train the sLSTM with its stabiliser m_t (exp overflows without it)",
    patch={"slstm": {"stabilizer": True}},
)


def _bounding(run: RunNumbers, otherwise: Remedy) -> Remedy:
    """The remedy for a gradient or loss that grew out of bounds: the stabiliser for an sLSTM
    without it, else clipping at 1 where it is off, else `otherwise`."""
    if run.config.slstm is not None and not run.config.slstm.stabilizer:
        return _STABILISE
    if run.config.clip.mode == "off":
        return Remedy(description="clip the gradient norm at 1", patch=_CLIP_AT_1, changes=_CLIP_AT_1)
    return otherwise


_LSTM_INSTEAD = Remedy(
    description="train an LSTM with a forget-gate bias of 1 instead",
    patch={"cell": "lstm", "init": {"scheme": "default", "gain": 1.0, "forget_bias": 1.0}},
)


def _gated(run: RunNumbers) -> Remedy:
    """The remedy for a gradient that does not reach back: a gated cell, or a forget gate held open."""
    cell = run.config.cell
    if cell in ("rnn_tanh", "rnn_relu"):
        return _LSTM_INSTEAD
    if "f" in GATES[cell] and (run.config.init.forget_bias or 0) < 1:
        return Remedy(
            description="set the forget-gate bias to 1",
            patch={"init": {"forget_bias": 1.0}},
            changes={"forget_bias": 1.0},
        )
    if cell in WITHOUT_W_HH:  # no W_hh to initialise: a cell whose gates also read h_(t-1)
        return _LSTM_INSTEAD
    return _scheme(run, "initialise W_hh orthogonal", "orthogonal")


def _upper(model: type[BaseModel], field: str) -> float:
    """A field's upper bound, as its schema declares it (one source for the bound)."""
    return next(float(cast(float, m.le)) for m in model.model_fields[field].metadata if isinstance(m, Le))


def _scaled_lr(run: RunNumbers, factor: float) -> Remedy:
    lr = float(f"{min(_upper(OptimizerSpec, 'lr'), run.config.optimizer.lr * factor):.1g}")
    return Remedy(
        description=f"set the learning rate to {num(lr)}", patch={"optimizer": {"lr": lr}}, changes={"lr": lr}
    )


def _vanishing(run: RunNumbers) -> Symptom | None:
    ratio = reach_ratio(run.last)
    if run.status == "diverged" or not ratio < VANISHED:  # diverged: saturated units, not a cell's fault
        return None
    layer = run.last.arrays["grad_h_last"].shape[0] - 1
    k = (
        run.config.tbptt
        if run.config.tbptt and run.config.tbptt <= int(run.last.header["last_step"])
        else None
    )
    return _symptom(
        run,
        "vanishing",
        Evidence(step=run.last.step, layer=layer, values={"reach_ratio": ratio, "threshold": VANISHED}),
        f"At step {run.last.step} only {num(ratio)} of the last loss's gradient at h_T reaches h_0 "
        f"(below {num(VANISHED)}): the network cannot learn what depends on the sequence's start"
        + (f", and truncated BPTT cuts the gradient beyond {k} steps." if k else "."),
        _gated(run),
    )


def _exploding(run: RunNumbers) -> Symptom | None:
    norms = np.array(_series(run.metrics, "grad_norm"))
    if not norms.size:
        return None
    at = int(np.argmax(np.where(np.isfinite(norms), norms, np.inf)))
    peak = float(norms[at])
    if math.isfinite(peak) and peak < EXPLODES[1]:
        return None
    step = int(run.metrics[at]["step"])
    finite = norms[np.isfinite(norms)]
    median = float(np.median(finite)) if finite.size else math.nan
    remedy = _bounding(
        run,
        _scaled_lr(run, 0.1)
        if run.config.cell in WITHOUT_W_HH  # no W_hh to initialise
        else _scheme(run, "initialise W_hh orthogonal with gain 1", "orthogonal"),
    )
    return _symptom(
        run,
        "exploding",
        Evidence(
            step=step,
            layer=None,
            values={
                "grad_norm": _finite(peak),
                "median": _finite(median),
                "threshold": EXPLODES[1],
            },
        ),
        f"The gradient norm reached {num(peak)} at step {step} (median {num(median)}): "
        "the product of the step Jacobians grows with the sequence, so one update can throw the weights out.",
        remedy,
    )


def _diverged(run: RunNumbers) -> Symptom | None:
    if run.status != "diverged":
        return None
    step = run.steps + 1
    loss = _series(run.metrics, "loss")[-1] if run.metrics else math.nan
    remedy = _bounding(run, _scaled_lr(run, 0.1))
    return _symptom(
        run,
        "diverged",
        Evidence(step=step, layer=None, values={"last_loss": _finite(loss)}),
        f"The run stopped at step {step} with a non-finite loss or weights (its last loss: {num(loss)}).",
        remedy,
    )


def _saturated(run: RunNumbers) -> Symptom | None:
    sides: dict[str, dict[str, list[float]]] = run.last.header.get("saturation") or {}
    shares = [
        (low + high, gate, layer)
        for gate, s in sides.items()
        for layer, (low, high) in enumerate(zip(s["low"], s["high"], strict=True))
    ]
    if not shares or max(shares)[0] < SATURATED:
        return None
    share, gate, layer = max(shares)
    return _symptom(
        run,
        "saturated",
        Evidence(step=run.last.step, layer=layer, values={"share": share, "threshold": SATURATED}),
        f"At step {run.last.step}, {num(100 * share)} % of gate {gate}'s values in layer {layer} are "
        "below 0.1 or above 0.9, where its derivative is near 0 and little gradient passes through it.",
        _scaled_lr(run, 0.1),
    )


def _dead(run: RunNumbers) -> Symptom | None:
    if run.config.cell != "rnn_relu":
        return None
    h = np.abs(run.last.arrays["h"])  # (L, T, units)
    dead = (h.max(axis=1) == 0).mean(axis=1)
    layer = int(np.argmax(dead))
    if dead[layer] < DEAD:
        return None
    return _symptom(
        run,
        "dead",
        Evidence(step=run.last.step, layer=layer, values={"share": float(dead[layer]), "threshold": DEAD}),
        f"At step {run.last.step}, {num(100 * float(dead[layer]))} % of layer {layer}'s ReLU units are 0 "
        "on every step of the probe input, and a unit at 0 passes no gradient back.",
        _scheme(run, "initialise W_hh as the identity (IRNN)", "identity"),
    )


def _clipping(run: RunNumbers) -> Symptom | None:
    if not run.metrics or run.clips <= CLIPPING * len(run.metrics):
        return None
    norms = [n for n in _series(run.metrics, "grad_norm") if math.isfinite(n)]
    if run.config.clip.mode == "norm" and norms:
        wanted, why = float(np.percentile(norms, 90)), "the 90th percentile of the gradient norms"
    else:  # value clipping bounds each element: no norm to read it from
        wanted, why = 10 * run.config.clip.threshold, "ten times the present one"
    threshold = float(f"{min(_upper(ClipSpec, 'threshold'), wanted):.2g}")
    share = run.clips / len(run.metrics)
    return _symptom(
        run,
        "clipping",
        Evidence(step=None, layer=None, values={"share": share, "clip_threshold": run.config.clip.threshold}),
        f"Clipping fired on {run.clips} of {len(run.metrics)} steps: most updates have the clip's length, "
        "not the gradient's, so the threshold sets the step size more than the learning rate does.",
        Remedy(
            description=f"raise the clip threshold to {num(threshold)}, {why}",
            patch={"clip": {"threshold": threshold}},
            changes={"clip": {"mode": run.config.clip.mode, "threshold": threshold}},
        ),
    )


def _stuck(run: RunNumbers) -> Symptom | None:
    if run.status == "diverged" or run.steps < STUCK_AFTER or not run.loss >= AT_BASELINE * run.baseline:
        return None
    if run.config.cell in ("rnn_tanh", "rnn_relu") or (
        "f" in GATES[run.config.cell] and run.config.init.forget_bias is None
    ):
        remedy = _gated(run)
    else:
        remedy = Remedy(
            description="train twice as long", patch={"steps": min(LIMITS.steps, 2 * run.config.steps)}
        )
    return _symptom(
        run,
        "stuck",
        Evidence(step=run.steps, layer=None, values={"loss": run.loss, "baseline": run.baseline}),
        f"After {run.steps} steps the loss is {num(run.loss)}, against {num(run.baseline)} for the task's "
        "best guess that reads nothing: the network has learned nothing beyond it.",
        remedy,
    )


def _learning_rate(run: RunNumbers) -> Symptom | None:
    ratios = [r for r in _series(run.metrics[len(run.metrics) // 2 :], "update_ratio") if math.isfinite(r)]
    if not ratios or run.status == "diverged":
        return None
    median = float(np.median(ratios))
    low, high = UPDATE_BAND
    if low <= median <= high:
        return None
    kind: Kind = "lr_high" if median > high else "lr_low"
    return _symptom(
        run,
        kind,
        Evidence(step=None, layer=None, values={"update_ratio": median, "low": low, "high": high}),
        f"Over the last half of the steps the median update moves the weights by {num(median)} of their "
        "norm, "
        + (
            f"over {num(high)}, ten times the ~{num(UPDATE_TARGET)} rule of thumb: steps that large tend to "
            "make training unstable."
            if median > high
            else f"under {num(low)}, a tenth of the ~{num(UPDATE_TARGET)} rule of thumb: the weights barely "
            "move, so training is slow."
        ),
        _scaled_lr(run, UPDATE_TARGET / median),
    )


CHECKS: tuple[Callable[[RunNumbers], Symptom | None], ...] = (
    _diverged,
    _exploding,
    _vanishing,
    _stuck,
    _clipping,
    _saturated,
    _dead,
    _learning_rate,
)


def diagnose(run: RunNumbers) -> list[Symptom]:
    """The run's findings, at most one of each kind, in CHECKS order (none: nothing found)."""
    return [s for s in (check(run) for check in CHECKS) if s is not None]

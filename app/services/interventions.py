"""The lab bench's request and answer shapes: InterventionCreate (the changes a person asks for,
validated with their bounds) and Intervention (one as the worker applied it, with its step); and
what the applied ones add up to: `configured(config, interventions)`, the RunCreate a run trains
with after them, and `current_knobs(config, interventions)`, its knob values (Knobs, GET
/api/runs/{id}/knobs); and `check_changes(config, changes)`, what InterventionCreate's bounds
cannot know (the run's layers and cell, an optimizer switch without reset_state: Refused).

What this is not: the applying (app.core.engine.Trainer.apply, app.core.surgery) or the routes
(app/web/interventions.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.cells import GATES, WITHOUT_W_HH
from app.core.model import init_refusal
from app.services.schemas import LIMITS, ClipSpec, OptimizerSpec, RunCreate


class OptimizerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["sgd", "rmsprop", "adam", "adagrad"]
    reset_state: bool = Field(False, description="a fresh optimizer; must be true to switch optimizers")


class Rescale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: Annotated[int, Field(ge=0, le=LIMITS.num_layers - 1)]
    radius: Annotated[float, Field(gt=0, le=10, description="the spectral radius of each W_hh gate block")]


class Reinit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: Annotated[int, Field(ge=0, le=LIMITS.num_layers - 1)]
    scheme: Literal["default", "orthogonal", "identity", "normal"]
    gain: Annotated[float, Field(gt=0, le=10)] = 1.0


class InterventionCreate(BaseModel):
    """POST /api/runs/{id}/interventions: the knobs to change between two steps (at least one).

    A field left out is left as it is; `tbptt: null` means full backprop through time."""

    model_config = ConfigDict(extra="forbid")
    lr: Annotated[float, Field(gt=0, le=10)] | None = None
    clip: ClipSpec | None = None
    tbptt: Annotated[int | None, Field(ge=1, le=LIMITS.tbptt, description="truncated BPTT window")] = None
    optimizer: OptimizerChange | None = None
    rescale: Rescale | None = None
    reinit: Reinit | None = None
    forget_bias: Annotated[float, Field(ge=-20, le=20, description="LSTM only: b_if + b_hf")] | None = None

    @model_validator(mode="after")
    def _has_a_change(self) -> InterventionCreate:
        if not self.model_fields_set:
            knobs = ", ".join(type(self).model_fields)
            raise ValueError(f"an intervention needs at least one change ({knobs})")
        for name in set(type(self).model_fields) - {"tbptt"}:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep it")
        return self

    def changes(self) -> dict[str, Any]:
        """The changes as the worker applies them (only the fields given)."""
        return self.model_dump(mode="json", include=self.model_fields_set)


class Intervention(BaseModel):
    """An intervention as the worker applied it: after step `step`, before the next."""

    id: str
    step: int
    changes: dict[str, Any]
    applied_at: datetime


def configured(config: RunCreate, interventions: Iterable[Intervention]) -> RunCreate:
    """`config` with the knob changes of `interventions` (in the order applied): what the run trains
    with after the last of them. lr, optimizer (name), clip and tbptt land where RunCreate keeps them,
    forget_bias in init.forget_bias (the value last set); rescale and reinit change weights only."""
    optimizer, clip, tbptt, init = config.optimizer, config.clip, config.tbptt, config.init
    for item in interventions:  # each change was validated (InterventionCreate) before it was applied
        changes = item.changes
        if "lr" in changes:
            optimizer = optimizer.model_copy(update={"lr": changes["lr"]})
        if "optimizer" in changes:
            optimizer = optimizer.model_copy(update={"name": changes["optimizer"]["name"]})
        if "clip" in changes:
            clip = ClipSpec.model_validate(changes["clip"])
        if "tbptt" in changes:
            tbptt = changes["tbptt"]
        if "forget_bias" in changes:
            init = init.model_copy(update={"forget_bias": changes["forget_bias"]})
    return config.model_copy(update={"optimizer": optimizer, "clip": clip, "tbptt": tbptt, "init": init})


class Knobs(BaseModel):
    """GET /api/runs/{id}/knobs: the knobs a built-in run trains with now (its config with every
    applied intervention, shaped as RunCreate keeps them), and for each knob an intervention set
    (named as InterventionCreate names it), the step after which it did."""

    optimizer: OptimizerSpec = Field(description="name, lr and (SGD) momentum")
    clip: ClipSpec
    tbptt: int | None = Field(description="truncated BPTT window; null: full backprop through time")
    forget_bias: float | None = Field(description="LSTM: b_if + b_hf as last set; null: never set or no LSTM")
    set_at: dict[str, int] = Field(description="knob -> step of the last intervention on it (absent: config)")
    interventions: int = Field(description="how many interventions were applied")


KNOBS = ("lr", "optimizer", "clip", "tbptt", "forget_bias")


def current_knobs(config: RunCreate, interventions: Iterable[Intervention]) -> Knobs:
    """The knob values after `interventions` (in the order applied), with where each was last set."""
    applied = list(interventions)
    now = configured(config, applied)
    set_at = {knob: item.step for item in applied for knob in KNOBS if knob in item.changes}
    return Knobs(
        optimizer=now.optimizer,
        clip=now.clip,
        tbptt=now.tbptt,
        forget_bias=now.init.forget_bias,
        set_at=set_at,
        interventions=len(applied),
    )


class Refused(Exception):  # noqa: N818  (like the manager's WrongState)
    """The run cannot take these changes, or cannot fork as asked (HTTP 422); the message is a sentence."""


def check_changes(config: RunCreate, changes: dict[str, Any]) -> None:
    """Refused, with a sentence, for changes a run of `config` cannot take (nothing is applied)."""
    for name in ("rescale", "reinit"):
        if name in changes and changes[name]["layer"] >= config.num_layers:
            raise Refused(f"{name}.layer must be at most {config.num_layers - 1}: the net's last layer")
    if "forget_bias" in changes and "f" not in GATES[config.cell]:
        raise Refused(
            "forget_bias applies to the cells with a forget gate (lstm, minlstm, slstm), "
            f"and this run is {config.cell}"
        )
    if "rescale" in changes and config.cell in WITHOUT_W_HH:
        raise Refused(
            f"rescale: {config.cell} has no recurrent weights W_hh to rescale (its gates read x_t alone)"
        )
    if "reinit" in changes:
        refusal = init_refusal(
            config.cell, changes["reinit"]["scheme"], float(changes["reinit"]["gain"]), None
        )
        if refusal:
            raise Refused(f"reinit: {refusal}")
    optimizer = changes.get("optimizer")
    now = config.optimizer.name
    if optimizer is not None and optimizer["name"] != now and not optimizer["reset_state"]:
        raise Refused(
            f"optimizer.reset_state must be true to switch from {now} to {optimizer['name']}: "
            "one's state means nothing to the other"
        )

"""The lab bench's request and answer shapes: InterventionCreate (the changes a person asks for,
validated with their bounds) and Intervention (one as the worker applied it, with its step).

What this is not: the applying (app.core.engine.Trainer.apply, app.core.surgery) or the routes
(app/web/interventions.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.services.schemas import LIMITS, ClipSpec


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

"""Request and response bodies of the web API beyond the run shapes of app/services/schemas.py.

What this is: pydantic models for inspect and sample requests, and the documented shapes of a
metrics row and a probe frame's JSON (routes return those as pre-encoded JSON for speed; the
models are what the OpenAPI schema shows). What this is not: validation of run configs
(schemas.py) or of task parameters (app.core.tasks).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.probes import Source
from app.core.tasks import MAX_VOCAB
from app.services.schemas import LIMITS

InputValue = Annotated[float, Field(ge=-1e4, le=1e4, allow_inf_nan=False)]


class InspectCreate(BaseModel):
    """Probe a run's latest weights on your own input (text for char_lm runs, or raw vectors T x I)
    or on the run's own probe sample (`probe: true`, with its targets): exactly one of the three."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"probe": True}, {"text": "hello"}, {"inputs": [[0.5, 1.0], [0.2, 0.0], [0.9, 1.0]]}]
        },
    )
    text: Annotated[
        str | None,
        Field(min_length=2, max_length=LIMITS.inspect_steps, description="char_lm runs: the text to read"),
    ] = None
    inputs: Annotated[
        list[Annotated[list[InputValue], Field(min_length=1, max_length=MAX_VOCAB)]] | None,
        Field(
            min_length=1,
            max_length=LIMITS.inspect_steps,
            description="one vector of the task's input size per step, e.g. [[0.5, 1], [0.2, 0]] for adding",
        ),
    ] = None
    probe: Annotated[
        bool,
        Field(description="true: the run's own probe sample, with its targets (so a real loss and target)"),
    ] = False

    @model_validator(mode="after")
    def _one(self) -> InspectCreate:
        if (self.text is not None) + (self.inputs is not None) + self.probe != 1:
            raise ValueError("give exactly one of text, inputs or probe (true)")
        return self


class SampleCreate(BaseModel):
    """Write text with a char_lm run's latest weights."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"prime": "h", "length": 20, "temperature": 0.8, "seed": 0}]},
    )
    prime: Annotated[str, Field(min_length=1, max_length=1000, description="the start text")] = "\n"
    length: Annotated[int, Field(ge=1, le=LIMITS.sample_length, description="characters to write")] = 200
    temperature: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 1.0
    seed: Annotated[
        int | None, Field(ge=0, le=LIMITS.seed, description="the same seed gives the same text")
    ] = None


class SampleResult(BaseModel):
    text: str  # the prime followed by the written characters


class StepMetricsPublic(BaseModel):
    """One training step, as GET /api/runs/{id}/metrics lists them and step messages carry them.
    A built-in run has every value; an attached run's script may send null (always for metric)."""

    step: int
    loss: float | None
    metric: float | None
    grad_norm: float | None
    grad_norm_clipped: float | None
    clipped: bool
    param_grad_norms: dict[str, float | None]
    update_ratio: float | None
    lr: float | None
    seconds: float | None


class FramePool(BaseModel):
    """How a display frame was pooled: the full sizes and the neighbours each bin holds."""

    T: int  # timesteps before pooling
    units: int  # units per layer before pooling
    t_width: int  # timesteps per shown column: column i starts at t = i * t_width
    unit_width: int  # units per shown row


class ProbePublic(BaseModel):
    """A probe frame as JSON (app.core.frames.Frame.to_json): every layer, [layer][t][unit]
    unless noted; T and units are the shown sizes (pooled ones at ?resolution=display)."""

    step: int
    loss: float | None
    last_step: int  # the last t with a loss term (full resolution)
    tokens: list[str] | None
    marks: list[int]  # the timesteps the task marks (full resolution)
    mark_label: str | None  # what a mark is ("marked", "delimiter")
    saturation: dict[str, dict[str, list[float | None]]]
    pool: FramePool | None  # null at full resolution
    notes: list[str]  # sentences to show with the frame (e.g. an attached module's dropout)
    source: Source  # the run's probe sample, or gatescope.watch's
    inputs: list[list[float]]
    targets: list[Any] | None  # null for an attached module (no task), or inspected raw inputs
    mask: list[float]
    outputs: list[list[float]] | None  # the readout's raw values (prediction, or logits); null when attached
    h: list[list[list[float]]]
    c: list[list[list[float]]] | None
    gates: dict[str, list[list[list[float]]]]
    unit_means: dict[str, list[list[float]]]
    grad_h: list[list[float]]
    grad_h_last: list[list[float]]  # [layer][t]
    grad_c: list[list[float]] | None
    itemized: list[list[list[float]]] | None  # [layer][s][t]
    connectivity: list[float]
    connectivity_total: list[float]
    connectivity_itemized: list[list[float]] | None  # [s][t]
    # the theory (docs/protocol.md), null where the probe left it out: [layer][direction][t] ...
    jacobian_norm: list[list[list[float]]] | None = None  # exact ||dh_t/dh_{t-1}||_2 (LSTM: of (h, c))
    cell_path_mean: list[list[list[float]]] | None = None  # LSTM: f_t over units
    cell_path_max: list[list[list[float]]] | None = None
    w_hh_radius: list[list[list[float]]] | None = None  # [layer][direction][gate block]
    w_hh_singular: list[list[list[list[float]]]] | None = None  # ... [k], largest first


class Health(BaseModel):
    status: str
    version: str
    executor: str = "local"  # where runs train: "local" or "ray" (GATESCOPE_RAY_ADDRESS)
    executor_error: str | None = None  # why the executor cannot start runs now (new runs get a 503)

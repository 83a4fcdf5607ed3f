"""Checking an attached run's probe frame before anything is stored.

What this is: `check_frame(data, run_id, config)` decodes a frame's bytes (app.core.frames) and
checks its header and every array against the run's module (AttachedConfig): names, dtypes,
shapes, T <= MAX_FRAME_T, finite values. `Invalid` names what is wrong, with the bound; the web
layer answers it with a 422. `first_error` turns a pydantic ValidationError into that sentence.

What this is not: storage or publishing (app.services.attached does both, after these checks).
"""

from __future__ import annotations

import struct
from typing import Annotated, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.attach import MAX_FRAME_T
from app.core.cells import GATES
from app.core.frames import GRADIENT_ARRAYS, THEORY_ARRAYS, Frame
from app.core.jacobians import TOP_SINGULAR
from app.core.probes import ITEMIZE_MAX_STEPS, WatchSource
from app.services.schemas import AttachedConfig

MAX_TOKEN_CHARS = 64
MAX_NOTES, MAX_NOTE_CHARS = 10, 300


class Invalid(ValueError):  # noqa: N818  (reads as "Invalid(...)": HTTP 422)
    """The request's content breaks a rule; the message says which field or array, and the bound."""


class FrameHeader(BaseModel):
    """The header of an attached frame (docs/protocol.md), as far as the bytes alone can check it."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["probe"]
    run_id: Annotated[str, Field(max_length=64)]
    step: Annotated[int, Field(ge=0, le=2**62)]
    loss: Annotated[float | None, Field(allow_inf_nan=False)]
    last_step: Annotated[int, Field(ge=0)]
    tokens: list[Annotated[str, Field(max_length=MAX_TOKEN_CHARS)]] | None
    marks: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=MAX_FRAME_T)]
    mark_label: Annotated[str | None, Field(max_length=100)]
    saturation: dict[str, dict[Literal["low", "high"], list[Annotated[float, Field(ge=0, le=1)] | None]]]
    pool: None
    notes: Annotated[list[Annotated[str, Field(max_length=MAX_NOTE_CHARS)]], Field(max_length=MAX_NOTES)] = []
    source: WatchSource = "live"


def expected_arrays(config: AttachedConfig, T: int) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The arrays a frame of T timesteps of this module has, by name -> shape, and which of them
    may be left out (the theory arrays, and the itemized matrices only for T <= ITEMIZE_MAX_STEPS)."""
    L, U = config.num_layers, (2 if config.bidirectional else 1) * config.hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "inputs": (T, config.input_size),
        "mask": (T,),
        "h": (L, T, U),
        "grad_h": (L, T),
        "grad_h_last": (L, T),
        "connectivity": (T,),
        "connectivity_total": (T,),
    }
    if config.cell == "lstm":
        shapes |= {"c": (L, T, U), "grad_c": (L, T)}
    for g in GATES[config.cell]:
        shapes |= {f"gates.{g}": (L, T, U), f"unit_means.{g}": (L, U)}
    D, G = (2 if config.bidirectional else 1), max(1, len(GATES[config.cell]))
    shapes |= {"jacobian_norm": (L, D, T), "w_hh_radius": (L, D, G)}
    shapes["w_hh_singular"] = (L, D, G, min(TOP_SINGULAR, config.hidden_size))
    if config.cell == "lstm":
        shapes |= {"cell_path_mean": (L, D, T), "cell_path_max": (L, D, T)}
    optional = set(THEORY_ARRAYS)
    if T <= ITEMIZE_MAX_STEPS:
        shapes |= {"itemized": (L, T, T), "connectivity_itemized": (T, T)}
        optional |= {"itemized", "connectivity_itemized"}
    return shapes, optional


def check_frame(data: bytes, run_id: str, config: AttachedConfig) -> Frame:
    """The frame of `data` if it is a whole, finite frame of this run's module; Invalid if not."""
    try:
        frame = Frame.from_bytes(data)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc  # "not a probe frame: ..."
    try:
        header = FrameHeader.model_validate(frame.header)
    except ValidationError as exc:
        raise Invalid(f"the frame's header is not valid: {first_error(exc)}") from exc
    if header.run_id != run_id:
        raise Invalid(f"the frame's header names run {header.run_id!r}, not {run_id!r}")
    _check_array_table(data)
    if "mask" not in frame.arrays or frame.arrays["mask"].ndim != 1:
        raise Invalid("the frame has no mask array of shape (T,): its T is unknown")
    T = frame.arrays["mask"].shape[0]
    if not 1 <= T <= MAX_FRAME_T:
        raise Invalid(f"the frame has {T} timesteps: it must have 1 to {MAX_FRAME_T}")
    _check_arrays(frame, config, T)
    _check_header_sizes(header, config, T)
    return frame


def _check_array_table(data: bytes) -> None:
    """Each array once, with the dtype its name has (GRADIENT_ARRAYS and THEORY_ARRAYS float32,
    others float16)."""
    (n,) = struct.unpack_from("<I", data)
    seen: set[str] = set()
    for spec in orjson.loads(data[4 : 4 + n])["arrays"]:
        name = str(spec["name"])
        if name in seen:
            raise Invalid(f"the frame lists the array {name} twice")
        seen.add(name)
        dtype = "float32" if name in GRADIENT_ARRAYS or name in THEORY_ARRAYS else "float16"
        if spec["dtype"] != dtype:
            raise Invalid(f"array {name} is {spec['dtype']}: it must be {dtype}")


def _check_arrays(frame: Frame, config: AttachedConfig, T: int) -> None:
    shapes, optional = expected_arrays(config, T)
    for name, array in frame.arrays.items():
        if name in ("itemized", "connectivity_itemized") and T > ITEMIZE_MAX_STEPS:
            raise Invalid(
                f"array {name} comes only with frames of up to {ITEMIZE_MAX_STEPS} timesteps, not {T}"
            )
        if name not in shapes:
            raise Invalid(
                f"array {name} is not part of a frame of an attached {config.cell} module with T={T}"
            )
        if array.shape != shapes[name]:
            raise Invalid(
                f"array {name} has shape {list(array.shape)}: this module's must be {list(shapes[name])}"
            )
        if not np.isfinite(array).all():
            raise Invalid(f"array {name} has values that are not finite (NaN or infinity)")
    missing = [name for name in shapes if name not in frame.arrays and name not in optional]
    if missing:
        raise Invalid(f"the frame lacks the array {missing[0]} of shape {list(shapes[missing[0]])}")


def _check_header_sizes(header: FrameHeader, config: AttachedConfig, T: int) -> None:
    if header.last_step >= T:
        raise Invalid(f"the frame's last_step is {header.last_step}: it must be below T={T}")
    if header.tokens is not None and len(header.tokens) != T:
        raise Invalid(f"the frame has {len(header.tokens)} tokens: it must have one per timestep, {T}")
    if any(t >= T for t in header.marks):
        raise Invalid(f"the frame's marks must be timesteps below T={T}")
    gates = set(GATES[config.cell])
    if set(header.saturation) != gates:
        raise Invalid(f"the frame's saturation must give exactly the gates {sorted(gates)} of {config.cell}")
    for gate, sides in header.saturation.items():
        for side in ("low", "high"):
            if len(sides.get(side, [])) != config.num_layers:
                raise Invalid(f"saturation.{gate}.{side} must have one value per layer, {config.num_layers}")


def first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the header"
    return f"{where}: {error['msg']}"

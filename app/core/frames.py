"""The probe frame of the service: one type, one binary encoding, one pooling, one REST JSON.

What this is: `Frame(header, arrays)`, a probe frame as the service handles it everywhere
(worker, storage, websocket, REST, inspect, export):

- `Frame.from_probe(run_id, probe_frame)` builds it once from the core's `ProbeFrame`;
- `to_bytes()` / `Frame.from_bytes(data, names=None)` are the one wire and storage encoding
  (docs/protocol.md) and its one Python decoder (`names`: decode only those arrays);
- `pooled(max_t, max_units)` is the display frame: at most MAX_T timesteps x MAX_UNITS units,
  made once per frame by the worker, never per viewer;
- `to_json()` is the REST JSON of GET /api/runs/{id}/probes/{step}?format=json.

The bytes:

    uint32 little-endian N | N bytes UTF-8 JSON header | zero padding to a multiple of 8 | arrays

Every array starts at a multiple of 8 bytes from the message start (so a browser can view it as
a typed array in place) and is listed in the header's "arrays" table as {"name", "dtype",
"shape", "offset", "nbytes"}. Values (inputs, targets, mask, outputs, h, c, gates.<g>,
unit_means.<g>) are float16, clipped to +-65504; gradient norms (GRADIENT_ARRAYS) and the
theory (THEORY_ARRAYS: step Jacobian norms, LSTM cell path, W_hh spectra; optional) are float32.
In memory every array is float32, always finite (NaN -> 0, +-inf -> the dtype's largest finite
value) and, for values, already float16-rounded: a frame and its decoded bytes are equal.

What this is not: a place that knows about runs' storage or sockets, or the core's probe math. It lives in
app.core so that the `gatescope` library (which imports no server code) encodes frames the same way,
and it imports numpy only (no torch), so `gatescope.Client` decodes frames without torch.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # only a type here: the codec imports numpy alone, no torch (gatescope.Client decodes)
    from app.core.probes import ProbeFrame

MAX_T = 500  # a display frame has at most this many timesteps ...
MAX_UNITS = 256  # ... and at most this many units per layer
MAX_FRAME_BYTES = 32 * 2**20  # one encoded frame at most, as a server takes it (an attached run's ingest)
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
FLOAT32_MAX = float(np.finfo(np.float32).max)
VALUE_ARRAYS = ("inputs", "targets", "mask", "outputs", "h", "c")  # float16, then gates.* and unit_means.*
GRADIENT_ARRAYS = (
    "grad_h",
    "grad_h_last",
    "grad_c",
    "itemized",
    "connectivity",
    "connectivity_total",
    "connectivity_itemized",
)  # float32
THEORY_ARRAYS = (
    "jacobian_norm",
    "cell_path_mean",
    "cell_path_max",
    "w_hh_radius",
    "w_hh_singular",
)  # float32, app.core.jacobians.Theory; frames without them (older, or attached) still decode
_DTYPES: dict[str, np.dtype[Any]] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
_LENGTH = struct.Struct("<I")
_ALIGN = 8

Array = NDArray[np.float32]


@dataclass(eq=False)
class Frame:
    """A probe frame: its header fields (docs/protocol.md, without the array table) and its
    arrays by name (float32, finite). Treat both as read-only: frames are shared."""

    header: dict[str, Any]
    arrays: dict[str, Array]

    @property
    def step(self) -> int:
        return int(self.header["step"])

    # -- making one ------------------------------------------------------------------------

    @classmethod
    def from_probe(cls, run_id: str, frame: ProbeFrame) -> Frame:
        """The frame of run `run_id` for the core's `frame` (at full resolution: pool is null)."""
        arrays: dict[str, Array] = {}
        for name in VALUE_ARRAYS:
            value = getattr(frame, name)
            if value is not None:
                arrays[name] = _finite(value, "float16")
        arrays |= {f"gates.{g}": _finite(v, "float16") for g, v in frame.gates.items()}
        arrays |= {f"unit_means.{g}": _finite(v, "float16") for g, v in frame.unit_means.items()}
        for name in GRADIENT_ARRAYS:
            value = getattr(frame, name)
            if value is not None:
                arrays[name] = _finite(value, "float32")
        if frame.theory is not None:
            for name in THEORY_ARRAYS:
                value = getattr(frame.theory, name)
                if value is not None:
                    arrays[name] = _finite(value, "float32")
        header: dict[str, Any] = {
            "type": "probe",
            "run_id": run_id,
            "step": int(frame.step),
            "loss": _json_float(frame.loss),
            "last_step": int(frame.last_step),
            "tokens": list(frame.tokens) if frame.tokens is not None else None,
            "marks": [int(t) for t in frame.marks],
            "mark_label": frame.mark_label,
            "saturation": {
                gate: {side: [_json_float(x) for x in values] for side, values in sides.items()}
                for gate, sides in frame.saturation.items()
            },
            "pool": None,
            "notes": [str(note) for note in frame.notes],
            "source": frame.source,
        }
        return cls(header, arrays)

    # -- bytes -----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The frame's message (layout in the module docstring)."""
        dtypes = {name: _dtype_of(name) for name in self.arrays}
        encoded = [
            (name, dtypes[name], np.asarray(a, _DTYPES[dtypes[name]])) for name, a in self.arrays.items()
        ]
        relative, size = [], 0  # offsets from the first array, each aligned
        for _, _, a in encoded:
            relative.append(size)
            size = _aligned(size + a.nbytes)
        header = {**self.header, "arrays": []}
        # the offsets are in the header, whose length moves the offsets: iterate to the fixed point
        # (the start only grows with the digits of the offsets, so this ends in a step or two)
        start = _ALIGN
        while True:
            header["arrays"] = [
                {
                    "name": name,
                    "dtype": dtype,
                    "shape": list(a.shape),
                    "offset": start + rel,
                    "nbytes": a.nbytes,
                }
                for (name, dtype, a), rel in zip(encoded, relative, strict=True)
            ]
            text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
            needed = _aligned(_LENGTH.size + len(text))
            if needed == start:
                break
            start = needed
        out = bytearray(start + (relative[-1] + encoded[-1][2].nbytes if encoded else 0))
        _LENGTH.pack_into(out, 0, len(text))
        out[_LENGTH.size : _LENGTH.size + len(text)] = text
        for (_, _, a), rel in zip(encoded, relative, strict=True):
            out[start + rel : start + rel + a.nbytes] = a.tobytes()
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, names: Collection[str] | None = None) -> Frame:
        """The frame of a message from `to_bytes`; with `names`, only those of its arrays.

        Frames stored before marks, mark_label, pool, notes and source existed read with [],
        None, None, [] and "built-in".
        ValueError with a sentence if `data` is not a well-formed probe frame.
        """
        buf = memoryview(data).cast("B")
        header, start = _read_header(buf)
        arrays: dict[str, Array] = {}
        try:
            for spec in header.pop("arrays"):
                if names is None or spec["name"] in names:
                    arrays[str(spec["name"])] = _read_array(buf, spec, start)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a probe frame: its array table is malformed ({exc})") from exc
        header.setdefault("marks", [])
        header.setdefault("mark_label", None)
        header.setdefault("pool", None)
        header.setdefault("notes", [])
        header.setdefault("source", "built-in")
        return cls(header, arrays)

    # -- the display frame -----------------------------------------------------------------

    def pooled(self, max_t: int = MAX_T, max_units: int = MAX_UNITS) -> Frame:
        """At most `max_t` timesteps x `max_units` units: self when it fits already.

        Values (inputs, outputs, h, c, gates, unit means) pool by mean, gradient norms and the
        mask by max (a bin's brightest survives), targets and tokens take the bin's first;
        Jacobian norms and cell_path_max by max, cell_path_mean by mean, W_hh spectra stay; the
        header's pool says the full sizes and the bin widths. Marks and last_step stay in
        full-resolution t (the column of t is t // t_width).
        """
        if self.header["pool"] is not None:
            raise ValueError("this frame is pooled already")
        T, units = self.sizes()
        tw, uw = bin_width(T, max_t), bin_width(units, max_units)
        if tw == 1 and uw == 1:
            return self
        arrays = {name: _pool_array(name, a, tw, uw) for name, a in self.arrays.items()}
        tokens = self.header["tokens"]
        header = {
            **self.header,
            "tokens": tokens[::tw] if tokens is not None else None,
            "pool": {"T": T, "units": units, "t_width": tw, "unit_width": uw},
        }
        return Frame(header, arrays)

    def sizes(self) -> tuple[int, int]:
        """(timesteps, units per layer) of the arrays as they are (pooled or not)."""
        T = int(self.arrays["mask"].shape[0]) if "mask" in self.arrays else 0
        units = int(self.arrays["h"].shape[-1]) if "h" in self.arrays else 0
        return T, units

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The REST JSON: header fields, then every array as nested lists at its full shape
        (gates.<g> and unit_means.<g> grouped by gate); arrays the frame lacks are null."""

        def listed(name: str) -> Any:
            return self.arrays[name].tolist() if name in self.arrays else None

        def group(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v.tolist() for k, v in self.arrays.items() if k.startswith(prefix)}

        h = self.header
        return {
            "step": h["step"],
            "loss": h["loss"],
            "last_step": h["last_step"],
            "tokens": h["tokens"],
            "marks": h["marks"],
            "mark_label": h["mark_label"],
            "saturation": h["saturation"],
            "pool": h["pool"],
            "notes": h["notes"],
            "source": h["source"],
            **{name: listed(name) for name in VALUE_ARRAYS},
            "gates": group("gates."),
            "unit_means": group("unit_means."),
            **{name: listed(name) for name in GRADIENT_ARRAYS},
            **{name: listed(name) for name in THEORY_ARRAYS},
        }


# -- pooling --------------------------------------------------------------------------------


def bin_width(n: int, max_n: int) -> int:
    """How many neighbours pool into one bin so that n fit in at most max_n bins."""
    return max(1, math.ceil(n / max_n))


def pool(a: Array, axis: int, width: int, how: Literal["max", "mean", "first"]) -> Array:
    """`a` pooled along `axis` in bins of `width` (the last bin may be shorter)."""
    if width <= 1:
        return a
    n = a.shape[axis]
    starts = np.arange(0, n, width)
    if how == "first":
        return np.ascontiguousarray(np.take(a, starts, axis=axis))
    if n % width == 0:  # whole bins: a reshape, many times faster than reduceat
        axis %= a.ndim
        binned = a.reshape(*a.shape[:axis], n // width, width, *a.shape[axis + 1 :])
        if how == "max":
            return np.asarray(binned.max(axis=axis + 1), np.float32)
        return np.asarray(binned.mean(axis=axis + 1, dtype=np.float64), np.float32)
    if how == "max":
        return np.maximum.reduceat(a, starts, axis=axis)
    sums = np.add.reduceat(a, starts, axis=axis, dtype=np.float64)
    counts = np.diff(np.append(starts, n)).reshape([-1 if i == axis % a.ndim else 1 for i in range(a.ndim)])
    return (sums / counts).astype(np.float32)


def _pool_array(name: str, a: Array, tw: int, uw: int) -> Array:
    """One array pooled by its rule: `tw` timesteps and `uw` units to a bin."""
    if name in ("inputs", "outputs"):  # (T, I), (T, O)
        return pool(a, 0, tw, "mean")
    if name in ("h", "c") or name.startswith("gates."):  # (L, T, U)
        return pool(pool(a, 1, tw, "mean"), 2, uw, "mean")
    if name.startswith("unit_means."):  # (L, U)
        return pool(a, 1, uw, "mean")
    if name in ("grad_h", "grad_h_last", "grad_c"):  # (L, T)
        return pool(a, 1, tw, "max")
    if name == "itemized":  # (L, T, T)
        return pool(pool(a, 1, tw, "max"), 2, tw, "max")
    if name == "connectivity_itemized":  # (T, T)
        return pool(pool(a, 0, tw, "max"), 1, tw, "max")
    if name in ("mask", "connectivity", "connectivity_total"):  # (T,)
        return pool(a, 0, tw, "max")
    if name in ("jacobian_norm", "cell_path_max"):  # (L, D, T)
        return pool(a, 2, tw, "max")
    if name == "cell_path_mean":  # (L, D, T)
        return pool(a, 2, tw, "mean")
    if name in ("w_hh_radius", "w_hh_singular"):  # (L, D, G), (L, D, G, K): no t, no unit axis
        return a
    if name == "targets":  # (T,) class ids, or (T, O) values
        return pool(a, 0, tw, "first")
    raise ValueError(f"no pooling rule for the array {name!r}")


# -- bytes helpers --------------------------------------------------------------------------


def _read_header(buf: memoryview) -> tuple[dict[str, Any], int]:
    """The header (with its array table) and where the arrays may start."""
    if len(buf) < _LENGTH.size:
        raise ValueError("not a probe frame: shorter than its 4-byte header length")
    (n,) = _LENGTH.unpack_from(buf, 0)
    if _LENGTH.size + n > len(buf):
        raise ValueError(f"not a probe frame: the header length {n} runs past the end ({len(buf)} bytes)")
    try:
        header = json.loads(bytes(buf[_LENGTH.size : _LENGTH.size + n]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a probe frame: the header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("type") != "probe":
        raise ValueError("not a probe frame: the header's type is not 'probe'")
    if not isinstance(header.get("arrays"), list):
        raise ValueError("not a probe frame: the header has no array table")
    return header, _LENGTH.size + n


def _read_array(buf: memoryview, spec: dict[str, Any], start: int) -> Array:
    name, dtype, shape = spec["name"], _DTYPES.get(spec["dtype"]), tuple(int(n) for n in spec["shape"])
    if dtype is None:
        raise ValueError(f"not a probe frame: array {name} has an unknown dtype {spec['dtype']!r}")
    count = math.prod(shape)
    offset = int(spec["offset"])
    if offset < start or offset % _ALIGN:
        raise ValueError(f"not a probe frame: array {name} is not at an aligned offset after the header")
    if min(shape, default=0) < 0 or offset + count * dtype.itemsize > len(buf):
        raise ValueError(f"not a probe frame: array {name} runs past the end of the message")
    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape).astype(np.float32)  # astype copies: independent of the message


def _dtype_of(name: str) -> str:
    return "float32" if name in GRADIENT_ARRAYS or name in THEORY_ARRAYS else "float16"


def _finite(values: NDArray[Any], dtype: str) -> Array:
    """A float32 copy as `dtype` stores it: NaN -> 0, out of range -> +-the largest finite."""
    limit = FLOAT16_MAX if dtype == "float16" else FLOAT32_MAX
    a = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=limit, neginf=-limit)
    return np.ascontiguousarray(np.clip(a, -limit, limit).astype(_DTYPES[dtype]).astype(np.float32))


def _json_float(x: float) -> float | None:
    """A float JSON can carry: NaN -> None, +-inf -> +-float32 max."""
    x = float(x)
    if math.isnan(x):
        return None
    return max(-FLOAT32_MAX, min(FLOAT32_MAX, x))


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN

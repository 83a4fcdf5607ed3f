"""The one binary encoding of a probe frame, shared by storage, the websocket, REST and export.

What this is: `encode_probe` packs an `app.core.probes.ProbeFrame` into one self-describing
message; `decode_probe` unpacks it into its JSON header and float32 numpy arrays; `probe_public`
turns it into the REST JSON of a frame. The layout (see docs/protocol.md):

    uint32 little-endian N | N bytes UTF-8 JSON header | zero padding to a multiple of 8 | arrays

Every array starts at a multiple of 8 bytes from the message start (so a browser can view it as
a typed array in place) and is listed in the header as {"name", "dtype", "shape", "offset",
"nbytes"}, offsets counted from the message start. Values (inputs, outputs, targets, mask, h, c,
gates.<g>, unit_means.<g>) are float16, clipped to +-65504; gradient norms (grad_h, grad_h_last,
grad_c, itemized, connectivity, connectivity_total, connectivity_itemized) are float32, exactly
as the probe computed them. NaN is stored as 0 and +-inf as the dtype's largest finite value, so
a decoded frame is always finite and json-safe. Arrays a frame lacks (None) are not listed.

What this is not: a general serialization library, or a place that knows about runs, storage or
sockets. It is pure bytes in, bytes out.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.core.probes import ProbeFrame

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
_DTYPES: dict[str, np.dtype[Any]] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
_LENGTH = struct.Struct("<I")
_ALIGN = 8

Array = NDArray[np.float32]


def encode_probe(run_id: str, frame: ProbeFrame) -> bytes:
    """The binary message of one probe frame of run `run_id` (layout in the module docstring)."""
    arrays: list[tuple[str, str, NDArray[Any]]] = []
    for name in VALUE_ARRAYS:
        value = getattr(frame, name)
        if value is not None:
            arrays.append((name, "float16", _finite(value, "float16")))
    arrays += [(f"gates.{g}", "float16", _finite(v, "float16")) for g, v in frame.gates.items()]
    arrays += [(f"unit_means.{g}", "float16", _finite(v, "float16")) for g, v in frame.unit_means.items()]
    for name in GRADIENT_ARRAYS:
        value = getattr(frame, name)
        if value is not None:
            arrays.append((name, "float32", _finite(value, "float32")))

    relative, size = [], 0  # offsets from the first array, each aligned
    for _, _, a in arrays:
        relative.append(size)
        size = _aligned(size + a.nbytes)
    header: dict[str, Any] = {
        "type": "probe",
        "run_id": run_id,
        "step": int(frame.step),
        "loss": _json_float(frame.loss),
        "last_step": int(frame.last_step),
        "tokens": list(frame.tokens) if frame.tokens is not None else None,
        "saturation": {
            gate: {side: [_json_float(x) for x in values] for side, values in sides.items()}
            for gate, sides in frame.saturation.items()
        },
        "arrays": [],
    }
    # the offsets are in the header, whose length moves the offsets: iterate to the fixed point
    # (the start only grows with the digits of the offsets, so this ends in a step or two)
    start = _ALIGN
    while True:
        header["arrays"] = [
            {"name": name, "dtype": dtype, "shape": list(a.shape), "offset": start + rel, "nbytes": a.nbytes}
            for (name, dtype, a), rel in zip(arrays, relative, strict=True)
        ]
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        needed = _aligned(_LENGTH.size + len(text))
        if needed == start:
            break
        start = needed

    out = bytearray(start + (relative[-1] + arrays[-1][2].nbytes if arrays else 0))
    _LENGTH.pack_into(out, 0, len(text))
    out[_LENGTH.size : _LENGTH.size + len(text)] = text
    for (_, _, a), rel in zip(arrays, relative, strict=True):
        out[start + rel : start + rel + a.nbytes] = a.tobytes()
    return bytes(out)


def decode_probe(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, Array]]:
    """The header and the arrays (float32 copies, by name) of a message from `encode_probe`.

    ValueError with a sentence if `data` is not a well-formed probe frame.
    """
    buf = memoryview(data).cast("B")
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
    arrays: dict[str, Array] = {}
    for spec in header.get("arrays", []):
        name, dtype, shape = spec["name"], _DTYPES.get(spec["dtype"]), tuple(spec["shape"])
        if dtype is None:
            raise ValueError(f"not a probe frame: array {name} has an unknown dtype {spec['dtype']!r}")
        count = math.prod(shape)
        offset = int(spec["offset"])
        if offset < 0 or offset + count * dtype.itemsize > len(buf):
            raise ValueError(f"not a probe frame: array {name} runs past the end of the message")
        flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
        arrays[name] = flat.reshape(shape).astype(np.float32)  # astype copies: independent of `data`
    return header, arrays


def probe_public(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The REST JSON of a frame: plain (finite) floats in nested lists, keyed as documented in docs/api.md."""
    return frame_public(*decode_probe(data))


def frame_public(header: dict[str, Any], arrays: dict[str, NDArray[np.float32]]) -> dict[str, Any]:
    """The REST JSON of decoded (or pooled) frame arrays.

    Layer-0 views (grad_h_last, itemized) are the bottom layer, where the vanishing picture is;
    grad_h_last_layers keeps every layer.
    """

    def listed(name: str) -> Any:
        return arrays[name].tolist() if name in arrays else None

    def layer0(name: str) -> Any:
        return arrays[name][0].tolist() if name in arrays else None

    def group(prefix: str) -> dict[str, Any]:
        return {k[len(prefix) :]: v.tolist() for k, v in arrays.items() if k.startswith(prefix)}

    return {
        "step": header["step"],
        "loss": header["loss"],
        "tokens": header["tokens"],
        "inputs": listed("inputs"),
        "targets": listed("targets"),
        "mask": listed("mask"),
        "outputs": listed("outputs"),
        "h": listed("h"),
        "c": listed("c"),
        "gates": group("gates."),
        "grad_h": listed("grad_h"),
        "grad_h_last": layer0("grad_h_last"),
        "grad_h_last_layers": listed("grad_h_last"),
        "grad_c": listed("grad_c"),
        "itemized": layer0("itemized"),
        "connectivity": listed("connectivity"),
        "connectivity_total": listed("connectivity_total"),
        "connectivity_itemized": listed("connectivity_itemized"),
        "saturation": header["saturation"],
        "unit_means": group("unit_means."),
        "last_step": header["last_step"],
    }


def _finite(values: NDArray[Any], dtype: str) -> NDArray[Any]:
    """A C-contiguous little-endian copy in `dtype`: NaN -> 0, out of range -> +-the largest finite."""
    limit = FLOAT16_MAX if dtype == "float16" else FLOAT32_MAX
    a = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=limit, neginf=-limit)
    return np.ascontiguousarray(np.clip(a, -limit, limit).astype(_DTYPES[dtype]))


def _json_float(x: float) -> float | None:
    """A float JSON can carry: NaN -> None, +-inf -> +-float32 max."""
    x = float(x)
    if math.isnan(x):
        return None
    return max(-FLOAT32_MAX, min(FLOAT32_MAX, x))


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN

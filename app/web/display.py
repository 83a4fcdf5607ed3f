"""Display endpoints: a run's recorded probes and metrics, sized for a browser to draw.

What this is: a few read-only routes the pages use, each small enough to draw at once however long
the run. Probe frames are immutable once stored, so what these routes extract from a frame is
cached per (run, step).

- GET /api/runs/{id}/gradflow?kind=last|total&layer=&max_rows=&max_cols= — the gradient-flow
  heatmap: one row per probe frame (downsampled evenly to `max_rows`, always keeping the first
  frame, step 0, and the last), columns t pooled by max to at most `max_cols` (a bin's brightest
  value survives), plus each kept frame's gate saturation.
- GET /api/runs/{id}/display/{step|latest}?max_t=&max_units= — one probe frame as the REST JSON
  of GET .../probes/{step}, with time pooled when T > max_t and units pooled when there are more
  than max_units (values by mean, gradient norms by max); `t_index`/`unit_index` give the first
  t / unit of each pooled column / row.
- GET /api/runs/{id}/task — the run's task with the baseline loss at the run's own parameters.
- GET /api/sparklines?ids=a,b&points= — each run's loss, bucketed to `points` means.

What this is not: the REST API of record (app/web/api.py) or the frame encoding (frames.py). It
adds no data: everything here is a view of what storage already holds.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import threading
from array import array
from collections import OrderedDict
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from numpy.typing import NDArray
from pydantic import BaseModel

from app.core.tasks import make_task
from app.services.frames import decode_probe, frame_public
from app.services.storage import Storage
from app.web.deps import RunDep, StorageDep, require_token

MAX_T = 500  # frames with more timesteps than this are pooled for display
MAX_UNITS = 256  # ... and with more units than this
CACHE_FRAMES = 20_000  # (run, step) extracts kept for the gradient-flow view
CACHE_RUNS = 128  # runs whose loss curve is kept for sparklines

Array = NDArray[np.float32]

router = APIRouter(prefix="/api", tags=["display"], dependencies=[Depends(require_token)])

# -- pure helpers (tested directly) -------------------------------------------------------


def keep_rows(n: int, max_rows: int) -> list[int]:
    """Indices of at most `max_rows` of n rows, evenly spread, always the first and the last."""
    if n <= max_rows:
        return list(range(n))
    picks = np.unique(np.linspace(0, n - 1, max(max_rows, 2)).round().astype(int))
    return [int(i) for i in picks]


def bin_width(n: int, max_n: int) -> int:
    """How many neighbours pool into one bin so that n fit in at most max_n bins."""
    return max(1, math.ceil(n / max_n))


def pool(a: Array, axis: int, width: int, how: Literal["max", "mean"]) -> Array:
    """Pool `a` along `axis` in bins of `width` (the last bin may be shorter)."""
    if width <= 1:
        return a
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    bins = math.ceil(n / width)
    pad = bins * width - n
    fill = -np.inf if how == "max" else np.nan
    padded = np.concatenate([a, np.full((*a.shape[:-1], pad), fill, a.dtype)], axis=-1) if pad else a
    shaped = padded.reshape(*a.shape[:-1], bins, width)
    out = shaped.max(axis=-1) if how == "max" else np.nanmean(shaped, axis=-1)
    return np.moveaxis(out.astype(np.float32), -1, axis)


_LENGTH = struct.Struct("<I")
_DTYPES: dict[str, np.dtype[Any]] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}


def read_arrays(data: bytes, names: set[str]) -> tuple[dict[str, Any], dict[str, Array]]:
    """The header and only the named arrays of a frame (frames.decode_probe decodes every array)."""
    (n,) = _LENGTH.unpack_from(data, 0)
    header: dict[str, Any] = json.loads(data[_LENGTH.size : _LENGTH.size + n])
    arrays: dict[str, Array] = {}
    for spec in header["arrays"]:
        if spec["name"] in names:
            shape = tuple(spec["shape"])
            dtype = _DTYPES[spec["dtype"]]
            flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=int(spec["offset"]))
            arrays[spec["name"]] = flat.reshape(shape).astype(np.float32)
    return header, arrays


# -- the gradient-flow history --------------------------------------------------------------


class GradFlow(BaseModel):
    kind: Literal["last", "total"]
    layer: int
    T: int  # timesteps of the frames (before pooling)
    width: int  # timesteps pooled into one column
    steps: list[int]  # the training step of each row (kept probe frames, in order)
    t: list[int]  # the first timestep of each column
    z: list[list[float]]  # [row][column] the gradient norm (max over the column's timesteps)
    saturation: dict[str, dict[str, list[float]]]  # gate -> {"low", "high"} -> one value per row
    total_rows: int  # probe frames recorded (rows before downsampling)


class _Extract:
    __slots__ = ("grad_h", "grad_h_last", "saturation")

    def __init__(self, header: dict[str, Any], arrays: dict[str, Array]) -> None:
        self.grad_h = arrays["grad_h"]
        self.grad_h_last = arrays["grad_h_last"]
        self.saturation: dict[str, dict[str, list[float]]] = header["saturation"]


_extracts: OrderedDict[tuple[str, int], _Extract] = OrderedDict()
_extracts_lock = threading.Lock()


def _extract(storage: Storage, run_id: str, step: int) -> _Extract | None:
    key = (run_id, step)
    with _extracts_lock:
        hit = _extracts.get(key)
        if hit is not None:
            _extracts.move_to_end(key)
            return hit
    data = storage.probe(run_id, step)
    if data is None:
        return None
    extract = _Extract(*read_arrays(data, {"grad_h", "grad_h_last"}))
    with _extracts_lock:
        _extracts[key] = extract
        while len(_extracts) > CACHE_FRAMES:
            _extracts.popitem(last=False)
    return extract


def gradflow_of(
    storage: Storage, run_id: str, kind: Literal["last", "total"], layer: int, max_rows: int, max_cols: int
) -> GradFlow:
    all_steps = storage.probe_steps(run_id)
    rows: list[Array] = []
    steps: list[int] = []
    saturation: dict[str, dict[str, list[float]]] = {}
    for i in keep_rows(len(all_steps), max_rows):
        extract = _extract(storage, run_id, all_steps[i])
        if extract is None:  # deleted meanwhile
            continue
        norms = extract.grad_h_last if kind == "last" else extract.grad_h
        row = norms[min(layer, norms.shape[0] - 1)]
        if rows and row.shape != rows[0].shape:
            continue  # cannot happen for one run; never mix shapes in one matrix
        rows.append(row)
        steps.append(all_steps[i])
        for gate, sides in extract.saturation.items():
            per_layer = min(layer, len(sides["low"]) - 1)
            entry = saturation.setdefault(gate, {"low": [], "high": []})
            entry["low"].append(float(sides["low"][per_layer]))
            entry["high"].append(float(sides["high"][per_layer]))
    T = int(rows[0].shape[0]) if rows else 0
    width = bin_width(T, max_cols)
    z = pool(np.stack(rows), 1, width, "max") if rows else np.zeros((0, 0), np.float32)
    return GradFlow(
        kind=kind,
        layer=layer,
        T=T,
        width=width,
        steps=steps,
        t=list(range(0, T, width)),
        z=z.tolist(),
        saturation=saturation,
        total_rows=len(all_steps),
    )


@router.get("/runs/{run_id}/gradflow", responses={404: {"description": "no run with this id"}})
def gradflow(
    run: RunDep,
    storage: StorageDep,
    kind: Literal["last", "total"] = "last",
    layer: Annotated[int, Query(ge=0, le=8, description="the layer (the top one if larger)")] = 0,
    max_rows: Annotated[int, Query(ge=2, le=5000)] = 400,
    max_cols: Annotated[int, Query(ge=2, le=5000)] = 500,
) -> GradFlow:
    """The gradient-flow heatmap: ||dl_T/dh_t|| (kind=last) or ||dL/dh_t|| (kind=total) of every
    probe frame, rows downsampled keeping the first and the last, columns pooled by max."""
    return gradflow_of(storage, run.id, kind, layer, max_rows, max_cols)


# -- one frame for display ----------------------------------------------------------------

_MEAN_T = ("inputs", "outputs")
_STATES = ("h", "c")
_MAX_T = ("grad_h", "grad_h_last", "grad_c")


def display_frame(data: bytes, max_t: int = MAX_T, max_units: int = MAX_UNITS) -> dict[str, Any]:
    """The REST JSON of a frame (as frames.probe_public), pooled to at most max_t x max_units."""
    header, arrays = decode_probe(data)
    T = int(arrays["mask"].shape[0])
    units = int(arrays["h"].shape[-1])
    tw, uw = bin_width(T, max_t), bin_width(units, max_units)
    pooled: dict[str, Array] = {}
    for name, a in arrays.items():
        if name in _MEAN_T:
            pooled[name] = pool(a, 0, tw, "mean")
        elif name in _STATES or name.startswith("gates."):
            pooled[name] = pool(pool(a, 1, tw, "mean"), 2, uw, "mean")
        elif name.startswith("unit_means."):
            pooled[name] = pool(a, 1, uw, "mean")
        elif name in _MAX_T:
            pooled[name] = pool(a, 1, tw, "max")
        elif name == "itemized":
            pooled[name] = pool(pool(a, 1, tw, "max"), 2, tw, "max")
        elif name == "connectivity_itemized":
            pooled[name] = pool(pool(a, 0, tw, "max"), 1, tw, "max")
        elif name in ("mask", "connectivity", "connectivity_total"):
            pooled[name] = pool(a, 0, tw, "max")
        else:  # targets: the bin's first, like its token
            pooled[name] = a[::tw]

    tokens = header["tokens"]
    return {
        **frame_public({**header, "tokens": tokens[::tw] if tokens is not None else None}, pooled),
        "T": T,
        "units": units,
        "t_width": tw,
        "unit_width": uw,
        "t_index": list(range(0, T, tw)),
        "unit_index": list(range(0, units, uw)),
    }


ProbeStep = Annotated[
    str,
    Path(pattern=r"^(latest|[0-9]{1,12})$", description="a step number, or 'latest'", examples=["latest"]),
]


@router.get(
    "/runs/{run_id}/display/{step}",
    responses={404: {"description": "no such run, or no frame at that step"}},
)
def display(
    run: RunDep,
    step: ProbeStep,
    storage: StorageDep,
    max_t: Annotated[int, Query(ge=2, le=5000)] = MAX_T,
    max_units: Annotated[int, Query(ge=2, le=5000)] = MAX_UNITS,
) -> Response:
    """One probe frame for display: the JSON of GET .../probes/{step}, pooled when it is large,
    with t_index and unit_index naming the first timestep and unit of each pooled bin."""
    data = storage.probe(run.id, None if step == "latest" else int(step))
    if data is None:
        where = "yet" if step == "latest" else f"at step {int(step)}"
        raise HTTPException(404, f"run {run.id} has no probe frame {where}")
    body = json.dumps(display_frame(data, max_t, max_units), separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json")


# -- the run's task -----------------------------------------------------------------------


class RunTask(BaseModel):
    name: str
    title: str
    shape: str
    loss_kind: str
    metric_name: str
    baseline_loss: float  # at this run's parameters
    baseline_metric: float | None  # the baseline in the metric's units, where it has one
    seq_len: int
    input_size: int
    vocab: list[str] | None  # char_lm: the characters, in vocabulary order


@lru_cache(maxsize=256)
def _task_info(name: str, params_json: str) -> RunTask:
    task = make_task(name, **json.loads(params_json))
    baseline = float(task.baseline_loss)
    metric: float | None = None
    if task.metric_name == "bpc":
        metric = baseline / math.log(2)
    elif task.metric_name == "mse":
        metric = baseline
    vocab = getattr(task, "vocab", None)
    return RunTask(
        name=name,
        title=task.title,
        shape=task.shape,
        loss_kind=task.loss_kind,
        metric_name=task.metric_name,
        baseline_loss=baseline,
        baseline_metric=metric,
        seq_len=task.seq_len,
        input_size=task.input_size,
        vocab=list(vocab) if vocab is not None else None,
    )


@router.get("/runs/{run_id}/task", responses={404: {"description": "no run with this id"}})
def run_task(run: RunDep) -> RunTask:
    """The run's task, with its baseline loss at the run's parameters (the catalog has it only at
    the defaults)."""
    spec = run.to_public().config.task
    return _task_info(spec.name, json.dumps(spec.params, sort_keys=True))


# -- sparklines ---------------------------------------------------------------------------


class Sparkline(BaseModel):
    steps: list[int]
    loss: list[float]


class _Curve:
    __slots__ = ("loss", "step", "steps")

    def __init__(self) -> None:
        self.step = 0  # the last step read
        self.steps = array("q")
        self.loss = array("d")


_curves: OrderedDict[str, _Curve] = OrderedDict()
_curves_lock = threading.Lock()


def bucket_means(steps: array[int], values: array[float], points: int) -> Sparkline:
    """At most `points` (step, mean) pairs; the last pair is the last value as it is."""
    n = len(values)
    if n <= points:
        return Sparkline(steps=list(steps), loss=[v if math.isfinite(v) else 0.0 for v in values])
    v = np.nan_to_num(np.frombuffer(values, np.float64), nan=0.0, posinf=1e30, neginf=-1e30)
    edges = np.linspace(0, n, points).astype(int)  # points - 1 buckets, then the last value
    spans = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    means = [float(v[a:b].mean()) for a, b in spans]
    xs = [int(steps[a]) for a, _ in spans]
    return Sparkline(steps=[*xs, int(steps[-1])], loss=[*means, float(v[-1])])


def sparkline_of(storage: Storage, run_id: str, points: int) -> Sparkline:
    with _curves_lock:
        curve = _curves.pop(run_id, None) or _Curve()
    rows = storage.metrics(run_id, since=curve.step)
    for row in rows:
        curve.steps.append(int(row["step"]))
        curve.loss.append(float(row["loss"]))
    if rows:
        curve.step = int(rows[-1]["step"])
    with _curves_lock:
        _curves[run_id] = curve
        while len(_curves) > CACHE_RUNS:
            _curves.popitem(last=False)
    return bucket_means(curve.steps, curve.loss, points)


@router.get("/sparklines")
def sparklines(
    storage: StorageDep,
    ids: Annotated[str, Query(max_length=2000, description="run ids, comma separated")] = "",
    points: Annotated[int, Query(ge=2, le=1000)] = 60,
) -> dict[str, Sparkline]:
    """Each named run's loss as at most `points` bucket means (unknown ids are left out)."""
    out: dict[str, Sparkline] = {}
    for run_id in list(dict.fromkeys(i for i in ids.split(",") if i))[:100]:
        if len(run_id) <= 64 and storage.get_run(run_id) is not None:
            out[run_id] = sparkline_of(storage, run_id, points)
    return out


def forget(run_id: str) -> None:
    """Drop what the caches hold of a run (tests; a deleted run's entries also age out)."""
    with _extracts_lock:
        for key in [k for k in _extracts if k[0] == run_id]:
            del _extracts[key]
    with _curves_lock:
        _curves.pop(run_id, None)

"""What the pages draw beyond a frame, built on the server once and kept: the view service.

What this is: `Views(storage)`, one object per app (the lifespan makes it, app.state.views, and
closes it with the app), holding three caches, each bounded in bytes and dropped oldest first:

- the gradient-flow history (`gradflow`): for a run, a kind ("last": ||dl_T/dh_t||, "total":
  ||dL/dh_t||) and a layer, one row per probe frame at display width, read from the stored history
  rows (app.services.thinning.history_row: a display frame's grad_h / grad_h_last and spectra,
  kept for every probe step however storage thins the frames to the run's budget) and cached per
  (run, step): they never change once stored. `remember` puts a frame's rows in as it is
  published, so a live run's history is built as it goes, never re-read. The rows and their
  assembly into an answer are app.core.flow's (the notebook widget answers with them too);
- each run's loss curve for the sparklines (`sparkline`), read incrementally (`since`);
- each run's task as the pages need it (`run_task`): the baseline at the run's own parameters
  and the text its probe sample reads;
- W_hh's spectra over training (`spectra`, app/services/spectra.py), one row per probe frame,
  read from the stored history rows too (their w_hh_radius / w_hh_singular), cached per (run,
  step) like the gradient-flow rows.

What this is not: storage (it only reads), the frame encoding (frames.py) or routes
(app/web/views.py). It adds no data: everything here is a view of what storage holds.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from pydantic import BaseModel

from app.core.engine import probe_sample
from app.core.flow import FLOW_ARRAYS, FlowKind, FlowRows, FlowView, flow_view, keep_rows
from app.core.frames import Frame
from app.core.tasks import CharLMTask, InputValue, Span, make_task
from app.services.schemas import RunCreate, to_train_config
from app.services.spectra import SPECTRA_ARRAYS, Spectra, SpectraRow, spectra
from app.services.storage import Storage

FLOW_BYTES = 256 * 1024 * 1024  # gradient-flow rows kept: 10,000 frames x 2 kinds x 3 layers x 500 t fit
CURVE_BYTES = 64 * 1024 * 1024  # loss curves kept (16 bytes a step)
TASK_ENTRIES = 1024  # runs whose task view is kept
SPECTRA_BYTES = 32 * 1024 * 1024  # spectra rows kept (an LSTM of 3 layers x 2 directions: 1 kB a row)

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A thread-safe map that drops its least recently used entries beyond `max_bytes`."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._size = size
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: K, value: V) -> None:
        """Keep `value` (re-measured: a grown value is put again); an entry over the bound is not kept."""
        nbytes = self._size(value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            if nbytes > self.max_bytes:
                return
            self._entries[key] = (value, nbytes)
            self.nbytes += nbytes
            while self.nbytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.nbytes -= dropped

    def pop(self, key: K) -> V | None:
        with self._lock:
            hit = self._entries.pop(key, None)
            if hit is None:
                return None
            self.nbytes -= hit[1]
            return hit[0]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


# -- the gradient-flow history ------------------------------------------------------------------


class GradFlow(BaseModel):
    """GET /api/runs/{id}/gradflow (the route answers it as JSON straight from numpy)."""

    kind: FlowKind
    layer: int  # the layer shown (the top one when a larger one was asked for)
    T: int  # timesteps at full resolution (0 before the first frame)
    width: int  # full-resolution timesteps pooled (by max) into one column
    t: list[int]  # the full-resolution t of each column: i * width
    steps: list[int]  # the training step of each row
    z: list[list[float]]  # [row][column] the gradient norm
    saturation: dict[str, dict[str, list[float]]]  # gate -> {"low", "high"} -> one value per row
    total_rows: int  # probe frames the run has stored (rows before thinning)
    last_step: int | None  # the last t with a loss term; None before the first frame


# -- the loss curves ------------------------------------------------------------------------------


class Sparkline(BaseModel):
    steps: list[int]
    loss: list[float]


@dataclass
class _Curve:
    step: int = 0  # the last step read
    steps: array[int] = field(default_factory=lambda: array("q"))
    loss: array[float] = field(default_factory=lambda: array("d"))


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


# -- the run's task -------------------------------------------------------------------------------


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
    probe_text: str | None  # char_lm: the text the run's probe sample reads
    input_value: InputValue | None  # the input channel drawn as a bar at each t; None: the tokens
    spans: list[Span]  # the stretches of t that mean the same in every sample (copy's recall window)


def task_view(config: RunCreate) -> RunTask:
    """The task of a run made with `config`, as the pages read it."""
    task = make_task(config.task.name, **config.task.params)
    baseline = float(task.baseline_loss)
    metric: float | None = None
    if task.metric_name == "bpc":
        metric = baseline / math.log(2)
    elif task.metric_name == "mse":
        metric = baseline
    text: str | None = None
    vocab: list[str] | None = None
    if isinstance(task, CharLMTask):
        vocab = list(task.vocab)
        sample = probe_sample(task, to_train_config(config))
        text = task.decode(sample.inputs[0].argmax(dim=-1))
    return RunTask(
        name=task.name,
        title=task.title,
        shape=task.shape,
        loss_kind=task.loss_kind,
        metric_name=task.metric_name,
        baseline_loss=baseline,
        baseline_metric=metric,
        seq_len=task.seq_len,
        input_size=task.input_size,
        vocab=vocab,
        probe_text=text,
        input_value=task.input_value,
        spans=task.spans(),
    )


# -- the service ----------------------------------------------------------------------------------


class Views:
    """The view caches of one app; every method is safe from any thread."""

    def __init__(
        self, storage: Storage, flow_bytes: int = FLOW_BYTES, curve_bytes: int = CURVE_BYTES
    ) -> None:
        self.storage = storage
        self.flows: LRU[tuple[str, int], FlowRows] = LRU(flow_bytes, lambda rows: rows.nbytes)
        self.curves: LRU[str, _Curve] = LRU(curve_bytes, lambda c: 16 * len(c.steps) + 64)
        self.tasks: LRU[str, RunTask] = LRU(TASK_ENTRIES, lambda _: 1)
        self.spectra_rows: LRU[tuple[str, int], SpectraRow] = LRU(SPECTRA_BYTES, lambda r: r.nbytes)

    def close(self) -> None:
        self.flows.clear()
        self.spectra_rows.clear()
        self.curves.clear()
        self.tasks.clear()

    # -- gradient flow ---------------------------------------------------------------------

    def remember(self, run_id: str, step: int, display: bytes) -> None:
        """Keep the gradient-flow rows of a display frame as it is published (before a page asks)."""
        self.flows.put((run_id, step), FlowRows.of(Frame.from_bytes(display, names=FLOW_ARRAYS)))

    def _rows(self, run_id: str, step: int) -> FlowRows | None:
        rows = self.flows.get((run_id, step))
        if rows is None:
            data = self.storage.history(run_id, step)
            if data is None:  # deleted meanwhile
                return None
            rows = FlowRows.of(Frame.from_bytes(data, names=FLOW_ARRAYS))
            self.flows.put((run_id, step), rows)
        return rows

    def gradflow(
        self, run_id: str, kind: FlowKind, layer: int, max_rows: int, since: int | None = None
    ) -> FlowView:
        """The rows of the run's probe frames (only those after step `since`, when given), thinned
        evenly to `max_rows`, always keeping the first and the last."""
        all_steps = self.storage.history_steps(run_id)
        candidates = all_steps if since is None else all_steps[bisect.bisect_right(all_steps, since) :]
        picked: list[tuple[int, FlowRows]] = []
        for i in keep_rows(len(candidates), max_rows):
            rows = self._rows(run_id, candidates[i])
            if rows is not None:
                picked.append((candidates[i], rows))
        return flow_view(picked, kind, layer, len(all_steps))

    # -- W_hh's spectra ---------------------------------------------------------------------

    def spectra(self, run_id: str, max_rows: int, since: int | None = None) -> Spectra:
        """The spectra of the run's probe frames (after step `since`, when given), thinned evenly
        to `max_rows`, always keeping the first and the last."""
        all_steps = self.storage.history_steps(run_id)
        candidates = all_steps if since is None else all_steps[bisect.bisect_right(all_steps, since) :]
        rows: list[tuple[int, SpectraRow]] = []
        for i in keep_rows(len(candidates), max_rows):
            step = candidates[i]
            row = self.spectra_rows.get((run_id, step))
            if row is None:
                data = self.storage.history(run_id, step)
                if data is None:  # deleted meanwhile
                    continue
                row = SpectraRow.of(Frame.from_bytes(data, names=SPECTRA_ARRAYS))
                self.spectra_rows.put((run_id, step), row)
            rows.append((step, row))
        return spectra(rows, len(all_steps))

    # -- sparklines ------------------------------------------------------------------------

    def sparkline(self, run_id: str, points: int) -> Sparkline:
        """The run's loss as at most `points` bucket means, reading only steps not read before."""
        curve = self.curves.pop(run_id) or _Curve()  # ours alone while we extend it
        rows = self.storage.metrics(run_id, since=curve.step)
        known = [row for row in rows if row["loss"] is not None]  # an attached run's script may send none
        curve.steps.extend(int(row["step"]) for row in known)
        curve.loss.extend(float(row["loss"]) for row in known)
        if rows:
            curve.step = int(rows[-1]["step"])
        self.curves.put(run_id, curve)
        return bucket_means(curve.steps, curve.loss, points)

    # -- the task --------------------------------------------------------------------------

    def run_task(self, run_id: str, config: RunCreate) -> RunTask:
        hit = self.tasks.get(run_id)
        if hit is None:
            hit = task_view(config)
            self.tasks.put(run_id, hit)
        return hit

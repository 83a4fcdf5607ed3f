"""The notebook widget's kernel side: `RunWidget`, which holds runs as snapshots and feeds its front
end, and `NotebookSink`, which turns a watch's steps and frames into what the widget holds.

What this is (the interface is /work/notes/proto13.md, in short):
- a snapshot is one run as the one-file report embeds it: `{run, task, catalog, metrics,
  interventions, gradflow, frames}` with `frames` {step: display frame bytes} here in Python;
  `RunState` keeps one and grows it (`add`): metrics rows, frames, and the gradient-flow rows of
  every frame (app.core.flow), from which it answers gradflow whole or since the last row sent;
- `RunWidget(mode, snapshots, budget_mb)` (anywidget) syncs the trait `_snapshot`: `uint32 LE json
  length | json | frame bytes`, the json `{"runs": [...], "seq": n}` with each run's frames as
  [offset, length] into the bytes after it, frames thinned evenly to the budget (as the group report
  thins them, gatescope.report.share_budget: step 0 and the latest stay). It is set at creation;
  while adds go out, at most every `snapshot_interval(size)` (0.5 s while it is small, so a front
  end that loaded late soon catches up; 5 s for one of 10 MB or more); and by `finish()`. Saved with
  the notebook's widget state, it is what a handed-in notebook shows. Between snapshots, `add()`
  batches increments into custom messages `{"type": "add", "seq", "index", "run", "metrics",
  "frames", "gradflow"}` (`index`: which run; the frames' bytes as buffers, in order), sent at most
  every ADD_SECONDS, the rest after the cell (IPython's post_run_cell) and at `finish()`. Messages
  sent before the front end loaded are lost: a front end that sees a gap in `seq` waits for the next
  snapshot, which replaces all;
- `NotebookSink`: the gatescope.sink.Sink a watch writes to (gatescope.watch(notebook=True)), and
  `TeeSink`, which writes to it and to the watch's run file or server alike.

What this is not: the front end (static/js/widget.js, bundled by gatescope/bundle.py), or a place
that reads the server or a run file (gatescope/show.py). Nothing flows widget -> kernel.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anywidget
import orjson
import traitlets

from app.core.display import view_catalog
from app.core.flow import FLOW_ARRAYS, FLOW_KINDS, FlowRows, flow_view
from app.core.frames import Frame
from app.core.probes import ProbeFrame
from app.core.thinning import kept_steps
from gatescope.report import DEFAULT_BUDGET_MB, MB, share_budget
from gatescope.sink import check_status

ADD_SECONDS = 0.2  # an "add" message at most this often
SNAPSHOT_SECONDS = (0.5, 5.0)  # the _snapshot trait at most this often while adds go out: by its size,
SNAPSHOT_RATE = 2 * 2**20  # bytes a second: a 1 MB snapshot every 0.5 s, a 10 MB one every 5 s


def snapshot_interval(size: int) -> float:
    """Seconds between snapshots of `size` bytes while adds go out."""
    low, high = SNAPSHOT_SECONDS
    return min(high, max(low, size / SNAPSHOT_RATE))


MODES = ("run", "compare")
MAX_COMPARE = 8  # runs side by side
_LENGTH = struct.Struct("<I")


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


class RunState:
    """One run's snapshot as it grows (see the module docstring)."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.data = {k: snapshot.get(k) for k in ("run", "task", "catalog")}
        self.data["catalog"] = self.data["catalog"] or view_catalog()
        self.metrics: list[dict[str, Any]] = list(snapshot.get("metrics") or [])
        self.interventions: list[Any] = list(snapshot.get("interventions") or [])
        self.frames: dict[int, bytes] = {}
        self.flows: list[tuple[int, FlowRows]] = []
        self.given_flow: dict[str, Any] = dict(snapshot.get("gradflow") or {})  # answers made elsewhere
        frames = {int(step): data for step, data in (snapshot.get("frames") or {}).items()}
        if self.given_flow:
            self.frames = frames
        else:
            self.add_frames(frames)
        self.sent_rows = len(self.flows)  # flow rows already in an add (or a snapshot)

    def add_frames(self, frames: Mapping[int, bytes]) -> None:
        if frames and self.given_flow:
            raise ValueError("this run's gradient flow came whole with its snapshot: frames cannot be added")
        again = sorted(set(map(int, frames)) & set(self.frames))
        if again:
            raise ValueError(f"the run already has a frame at step {again[0]}")
        rows = [(int(s), FlowRows.of(Frame.from_bytes(frames[s], names=FLOW_ARRAYS))) for s in sorted(frames)]
        self.frames.update((int(s), data) for s, data in frames.items())  # all checked: none or all kept
        self.flows.extend(rows)

    def thin(self, budget: int) -> None:
        """Keep the frames within `budget` bytes by the snapshot's rule (kept_steps: nested, so a
        frame dropped here is one no later snapshot would keep); the flow rows all stay."""
        kept = kept_steps({step: len(blob) for step, blob in self.frames.items()}, budget)
        self.frames = {step: blob for step, blob in self.frames.items() if step in kept}

    def gradflow(self, since_row: int = 0) -> dict[str, Any]:
        """The gradient-flow answers by "kind|layer" (rows from `since_row` on)."""
        if self.given_flow:
            return self.given_flow
        if not self.flows:
            return {}
        layers = self.flows[-1][1].grad_h.shape[0]
        rows = self.flows[since_row:]
        return {
            f"{kind}|{layer}": flow_view(rows, kind, layer, len(self.flows)).answer()
            for kind in FLOW_KINDS
            for layer in range(layers)
        }

    def part(self) -> dict[str, Any]:
        """The snapshot without its frames (JSON-able)."""
        return {**self.data, "metrics": self.metrics, "interventions": self.interventions}


def encode(states: Sequence[RunState], seq: int, budget_mb: float) -> bytes:
    """The `_snapshot` bytes of `states` (see the module docstring): the runs' frames thinned evenly
    to what the budget leaves after the JSON, shared over the runs as the group report shares it
    (gatescope.report.share_budget); the first and the latest frame of each run always stay."""
    parts = [{**s.part(), "gradflow": s.gradflow()} for s in states]
    fixed = sum(len(_json(p)) for p in parts)
    sizes = [{step: len(blob) + 24 for step, blob in s.frames.items()} for s in states]  # + the JSON's
    blobs: list[bytes] = []
    offset = 0
    for state, part, kept in zip(
        states, parts, share_budget(sizes, int(budget_mb * MB) - fixed), strict=True
    ):
        stored = sorted(state.frames)
        part["frames"] = {}
        for step in kept:
            blob = state.frames[step]
            part["frames"][str(step)] = [offset, len(blob)]
            blobs.append(blob)
            offset += len(blob)
        part["report"] = {
            "budget_mb": budget_mb,
            "stored_steps": stored,
            "kept_steps": kept,
            "left_out": len(stored) - len(kept),
        }
    head = _json({"runs": parts, "seq": seq})
    return b"".join([_LENGTH.pack(len(head)), head, *blobs])


def decode(data: bytes) -> tuple[dict[str, Any], dict[int, dict[int, bytes]]]:
    """`encode`'s JSON and each run's frames ({run index: {step: bytes}}): what a front end reads."""
    (length,) = _LENGTH.unpack_from(data)
    head = orjson.loads(data[_LENGTH.size : _LENGTH.size + length])
    body = data[_LENGTH.size + length :]
    runs = enumerate(head["runs"])
    frames = {i: {int(s): body[o : o + n] for s, (o, n) in run["frames"].items()} for i, run in runs}
    return head, frames


class RunWidget(anywidget.AnyWidget):
    """Runs' views in a notebook: `RunWidget("run", [snapshot])`, or "compare" with 2..8."""

    _esm = traitlets.Unicode("").tag(sync=True)  # gatescope.bundle.widget_esm(), set per widget
    _css = traitlets.Unicode("").tag(sync=True)
    _snapshot = traitlets.Bytes(b"").tag(sync=True)
    _mode = traitlets.Unicode("run").tag(sync=True)
    _budget_mb = traitlets.Float(DEFAULT_BUDGET_MB).tag(sync=True)

    def __init__(
        self,
        mode: str = "run",
        snapshots: Sequence[Mapping[str, Any]] = (),
        budget_mb: float = DEFAULT_BUDGET_MB,
        **kwargs: Any,
    ) -> None:
        from gatescope.bundle import widget_css, widget_esm

        if mode not in MODES:
            raise ValueError(f"a widget's mode is 'run' or 'compare', not {mode!r}")
        if not snapshots:
            raise ValueError("a widget shows at least one run: pass its snapshot")
        if mode == "compare" and not 2 <= len(snapshots) <= MAX_COMPARE:
            raise ValueError(f"compare shows 2 to {MAX_COMPARE} runs side by side, not {len(snapshots)}")
        if not budget_mb > 0:
            raise ValueError(f"budget_mb must be a positive number of MB, not {budget_mb!r}")
        self.states = [RunState(s) for s in snapshots]
        self.seq = 0  # the last add sent (a snapshot carries the seq it includes)
        self._pending: dict[int, dict[str, Any]] = {}  # run index -> its next add, not sent yet
        self._last_add = 0.0
        self._last_snapshot = time.monotonic()
        self._adds_since_snapshot = False
        first = encode(self.states, 0, budget_mb)
        super().__init__(
            _esm=widget_esm(), _css=widget_css(), _mode=mode, _budget_mb=budget_mb, _snapshot=first, **kwargs
        )
        self._shell: Any = None  # the IPython shell whose post_run_cell flushes us, once adds come

    def add(
        self,
        index: int = 0,
        *,
        run: Mapping[str, Any] | None = None,
        metrics: Sequence[Mapping[str, Any]] = (),
        frames: Mapping[int, bytes] | None = None,
    ) -> None:
        """More of run `index`: its record as it stands now, new metrics rows, new display frames
        by step. Sent in the next "add" (at most every ADD_SECONDS), kept for the next snapshot."""
        if not 0 <= index < len(self.states):
            raise ValueError(f"run {index} is not one of the widget's {len(self.states)} runs")
        if self._shell is None and (shell := _shell()) is not None:
            self._shell = shell
            shell.events.register("post_run_cell", self._after_cell)
        state = self.states[index]
        state.add_frames(frames or {})
        state.thin(int(self._budget_mb * MB))  # the kernel holds no more than a snapshot can show
        state.metrics.extend(dict(m) for m in metrics)
        pending = self._pending.setdefault(index, {"metrics": [], "frames": []})
        if run is not None:
            state.data["run"] = dict(run)
            pending["run"] = dict(run)
        pending["metrics"].extend(dict(m) for m in metrics)
        pending["frames"].extend(sorted(int(s) for s in frames or {}))
        self._flush(force=False)

    def finish(self) -> None:
        """Send what is pending and the final snapshot (the widget stays shown)."""
        self._flush(force=True)
        self._snapshot_now()
        if self._shell is not None:
            self._shell.events.unregister("post_run_cell", self._after_cell)
            self._shell = None

    def _after_cell(self, *_: Any) -> None:
        self._flush(force=True)
        if self._adds_since_snapshot:
            self._snapshot_now()

    def _flush(self, force: bool) -> None:
        now = time.monotonic()
        if not self._pending or (not force and now - self._last_add < ADD_SECONDS):
            return
        pending, self._pending = self._pending, {}
        for index, part in sorted(pending.items()):
            state = self.states[index]
            self.seq += 1
            message = {"type": "add", "seq": self.seq, "index": index, **part}
            message["gradflow"] = state.gradflow(state.sent_rows) if part["frames"] else {}
            state.sent_rows = len(state.flows)
            message["frames"] = [s for s in part["frames"] if s in state.frames]  # not thinned meanwhile
            self.send(orjson.loads(_json(message)), [state.frames[s] for s in message["frames"]])
        self._last_add = now
        self._adds_since_snapshot = True
        if now - self._last_snapshot >= snapshot_interval(len(self._snapshot)):
            self._snapshot_now()

    def _snapshot_now(self) -> None:
        self._snapshot = encode(self.states, self.seq, self._budget_mb)
        self._last_snapshot = time.monotonic()
        self._adds_since_snapshot = False


def _shell() -> Any:
    """The IPython shell running this code, or None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - anywidget brings IPython
        return None
    return get_ipython()


# -- a watch into the widget --------------------------------------------------------------------


def attached_run(
    attach: Mapping[str, Any],
    module: int,
    run_id: str,
    group: str | None,
    end: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RunPublic JSON of an attached run (one watched module of the AttachCreate `attach`), as
    the server would show it; `end` is a run file's end record (None: still running)."""
    spec = dict(attach["modules"][module])
    path = spec.pop("path", "")
    keys = ("name", "script", "every", "probe", "probe_budget", "parameters", "client")
    config = {**spec, "module": path, **{k: attach.get(k) for k in keys}}
    config.update(parameters=attach.get("parameters") or {}, probe=attach.get("probe") or "live")
    config.update(stop_requested=False, dropped_frames=int((end or {}).get("dropped_frames") or 0))
    now = datetime.now(UTC).isoformat()
    status = (end or {}).get("status", "running")
    return {
        "id": run_id,
        "status": status,
        "kind": "attached",
        "name": attach.get("name"),
        "tags": [],
        "config": config,
        "created_at": now,
        "started_at": now,
        "finished_at": now if end is not None else None,
        "step": 0,
        "steps": 0,
        "error": (end or {}).get("error"),
        "group": group,
        "queue_position": None,
        "fork": None,
        "forks": [],
        "storage_mb": None,
        "storage_bytes": 0,
        "notes": [],
        "executor": None,
        "node": None,
    }


def display_frame(frame: Frame) -> bytes:
    """A frame's display bytes (Frame.pooled: what the pages draw)."""
    return frame.pooled().to_bytes()


class NotebookSink:
    """The Sink of gatescope.watch(notebook=True): one run per watched module in a RunWidget,
    `widget` (mode "run" for one module, "compare" for 2..8), made when the watch opens (and shown
    under the cell with show=True); nothing is stored here."""

    def __init__(self, budget_mb: float = DEFAULT_BUDGET_MB, show: bool = False) -> None:
        self.budget_mb = budget_mb
        self.show = show  # display the widget under the cell when it opens
        self.widget: RunWidget | None = None
        self.runs: list[dict[str, Any]] = []
        self.frames = 0  # frames handed to the widget
        self.stop_requested = False
        self.dropped_frames = 0
        self._closed = False

    def open(self, attach: dict[str, Any]) -> None:
        n = len(attach["modules"])
        if n > MAX_COMPARE:
            raise ValueError(
                f"the notebook widget shows at most {MAX_COMPARE} watched modules side by side, not {n}: "
                "pick some with modules=[...]"
            )
        group = uuid.uuid4().hex[:12]
        self.runs = [attached_run(attach, i, uuid.uuid4().hex[:12], group) for i in range(n)]
        snapshots = [{"run": run} for run in self.runs]
        self.widget = RunWidget("run" if n == 1 else "compare", snapshots, self.budget_mb)
        if self.show:
            from IPython.display import display

            display(self.widget)  # type: ignore[no-untyped-call]

    def step(self, row: dict[str, Any]) -> None:
        for i, run in enumerate(self.runs):
            run["step"] = run["steps"] = int(row["step"])
            self._widget.add(i, run=run, metrics=[row])

    def frame(self, module: int, frame: ProbeFrame) -> None:
        if not 0 <= module < len(self.runs):
            raise ValueError(f"module {module} is not one of the {len(self.runs)} watched modules")
        data = display_frame(Frame.from_probe(self.runs[module]["id"], frame))
        self.frames += 1
        self._widget.add(module, frames={frame.step: data})

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        check_status(status)
        if self._closed or self.widget is None:
            return
        self._closed = True
        now = datetime.now(UTC).isoformat()
        for i, run in enumerate(self.runs):
            run.update(status=status, error=error, finished_at=now)
            self.widget.add(i, run=run)
        self.widget.finish()

    @property
    def _widget(self) -> RunWidget:
        if self.widget is None or self._closed:
            raise RuntimeError("the notebook sink is not open")
        return self.widget


class TeeSink:
    """Several sinks as one (a watch's widget and its run file, or its server): every call to each,
    in order; stop is asked when any asks it."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def open(self, attach: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.open(attach)

    def step(self, row: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.step(row)

    def frame(self, module: int, frame: ProbeFrame) -> None:
        for sink in self.sinks:
            sink.frame(module, frame)

    @property
    def stop_requested(self) -> bool:
        return any(sink.stop_requested for sink in self.sinks)

    @property
    def dropped_frames(self) -> int:
        return max(int(sink.dropped_frames) for sink in self.sinks)

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        for sink in self.sinks:
            sink.close(status, error, timeout)

    def __getattr__(self, name: str) -> Any:
        """The first sink's `path`, `run_ids`, `widget`... (what Watch reads of its sink)."""
        for sink in self.sinks:
            if hasattr(sink, name):
                return getattr(sink, name)
        raise AttributeError(name)

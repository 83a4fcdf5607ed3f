"""The training worker: the body of one run, in its own process.

What this is: `main(run_id, config_json, conn, stop_event)`, the target of a multiprocessing
"spawn" Process started by the local executor (app.services.executors.local); the Ray executor's
actor calls `run` in a thread instead. It builds the run's Trainer (one torch thread),
iterates `Trainer.events()` and sends each event to the parent over `conn` as a tuple:

    ("step", metrics: dict)                          every training step (StepMetrics as a dict)
    ("probe", step, full: bytes, display: bytes | None, checkpoint: bytes | None, snapshot: bytes)
                                                     every probe: the frame's bytes
                                                     (frames.Frame.to_bytes) and those of its
                                                     display frame, None when it is the same;
                                                     the snapshot: torch.save of Trainer.state()
    ("checkpoint", step, checkpoint: bytes)          before "end", if the weights sent are stale
    ("end", status, step, reason)                    the run's End, then the process exits 0
    ("error", "<ExcType>: message")                  any exception; the process exits 1
    ("paused", step) / ("resumed", step)             the run is paused after step `step` / goes on
    ("intervened", id, step, changes)                intervention `id` applied after step `step`
    ("refused", id, "message")                       intervention `id` not applied (nothing changed)

The parent controls the run over a second pipe, `control` (parent -> worker), read between two
steps (Trainer.events' `between`): ("pause",) blocks the worker there, waiting on the pipe (no
CPU) and still watching `stop_event` and its parent, until ("resume",); ("intervene", id, changes)
applies Trainer.apply(changes) there, whole or not at all.

A checkpoint is `torch.save` of {"config": RunCreate JSON dict, "step", "state_dict":
net.rnn.state_dict(), "readout": net.readout.state_dict(), "vocab": list[str] | None}; it loads
with torch.load(weights_only=True) and its state_dict loads straight into torch.nn.LSTM / GRU /
RNN(batch_first=True). Small nets (<= 4 MB of weights) send one with every probe; larger ones at
most every 5 s, and always the final weights before "end".

Between events the worker polls `stop_event` (then asks the trainer to stop after the step in
progress) and its parent's pid: if the parent has died, or the pipe is broken, it exits at once.
SIGINT is ignored, so a Ctrl-C in the server's terminal lets the server stop its runs itself.

A fork's worker is given the snapshot it starts from and the changes: it restores the trainer
from the snapshot, applies the changes (Trainer.apply) and goes on from that step.

What this is not: a scheduler. It knows nothing of storage, queues or other runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Protocol

import torch

from app.core.cost import SMALL_CHECKPOINT_BYTES
from app.core.engine import End, StepMetrics, Trainer
from app.core.frames import Frame
from app.core.probes import ProbeFrame
from app.services.schemas import RunCreate, to_train_config

CHECKPOINT_SECONDS = 5.0  # larger ones at most this often
MAX_ERROR_CHARS = 2000
PAUSED_POLL_SECONDS = 0.1  # a paused worker's longest wait before it looks at stop_event again
Start = tuple[bytes, dict[str, Any]]  # a fork's snapshot (snapshot_bytes) and changes (InterventionCreate's)


class StopSignal(Protocol):
    """What the worker needs of a multiprocessing (or threading) Event."""

    def is_set(self) -> bool: ...


class Outbox(Protocol):
    """Where the worker sends its messages: a Connection, or a Ray actor's buffer."""

    def send(self, obj: Any) -> None: ...


class Inbox(Protocol):
    """Where the worker reads its control messages: a Connection, or a Ray actor's queue."""

    def poll(self, timeout: float = 0.0) -> bool: ...

    def recv(self) -> Any: ...


class ParentGoneError(Exception):
    """The parent process died or closed its end of the pipe."""


def main(
    run_id: str,
    config_json: str,
    conn: Connection,
    stop_event: StopSignal,
    control: Connection | None = None,
    start: Start | None = None,
) -> None:
    """Process entry point: run, close the pipe, exit with run()'s code.

    It leaves with os._exit: tearing down an interpreter that has loaded torch takes 1-2 s, which
    would hold the run's slot for nothing (the worker owns no files, and the pipe is closed).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = 1
    try:
        code = run(run_id, config_json, conn, stop_event, control, start)
    except BaseException:  # pragma: no cover - run() reports every Exception itself
        traceback.print_exc()
    finally:
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(
    run_id: str,
    config_json: str,
    conn: Outbox,
    stop_event: StopSignal,
    control: Inbox | None = None,
    start: Start | None = None,
) -> int:
    """Train one run, sending its events over `conn`; the exit code (0 after "end", 1 on error).
    `start`: a fork's (snapshot bytes, changes) to go on from.

    Callable in-process (from a thread: tests, the Ray actor): it never touches signals or exits.
    `conn` and `control` are Connections in a worker process, an actor's buffer and queue on Ray
    (app.services.executors.ray_actor).
    """
    parent = os.getppid()
    try:
        config = RunCreate.model_validate_json(config_json)
        trainer = Trainer(to_train_config(config, threads=1))
        if start is not None:
            snapshot, changes = start
            trainer.restore(torch.load(io.BytesIO(snapshot), weights_only=True))
            trainer.apply(changes)
        checkpoints = _Checkpoints(config, trainer)
        bench = _Bench(trainer, conn, stop_event, control, parent)
        for event in trainer.events(bench.between):
            if isinstance(event, StepMetrics):
                # "time": the wall clock when the step was done, so a viewer can measure latency
                _send(conn, ("step", {**dataclasses.asdict(event), "time": time.time()}))
            elif isinstance(event, ProbeFrame):
                full, display = frame_bytes(run_id, event)
                ckpt = checkpoints.due(trainer.step)
                _send(conn, ("probe", event.step, full, display, ckpt, snapshot_bytes(trainer)))
            elif isinstance(event, End):
                if checkpoints.sent_step != trainer.step:
                    _send(conn, ("checkpoint", trainer.step, checkpoints.take(trainer.step)))
                _send(conn, ("end", event.status, event.step, event.reason))
                return 0
            if os.getppid() != parent:
                raise ParentGoneError
            if stop_event.is_set():
                trainer.stop()
        raise AssertionError("Trainer.events() always ends with End")  # pragma: no cover
    except ParentGoneError:
        return 1
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(ParentGoneError):
            _send(conn, ("error", message[:MAX_ERROR_CHARS]))
        return 1


def frame_bytes(run_id: str, probe: ProbeFrame) -> tuple[bytes, bytes | None]:
    """The bytes of a probe's frame and of its display frame (None when that is the frame itself):
    the pooling happens here, once per frame, off the server's process."""
    frame = Frame.from_probe(run_id, probe)
    display = frame.pooled()
    return frame.to_bytes(), display.to_bytes() if display is not frame else None


def snapshot_bytes(trainer: Trainer) -> bytes:
    """The torch.save bytes of the trainer's state (Trainer.state: what a fork goes on from)."""
    buf = io.BytesIO()
    torch.save(trainer.state(), buf)
    return buf.getvalue()


def checkpoint_bytes(config: RunCreate, trainer: Trainer) -> bytes:
    """The torch.save bytes of the trainer's current weights (layout in the module docstring)."""
    vocab = getattr(trainer.task, "vocab", None)
    buf = io.BytesIO()
    torch.save(
        {
            "config": config.model_dump(mode="json"),
            "step": trainer.step,
            "state_dict": trainer.net.rnn.state_dict(),
            "readout": trainer.net.readout.state_dict(),
            "vocab": list(vocab) if vocab is not None else None,
        },
        buf,
    )
    return buf.getvalue()


class _Bench:
    """The worker's side of the control pipe: pause, resume, intervene (read between two steps)."""

    def __init__(
        self, trainer: Trainer, conn: Outbox, stop: StopSignal, control: Inbox | None, parent: int
    ) -> None:
        self.trainer, self.conn, self.stop_event, self.control = trainer, conn, stop, control
        self.parent = parent
        self.paused = False

    def between(self) -> None:
        """Handle what the parent sent; while paused, wait here (on the pipe) for a resume or a stop."""
        if self.control is None:
            return
        while True:
            if self.stop_event.is_set():
                self.trainer.stop()
                return
            if os.getppid() != self.parent:
                raise ParentGoneError
            try:
                ready = self.control.poll(PAUSED_POLL_SECONDS if self.paused else 0)
                message = self.control.recv() if ready else None
            except (OSError, EOFError) as exc:
                raise ParentGoneError from exc
            if message is not None:
                self._handle(message)
            elif not self.paused:
                return

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "intervene":
            _, intervention_id, changes = message
            try:
                self.trainer.apply(changes)
            except ValueError as exc:
                _send(self.conn, ("refused", intervention_id, str(exc)))
            else:
                _send(self.conn, ("intervened", intervention_id, self.trainer.step, changes))
        elif kind in ("pause", "resume") and self.paused != (kind == "pause"):
            self.paused = kind == "pause"
            _send(self.conn, ("paused" if self.paused else "resumed", self.trainer.step))


class _Checkpoints:
    """When to send the weights: with every probe if small, else at most every CHECKPOINT_SECONDS."""

    def __init__(self, config: RunCreate, trainer: Trainer) -> None:
        self.config, self.trainer = config, trainer
        nbytes = sum(p.numel() * p.element_size() for p in trainer.net.parameters())
        self.interval = 0.0 if nbytes <= SMALL_CHECKPOINT_BYTES else CHECKPOINT_SECONDS
        self.sent_step: int | None = None
        self.sent_at = -float("inf")

    def due(self, step: int) -> bytes | None:
        if time.monotonic() - self.sent_at < self.interval:
            return None
        return self.take(step)

    def take(self, step: int) -> bytes:
        self.sent_step, self.sent_at = step, time.monotonic()
        return checkpoint_bytes(self.config, self.trainer)


def _send(conn: Outbox, message: tuple[Any, ...]) -> None:
    try:
        conn.send(message)
    except (OSError, EOFError) as exc:  # BrokenPipeError, ConnectionResetError, a closed handle
        raise ParentGoneError from exc

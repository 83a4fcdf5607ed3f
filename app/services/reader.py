"""A run's reader thread's work: receive its worker's messages, store them and publish them.

What this is: `Reader(h, storage, emit, lock, disk).read(outcome)`, which the manager's reader
thread runs for one worker (app.services.worker's messages, its docstring): step metrics are
buffered and stored in batches (at most FLUSH_ROWS, or every FLUSH_SECONDS), each published at
once; a probe's display bytes are published before its frame and snapshot are stored; checkpoints
and interventions are stored; once the disk is below its free-space floor (app.services.disk) no
more frames or snapshots are stored, and the run's notes say so; "paused" / "resumed" set the
run's status. It records the node that trains the run when the worker is first heard from (if not known yet),
and tells the worker when everything it sent is stored (RunWorker.committed: a Ray actor keeps its
messages until then). It terminates the worker once the stop deadline the manager set has passed,
and returns when the worker ends, fails or its channel closes (or the server detaches it), with
how it ended in `outcome`. A storage
write that fails raises StorageError (which ends the run), unless the run was deleted meanwhile.

What this is not: the scheduling or the final status (app.services.manager).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.services.disk import DiskGuard
from app.services.handles import Handle, Outcome
from app.services.interventions import Intervention
from app.services.messages import InterventionMessage, Message, ProbeMessage, StatusMessage, StepMessage
from app.services.records import utcnow
from app.services.storage import Storage, StorageError

FLUSH_SECONDS = 0.1
FLUSH_ROWS = 200
POLL_SECONDS = 0.05  # the longest wait between checks of the stop deadline

log = logging.getLogger(__name__)


class Reader:
    """The messages of one worker (see the module docstring)."""

    def __init__(
        self,
        h: Handle,
        storage: Storage,
        emit: Callable[[str, Message], None],
        lock: threading.Lock,
        disk: DiskGuard,
    ) -> None:
        self.h, self.storage, self.lock, self.disk = h, storage, lock, disk
        self._emit = emit
        self.recording = True  # frames and snapshots are stored (until the disk is below its floor)
        self.rows: list[dict[str, Any]] = []
        self.flushed_at = time.monotonic()

    def read(self, outcome: Outcome) -> None:
        """Receive until the worker ends or its pipe closes; write and publish each message."""
        h = self.h
        while True:
            now = time.monotonic()
            if h.stop_deadline is not None and now >= h.stop_deadline:
                h.stop_deadline = None
                h.terminate()
            timeout = POLL_SECONDS
            if self.rows:
                timeout = min(timeout, max(0.0, self.flushed_at + FLUSH_SECONDS - now))
            if h.detached:
                break  # the server shuts down and leaves the worker training
            try:
                message = h.worker.recv(timeout)
            except EOFError:
                break  # the worker is gone
            if message is not None:
                if not h.heard:
                    h.heard = True
                    self._record_where()
                if self._handle(message, outcome):
                    self.flush()
                    return
            if len(self.rows) >= FLUSH_ROWS or (
                self.rows and time.monotonic() - self.flushed_at >= FLUSH_SECONDS
            ):
                self.flush()
            if not self.rows:
                h.worker.committed()  # everything received so far is stored
        self.flush()

    def _record_where(self) -> None:
        """Record the node training the run if the manager could not when it started it (a Ray
        actor's is known once it is up); its viewers get it."""
        executor, node = self.h.worker.where
        record = self.storage.get_run(self.h.run_id)
        if record is not None and node is not None and record.node != node:
            record = self.storage.update_run(self.h.run_id, executor=executor, node=node)
            if record is not None:
                self.emit(StatusMessage(record.to_public()))

    def flush(self) -> None:
        """Store the buffered step metrics."""
        self.flushed_at = time.monotonic()
        if self.rows:
            batch = self.rows.copy()
            self.rows.clear()
            self._store(self.storage.add_steps, self.h.run_id, batch)

    def _handle(self, message: tuple[Any, ...], outcome: Outcome) -> bool:
        """Store and publish one message; True once the worker has ended ("end" or "error")."""
        h, kind = self.h, message[0]
        if kind == "step":
            self.rows.append(message[1])
            self.emit(StepMessage(message[1]))
        elif kind == "probe":
            _, step, full, display, ckpt, snapshot = message
            self.emit(ProbeMessage(step, display if display is not None else full))  # before the slow write
            self.flush()
            if self._recording(step):
                self._store(self.storage.add_probe, h.run_id, step, full, display, snapshot)
            if ckpt is not None:
                self._keep_checkpoint(step, ckpt)
        elif kind in ("paused", "resumed"):
            self.flush()  # a paused run's stored steps are all it has trained
            record = self.storage.update_run(h.run_id, status="paused" if kind == "paused" else "running")
            if record is not None:
                self.emit(StatusMessage(record.to_public()))
        elif kind == "intervened":
            self.flush()
            _, intervention_id, step, changes = message
            item = Intervention(id=intervention_id, step=step, changes=changes, applied_at=utcnow())
            self._store(self.storage.add_intervention, h.run_id, item)
            self.emit(
                InterventionMessage(item)
            )  # stored first: a viewer's snapshot may list it (hub.Viewer.seen)
        elif kind == "refused":  # pragma: no cover - the API validated the changes
            log.warning("run %s: intervention %s refused: %s", h.run_id, message[1], message[2])
        elif kind == "checkpoint":
            self._keep_checkpoint(message[1], message[2])
        elif kind == "end":
            outcome.end = (message[1], message[2], message[3])
            return True
        elif kind == "error":
            outcome.error = message[1]
            return True
        else:  # pragma: no cover - worker and manager ship together
            log.warning("run %s: unknown worker message %r", h.run_id, kind)
        return False

    def _recording(self, step: int) -> bool:
        """Whether frames are still recorded; the first probe below the disk's floor ends that for
        the rest of the run, with a note on the run (its viewers get it)."""
        shortage = self.disk.shortage() if self.recording else None
        if shortage is not None:
            self.recording = False
            note = f"Frames and snapshots stopped being recorded at step {step}: {shortage}."
            note += " Metrics still are."
            record = self.storage.add_note(self.h.run_id, note)
            if record is not None:
                self.emit(StatusMessage(record.to_public()))
        return self.recording

    def emit(self, message: Message) -> None:
        """Publish to the run's viewers, unless the run was deleted."""
        if not self.h.deleted:
            self._emit(self.h.run_id, message)

    def _keep_checkpoint(self, step: int, data: bytes) -> None:
        with self.lock:
            self.h.checkpoint = data
        self._store(self.storage.save_checkpoint, self.h.run_id, step, data)

    def _store(self, write: Callable[..., None], *args: Any) -> None:
        """A storage write for the run; a failure (unless the run was deleted) ends the run."""
        try:
            write(*args)
        except StorageError:
            if self.h.deleted:
                return  # its rows went with it; nothing to keep
            raise

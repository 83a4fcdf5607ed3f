"""The run manager: queues runs, trains each on its executor, records and publishes what happens.

What this is: `RunManager(storage, max_runs, publish, ..., executor)`. `submit` stores a 'queued'
run and starts it as soon as fewer than `max_runs` runs are running (at most MAX_QUEUED wait; more
raise `QueueFull`). Each running run has a worker (a RunWorker of the executor,
app.services.executors: a "spawn" process on this machine by default, a detached Ray actor with
GATESCOPE_RAY_ADDRESS) and a reader thread in this process that receives the worker's messages
(app.services.reader), writes them to storage, keeps the run's status and calls
`publish(run_id, message)` with a Message (app.services.messages: each step, each probe frame's
display bytes, every status change, the end). The run records the executor and node training it.
The manager never speaks to a process or to Ray itself: only through the RunWorker.

Executors whose workers outlive the server (Ray): `shutdown` leaves their runs training, still
'running' in storage, and the next `start` reattaches every run whose worker is still there (its
worker buffered what it sent meanwhile); the others become 'interrupted' with a sentence saying
why. An executor that cannot start runs (Ray unreachable) refuses new runs with
ExecutorUnavailable (HTTP 503) and leaves queued runs queued.

A queued run's RunPublic carries its `queue_position` (`public(record)`: how many queued runs are
ahead of it, 0 for the next); when a run leaves the queue (starts, is stopped or deleted), every
run still queued gets a StatusMessage with its new position.

Final statuses: the worker's own end (completed, stopped, diverged); 'failed' with the worker's
"<ExcType>: message", or RunWorker.reap's sentence if the worker died without a word ("worker
exited with code N" after a kill -9; "the Ray actor training this run died: <Ray's cause>" for a
killed actor or a lost node); 'stopped' after `stop`; 'interrupted' for runs cut short by `shutdown` (and, by
Storage.recover at the next start, for runs a crash left 'running').

Threads: every public method is quick (a few SQLite writes and signals) and safe from any thread
including the event loop's; one lock guards the scheduling state. `publish` is called from the
reader threads (and from the caller's thread for stop/delete of a queued run), never under the
lock: a subscriber on an event loop must hop to it itself (loop.call_soon_threadsafe).

`pause` and `resume` reach the worker over its control pipe; it answers between two steps, and
its answer sets the status ('paused', 'running'). A paused worker waits without CPU, its state
kept; `stop` and `delete` still work on it.

Below the free-space floor (`disk`, app.services.disk) new runs are refused with DiskFull and
running runs stop recording frames and snapshots (app.services.reader). Each run gets a storage
budget (its config's storage_mb, else `storage_mb`) that storage thins its frames to.

`fork` stores a new 'queued' run that goes on from a built-in run's snapshot at a probe step
(app.services.forks: its config, the checks); its worker restores the snapshot, applies the
changes and trains on from there.

`stop` takes effect within a second: the worker stops after the step in progress, and one that
has not stopped STOP_GRACE_SECONDS later (a long step, or a worker still importing torch) is
terminated.

What this is not: the web layer (no FastAPI here) nor the fan-out to viewers (app.services.hub).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from app.services.disk import RUN_STORAGE_MB, DiskGuard
from app.services.executors import Executor, ExecutorUnavailable
from app.services.executors.local import LocalExecutor
from app.services.forks import fork_config, no_snapshot
from app.services.handles import Handle, Outcome
from app.services.lineage import ForkOf
from app.services.messages import EndMessage, Message, Publish, StatusMessage
from app.services.reader import Reader
from app.services.records import RunRecord, utcnow
from app.services.schemas import FINISHED, RunCreate, RunPublic
from app.services.storage import INTERRUPTED_ERROR, Storage, StorageError

MAX_QUEUED = 1000
STOP_GRACE_SECONDS = 0.5
JOIN_SECONDS = 5.0
DELETED_ERROR = "the run was deleted"

log = logging.getLogger(__name__)


# -- errors ---------------------------------------------------------------------------------


class QueueFull(Exception):  # noqa: N818  (the contract's name)
    """MAX_QUEUED runs are already waiting (HTTP 429)."""


class WrongState(Exception):  # noqa: N818  (the contract's name)
    """The run is not in a state that allows this (HTTP 409)."""


class RunNotFound(Exception):  # noqa: N818  (the contract's name)
    """No run has this id (HTTP 404)."""


# -- the manager ----------------------------------------------------------------------------


class RunManager:
    """Schedules runs onto worker processes; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        max_runs: int,
        publish: Publish | None = None,
        storage_mb: int = RUN_STORAGE_MB,
        disk: DiskGuard | None = None,
        executor: Executor | None = None,
    ) -> None:
        """`storage_mb`: the budget of runs that ask for none; `disk`: the free-space floor;
        `executor`: where runs train (default: local processes)."""
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.storage = storage
        self.storage_mb = storage_mb
        self.disk = disk if disk is not None else DiskGuard(storage.path.parent)
        self.executor: Executor = executor if executor is not None else LocalExecutor(max_runs)
        self.max_runs = max_runs
        self._publish = publish
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._running: dict[str, Handle] = {}
        self._announce_lock = threading.Lock()
        self._positions: dict[str, int] = {}  # the queue positions last announced
        self._started = False
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from the last session and start dispatching: reattach its runs still training
        (an executor whose workers outlive the server), interrupt the rest, requeue its queued runs."""
        with self._lock:
            if self._started:
                return
            self._started, self._closing = True, False
            reattached = self._reattach() if self.executor.detaches else []
            queued = self.storage.recover(keep=reattached)
            self._queue.extend(run_id for run_id in queued if run_id not in self._queue)
            self._dispatch()

    def _reattach(self) -> list[str]:
        """Reattach the runs the last session left training on this executor; those it cannot
        become 'interrupted' with a sentence. The reattached ids. Call with the lock held."""
        reattached = []
        for run_id, executor in self.storage.unfinished():
            found = self.executor.reattach(run_id) if executor == self.executor.name else None
            if found is None or isinstance(found, str):
                why = found or f"it trained on the {executor or 'local'} executor"
                error = f"{INTERRUPTED_ERROR}, and this run could not be reattached: {why}"
                self.storage.update_run(run_id, status="interrupted", finished_at=utcnow(), error=error)
                continue
            record = self.storage.get_run(run_id)
            assert record is not None
            self._serve_in_thread(Handle(run_id, found), record.to_public())
            reattached.append(run_id)
        return reattached

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every worker and join the reader threads; their runs end 'interrupted'. On an
        executor whose workers outlive the server (Ray) they are left training instead, still
        'running' in storage, for the next start() to reattach.

        Queued runs stay 'queued' in storage and are requeued by the next start(). Blocks up to
        about STOP_GRACE_SECONDS plus the workers' exit (call it off the event loop).
        """
        with self._lock:
            self._closing = True
            handles = list(self._running.values())
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for h in handles:
                h.shutting_down = True
                if self.executor.detaches:
                    h.detached = True
                    continue
                h.worker.stop()
                h.stop_deadline = min(h.stop_deadline or deadline, deadline)
        until = time.monotonic() + timeout
        for h in handles:
            h.thread.join(max(0.0, until - time.monotonic()))
        self.executor.close()

    # -- runs ------------------------------------------------------------------------------

    def submit(self, config: RunCreate, group: str | None = None) -> RunRecord:
        """Store a new 'queued' run and start it if a slot is free; QueueFull if MAX_QUEUED wait."""
        return self.submit_group([config], group)[0]

    def submit_group(self, configs: Sequence[RunCreate], group: str | None = None) -> list[RunRecord]:
        """Store new 'queued' runs, all or none, then start as many as there are free slots.

        QueueFull, with nothing stored, if the queue cannot take them all."""
        return self._enqueue([RunRecord.new(uuid.uuid4().hex[:12], config, group) for config in configs])

    def fork(self, parent_id: str, step: int, changes: dict[str, Any], name: str | None = None) -> RunRecord:
        """Store a fork of a built-in run from its snapshot at `step`, with `changes` (InterventionCreate's
        shape, maybe {}), and start it if a slot is free. RunNotFound; WrongState for an attached run;
        interventions.Refused (a sentence) for a step with no snapshot or changes the run cannot take;
        QueueFull. Nothing is stored when it refuses."""
        parent = self.storage.get_run(parent_id)
        if parent is None:
            raise RunNotFound(f"no run has the id {parent_id}")
        if parent.kind != "built-in":
            raise WrongState(f"run {parent_id} has no stored training state; forks are for built-in runs")
        steps = self.storage.snapshot_steps(parent_id)
        if step not in steps:
            raise no_snapshot(parent_id, step, steps)
        config = fork_config(
            parent.to_public().config,  # type: ignore[arg-type]  # a built-in run's is a RunCreate
            parent.name or parent_id,
            self.storage.interventions(parent_id),
            step,
            changes,
            name,
        )
        record = RunRecord.new(uuid.uuid4().hex[:12], config)
        record.step, record.fork = step, ForkOf(parent=parent_id, step=step, changes=changes)
        return self._enqueue([record])[0]

    def _enqueue(self, records: list[RunRecord]) -> list[RunRecord]:
        """Store 'queued' runs, all or none (QueueFull, DiskFull, StorageError), and start what fits.
        Each gets its config's storage budget, or the server's. ExecutorUnavailable if the
        executor cannot start runs (Ray unreachable)."""
        self.disk.check()
        self.executor.check()
        for record in records:
            record.storage_mb = record.config.get("storage_mb") or self.storage_mb
        with self._lock:
            if len(self._queue) + len(records) > MAX_QUEUED:
                n = len(records)
                needs = "this run needs one" if n == 1 else f"these {n} runs need {n}"
                raise QueueFull(
                    f"the queue is full: {len(self._queue)} of its {MAX_QUEUED} places are taken and "
                    f"{needs}; try again when some have finished"
                )
            stored: list[RunRecord] = []
            try:
                for record in records:
                    self.storage.create_run(record)
                    stored.append(record)
            except StorageError:
                for record in stored:
                    self.storage.delete_run(record.id)
                raise
            self._queue.extend(record.id for record in records)
            self._dispatch()
        return [self.storage.get_run(record.id) or record for record in records]

    def stop(self, run_id: str) -> RunRecord:
        """Stop a run: a queued one at once, a running one within a second.

        Returns the run as it is now (still 'running' until its worker has stopped). RunNotFound
        for an unknown id, WrongState if it has already ended.
        """
        with self._lock:
            h = self._running.get(run_id)
            if h is not None:
                self._request_stop(h, grace=STOP_GRACE_SECONDS if h.heard else 0.0)
                record = self.storage.get_run(run_id)
                if record is None:  # pragma: no cover - deleted behind the manager's back
                    raise RunNotFound(f"no run has the id {run_id}")
                return record
            record = self.storage.get_run(run_id)
            if record is None:
                raise RunNotFound(f"no run has the id {run_id}")
            if record.status in FINISHED:
                raise WrongState(f"run {run_id} has already ended: it is {record.status}")
            if run_id in self._queue:
                self._queue.remove(run_id)
            updated = self.storage.update_run(run_id, status="stopped", finished_at=utcnow(), error=None)
        assert updated is not None
        public = updated.to_public()
        self._emit(run_id, StatusMessage(public))
        self._emit(run_id, EndMessage(public))
        return updated

    def pause(self, run_id: str) -> RunRecord:
        """Ask a running run to pause after the step in progress; it is 'paused' once its worker is.

        Returns the run as it is now. RunNotFound for an unknown id, WrongState unless it runs.
        """
        return self._control(run_id, ("pause",), "pause")

    def resume(self, run_id: str) -> RunRecord:
        """Ask a paused (or pausing) run to go on; it is 'running' once its worker is."""
        return self._control(run_id, ("resume",), "resume")

    def intervene(self, run_id: str, changes: dict[str, Any]) -> str:
        """Send changes (InterventionCreate.changes) to a running or paused run; the intervention's id.

        The worker applies them between two steps and the reader thread stores them with that step
        (Storage.interventions). RunNotFound / WrongState as for pause."""
        intervention_id = uuid.uuid4().hex[:12]
        self._control(run_id, ("intervene", intervention_id, changes), "take an intervention")
        return intervention_id

    def _control(self, run_id: str, message: tuple[Any, ...], verb: str) -> RunRecord:
        """Send `message` to the run's worker; RunNotFound / WrongState (with a sentence) if it has none."""
        with self._lock:
            record = self.storage.get_run(run_id)
            if record is None:
                raise RunNotFound(f"no run has the id {run_id}")
            h = self._running.get(run_id)
            if h is None or h.stop_requested:
                raise WrongState(f"only a running or paused run can {verb}: run {run_id} is {record.status}")
            try:
                h.worker.control(message)
            except (OSError, EOFError) as exc:  # the worker is exiting
                raise WrongState(f"run {run_id} is ending and cannot {verb}") from exc
            return record

    def delete(self, run_id: str) -> None:
        """Delete a run and all its data, terminating its worker if it runs. RunNotFound if unknown.

        Viewers of a run that had not ended get an EndMessage with status 'stopped' and the error
        DELETED_ERROR.
        """
        with self._lock:
            h = self._running.get(run_id)
            if h is not None:
                h.deleted = True
                self._request_stop(h, grace=0.0)
            if run_id in self._queue:
                self._queue.remove(run_id)
            record = self.storage.get_run(run_id)
            if record is None and h is None:
                raise RunNotFound(f"no run has the id {run_id}")
            self.storage.delete_run(run_id)
        if record is not None and record.status not in FINISHED:
            record.status, record.error, record.finished_at = "stopped", DELETED_ERROR, utcnow()
            self._emit(run_id, EndMessage(record.to_public()))

    def checkpoint(self, run_id: str) -> bytes | None:
        """The latest weights (worker.checkpoint_bytes): in memory while running, else stored.

        None if the run has none yet; RunNotFound for an unknown id.
        """
        with self._lock:
            h = self._running.get(run_id)
            if h is not None and h.checkpoint is not None:
                return h.checkpoint
        data = self.storage.checkpoint(run_id)
        if data is None and self.storage.get_run(run_id) is None:
            raise RunNotFound(f"no run has the id {run_id}")
        return data

    def worker_pid(self, run_id: str) -> int | None:
        """The pid of the run's worker process (on its node), while it runs."""
        with self._lock:
            h = self._running.get(run_id)
            return h.worker.pid if h is not None else None

    def running(self) -> list[str]:
        """Ids of the runs with a worker, in start order."""
        with self._lock:
            return list(self._running)

    def queued(self) -> list[str]:
        """Ids of the runs waiting for a slot, first to start first."""
        with self._lock:
            return list(self._queue)

    def public(self, record: RunRecord) -> RunPublic:
        """The run as the API shows it, with its queue_position: queued runs ahead of it (0: next)."""
        queue = self.queued()
        return record.to_public(queue.index(record.id) if record.id in queue else None)

    # -- scheduling (under self._lock) -----------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued runs while there are free slots (and the executor can). Call with the lock held."""
        try:
            self.executor.check()
        except ExecutorUnavailable:
            return  # they stay queued
        while self._started and not self._closing and self._queue and len(self._running) < self.max_runs:
            run_id = self._queue[0]
            record = self.storage.get_run(run_id)
            if record is None or record.status != "queued":  # deleted or stopped meanwhile
                self._queue.popleft()
                continue
            start = None
            if record.fork is not None:  # its own copy of the parent's snapshot (Storage.create_run)
                snapshot = self.storage.snapshot(run_id, record.fork.step) or b""  # b"": fails to load
                start = (snapshot, record.fork.changes)
            run_worker = self.executor.launch(run_id, orjson.dumps(record.config).decode(), start)
            executor, node = run_worker.where  # a Ray worker's node is known once it is up (Reader)
            record = self.storage.update_run(
                run_id, status="running", started_at=utcnow(), executor=executor, node=node
            )
            self._queue.popleft()
            assert record is not None
            self._serve_in_thread(Handle(run_id, run_worker), record.to_public())

    def _serve_in_thread(self, h: Handle, running: RunPublic) -> None:
        """Hold the run's handle and start its reader thread. Call with the lock held."""
        h.thread = threading.Thread(
            target=self._serve, args=(h, running), name=f"gatescope-reader-{h.run_id}", daemon=True
        )
        self._running[h.run_id] = h
        h.thread.start()

    def _request_stop(self, h: Handle, grace: float) -> None:
        h.stop_requested = True
        h.worker.stop()
        deadline = time.monotonic() + grace
        h.stop_deadline = deadline if h.stop_deadline is None else min(h.stop_deadline, deadline)

    # -- the reader thread -----------------------------------------------------------------

    def _serve(self, h: Handle, running: RunPublic) -> None:
        """A reader thread: start the worker, record its messages, record how it ended."""
        self._emit(h.run_id, StatusMessage(running))
        outcome = Outcome()
        try:
            with self._lock:
                abandon = h.stop_requested  # stopped or deleted before the worker even started
            if not abandon:
                h.worker.start()
                Reader(h, self.storage, self._emit, self._lock, self.disk).read(outcome)
        except StorageError as exc:
            log.error("run %s: %s", h.run_id, exc)
            outcome.error = f"the server could not record this run: {exc}"
            h.terminate()
        except Exception as exc:
            log.exception("run %s: the reader thread failed", h.run_id)
            outcome.error = f"the server failed while running this run: {type(exc).__name__}: {exc}"
            h.terminate()
        finally:
            if h.detached:
                h.worker.detach()
            else:
                outcome.death = h.worker.reap(JOIN_SECONDS)
        try:
            if not h.detached:
                self._finish(h, outcome)
        except Exception:
            log.exception("run %s: could not record how it ended", h.run_id)
        finally:
            with self._lock:
                del self._running[h.run_id]
                try:
                    self._dispatch()
                except Exception:
                    log.exception("could not start the next queued run")

    def _finish(self, h: Handle, outcome: Outcome) -> None:
        """Record the run's final status and publish it."""
        if h.deleted:
            return
        status, error = outcome.verdict(h)
        record = self.storage.update_run(h.run_id, status=status, finished_at=utcnow(), error=error)
        if record is None:
            return  # deleted meanwhile
        public = record.to_public()
        self._emit(h.run_id, StatusMessage(public))
        self._emit(h.run_id, EndMessage(public))

    def _emit(self, run_id: str, message: Message) -> None:
        if self._publish is None:
            return
        try:
            self._publish(run_id, message)
            run = message.run if isinstance(message, StatusMessage | EndMessage) else None
            if run is not None and run.status != "queued" and (run.status == "running" or not run.started_at):
                self._announce_queue()  # a run left the queue (started, stopped, deleted): the rest moved up
        except Exception:
            log.exception("run %s: publish failed", run_id)

    def _announce_queue(self) -> None:
        """A StatusMessage to the viewers of every queued run whose queue position changed since the
        last announcement (stopping a sweep's queued runs last first moves none: 1,000 queued cost
        0.1 s an announcement, each of them read from storage)."""
        assert self._publish is not None
        with self._announce_lock:  # announcements in order: none overtakes a later one
            positions = {run_id: i for i, run_id in enumerate(self.queued())}
            moved = [(i, run_id) for run_id, i in positions.items() if self._positions.get(run_id) != i]
            self._positions = positions
            for position, run_id in moved:
                record = self.storage.get_run(run_id)
                if record is not None and record.status == "queued":
                    self._publish(run_id, StatusMessage(record.to_public(position)))

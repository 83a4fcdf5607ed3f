"""Attached runs: runs whose training happens in someone's own script, watched by `gatescope.watch`.

What this is: `AttachedRuns(storage, publish)`, one per app (the lifespan makes it and runs its
reaper). A watch attaches once (`attach`: one 'running' run per watched module, sharing a group),
then sends, per run, batches of step metrics (`add_steps`) and probe frames in the binary frame
format (`add_frame`), and finally ends its runs (`end`). Every request is checked whole before
anything is stored, so a bad one leaves storage exactly as it was:

- steps: StepsIn already checked each row (finite floats, strictly increasing); here the first
  step must come after the run's last stored one (else WrongState naming the step);
- frames: `check_frame` (app.services.frame_checks) decodes the bytes and checks the header and
  every array against the run's module (names, dtypes, shapes, T <= MAX_FRAME_T, finite values;
  Invalid names what is wrong).

What is stored is what a built-in run stores (the metrics rows of storage.add_steps; the frame
and its display frame, Frame.pooled(), by storage.add_probe), and it is published as the manager
publishes a built-in run's (StepMessage, ProbeMessage, StatusMessage, EndMessage), so storage, the
websocket, the REST reads and the view service see no difference.

Storage: each run gets a budget, the attach body's storage_mb or the service's (the server's
GATESCOPE_RUN_STORAGE_MB), that storage.add_probe thins its frames to as it does a built-in run's.
Below the free-space floor (`disk`, app.services.disk) `attach` and `import_file` raise DiskFull
and store nothing; a running run's frames are then still published but no longer stored, and its
notes say so once (disk.frames_stopped), rather than the run failing.

Liveness: every request counts as a heartbeat; `reap` (every REAP_SECONDS, in the reaper thread
`start` starts) marks a run 'interrupted' with STALE_ERROR once nothing came for STALE_SECONDS.
`stop` records stop_requested in the run's config; every IngestReply then says stop, and the run
stays 'running' until its script ends it ('stopped') or goes silent. `import_file` brings a run
file (gatescope.runfile) in with the same checks, all of it or nothing.

Threads: every method is safe from any thread; one lock per live run serializes its checks and
writes, so two requests for the same run never interleave. What this is not: HTTP (app/web/ingest.py),
the frame codec (app.core.frames) or the client (gatescope).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.core.frames import Frame
from app.services.disk import RUN_STORAGE_MB, DiskGuard, frames_stopped
from app.services.frame_checks import Invalid, check_frame, first_error
from app.services.handles import SHUTDOWN_ERROR
from app.services.manager import DELETED_ERROR, RunNotFound, WrongState
from app.services.messages import EndMessage, Message, ProbeMessage, Publish, StatusMessage, StepMessage
from app.services.records import RunRecord, utcnow
from app.services.schemas import (
    FINISHED,
    AttachCreate,
    AttachedConfig,
    AttachedGroup,
    EndCreate,
    IngestReply,
    StepIn,
    StepsIn,
    check_increasing,
)
from app.services.storage import Storage

MAX_IMPORT_BYTES = 512 * 2**20  # one run file's bytes at most (413 above)
HEARTBEAT_SECONDS = 5.0  # the client sends something at least this often
STALE_SECONDS = 30.0  # after this long without a request, a run is interrupted
REAP_SECONDS = 5.0  # how often the reaper looks
STALE_ERROR = f"the script stopped sending (nothing for {STALE_SECONDS:g} s)"
NO_END_ERROR = "the script ended without closing its run file"

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class RunEnded(WrongState):
    """Ingest for an attached run that has ended (HTTP 409, and the reply says stop)."""

    stop = True


# -- the service ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Live:
    """An attached run that is running, as the service tracks it."""

    record: RunRecord
    config: AttachedConfig
    step: int  # the last stored step
    frames: set[int]  # the steps of the frames it sent (stored, or not once the disk is full)
    heard: float  # monotonic time of its last request
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: Exception | None = None  # why it takes no more requests (ended, reaped, deleted): they raise it
    recording: bool = True  # its frames are stored (until the disk is below its floor)

    def reply(self) -> IngestReply:
        return IngestReply(
            run_id=self.record.id, step=self.step, frames=len(self.frames), stop=self.config.stop_requested
        )


class AttachedRuns:
    """The attached runs of one app; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.monotonic,
        storage_mb: int = RUN_STORAGE_MB,
        disk: DiskGuard | None = None,
    ) -> None:
        """`storage_mb`: the budget of runs that ask for none; `disk`: the free-space floor."""
        self.storage = storage
        self.storage_mb = storage_mb
        self.disk = disk if disk is not None else DiskGuard(storage.path.parent)
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._reaper: threading.Thread | None = None
        self._closing = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reaper thread (Storage.recover has already interrupted last session's runs)."""
        if self._reaper is None:
            self._closing.clear()
            self._reaper = threading.Thread(target=self._reap_loop, name="gatescope-reaper", daemon=True)
            self._reaper.start()

    def close(self) -> None:
        """Stop the reaper; the runs still running end 'interrupted' (the server is going away)."""
        self._closing.set()
        if self._reaper is not None:
            self._reaper.join()
            self._reaper = None
        with self._lock:
            live = list(self._live.values())
        for run in live:
            self._finish(run, status="interrupted", error=SHUTDOWN_ERROR)

    def _reap_loop(self) -> None:
        while not self._closing.wait(REAP_SECONDS):
            try:
                self.reap()
            except Exception:
                log.exception("the attached-run reaper failed")

    def reap(self) -> list[str]:
        """Interrupt the runs nothing came for in STALE_SECONDS; their ids."""
        now = self._clock()
        with self._lock:
            stale = [run for run in self._live.values() if now - run.heard > STALE_SECONDS]
        return [run.record.id for run in stale if self._finish(run, "interrupted", STALE_ERROR, stale_at=now)]

    # -- attaching -------------------------------------------------------------------------

    def attach(self, body: AttachCreate) -> AttachedGroup:
        """One 'running' run per module of `body`, in module order, sharing a new group (DiskFull
        below the floor)."""
        self.disk.check()
        group = uuid.uuid4().hex[:12]
        configs = [AttachedConfig.of(body, module) for module in body.modules]
        records = [self._record(config, group, body) for config in configs]
        _create_all(self.storage, records)
        now = self._clock()
        with self._lock:
            for record, config in zip(records, configs, strict=True):
                self._live[record.id] = _Live(record, config, 0, set(), now)
        for record in records:
            self._emit(record.id, StatusMessage(record.to_public()))
        return AttachedGroup(group=group, runs=[r.to_public() for r in records])

    # -- ingest ----------------------------------------------------------------------------

    def add_steps(self, run_id: str, body: StepsIn) -> IngestReply:
        """Store a batch of steps (all or none) and publish each; WrongState if the first is not new."""
        with self._ingest(run_id) as run:
            first = body.steps[0].step
            if first <= run.step:
                raise WrongState(
                    f"step {first} of run {run_id} is already stored: its last step is {run.step}, "
                    "and steps must come in increasing order"
                )
            rows = [row.model_dump() for row in body.steps]
            self.storage.add_steps(run_id, rows)
            run.step = body.steps[-1].step
            for row in rows:
                self._emit(run_id, StepMessage(dict(row)))
            return run.reply()

    def add_frame(self, run_id: str, data: bytes) -> IngestReply:
        """Check a frame's bytes (Invalid if they are wrong), store it and its display frame, publish."""
        with self._ingest(run_id) as run:
            frame = check_frame(data, run_id, run.config)
            if frame.step in run.frames:
                raise WrongState(f"run {run_id} already has a probe frame at step {frame.step}")
            full, display = _encoded(frame)
            if self._recording(run, frame.step):
                self.storage.add_probe(run_id, frame.step, full, display)
            run.frames.add(frame.step)
            self._emit(run_id, ProbeMessage(frame.step, display if display is not None else full))
            return run.reply()

    def _recording(self, run: _Live, step: int) -> bool:
        """Whether the run's frames are still stored; the first frame below the disk's floor ends
        that for the rest of the run, with a note (its viewers get it)."""
        shortage = self.disk.shortage() if run.recording else None
        if shortage is not None:
            run.recording = False
            record = self.storage.add_note(run.record.id, frames_stopped(step, shortage, "Frames"))
            if record is not None:
                run.record = record
                self._emit(record.id, StatusMessage(record.to_public()))
        return run.recording

    def heartbeat(self, run_id: str) -> IngestReply:
        with self._ingest(run_id) as run:
            return run.reply()

    def end(self, run_id: str, body: EndCreate) -> RunRecord:
        """The script ends its run: its status, error and how many frames it dropped."""
        with self._ingest(run_id) as run:
            config = run.config.model_copy(update={"dropped_frames": body.dropped_frames})
            return self._finish_locked(run, body.status, body.error, config)

    # -- from the dashboard ----------------------------------------------------------------

    def stop(self, run_id: str) -> RunRecord:
        """Ask the script to stop (its next reply says so); the run is 'running' until it ends."""
        with self._ingest(run_id, heard=False) as run:
            run.config = run.config.model_copy(update={"stop_requested": True})
            record = self.storage.update_run(run_id, config=run.config.model_dump(mode="json"))
            if record is None:  # pragma: no cover - deleted behind the service's back
                raise RunNotFound(f"there is no run with id {run_id!r}")
            run.record = record
        self._emit(run_id, StatusMessage(record.to_public()))
        return record

    def delete(self, run_id: str) -> None:
        """Delete an attached run and its data; viewers of a running one get an end (stopped)."""
        with self._lock:
            run = self._live.get(run_id)
        if run is None:
            if not self.storage.delete_run(run_id):
                raise RunNotFound(f"there is no run with id {run_id!r}")
            return
        with run.lock:  # a request under way finishes first; the ones waiting then find it gone
            ended = run.gone is not None
            run.gone = RunNotFound(f"there is no run with id {run_id!r}")
            self.storage.delete_run(run_id)
            with self._lock:
                self._live.pop(run_id, None)
        if not ended:
            record = run.record
            record.status, record.error, record.finished_at = "stopped", DELETED_ERROR, utcnow()
            self._emit(run_id, EndMessage(record.to_public()))

    # -- import ----------------------------------------------------------------------------

    def import_file(self, data: bytes) -> AttachedGroup:
        """The runs of a run file (gatescope.runfile), checked whole first: all stored, or none
        (DiskFull below the floor)."""
        from gatescope.runfile import read_runfile  # the one reader of the format

        self.disk.check()
        try:
            runfile = read_runfile(data)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        body = _parse(AttachCreate, runfile.attach, "the run file's attach record")
        steps = _steps(runfile.steps)
        end = _parse(EndCreate, runfile.end, "the run file's end record") if runfile.end is not None else None
        configs = [AttachedConfig.of(body, module) for module in body.modules]
        seen: set[tuple[int, int]] = set()
        for index, data_ in runfile.frames:  # pass 1: check every frame, keep none
            try:
                step = check_frame(data_, "", configs[index]).step
            except Invalid as exc:
                raise Invalid(f"frame {len(seen) + 1} of the run file (module {index}): {exc}") from exc
            if (index, step) in seen:
                raise Invalid(f"the run file has two frames of module {index} at step {step}")
            seen.add((index, step))
        return self._store_import(body, configs, steps, runfile.frames, end, runfile.problems)

    def _store_import(
        self,
        body: AttachCreate,
        configs: list[AttachedConfig],
        steps: list[StepIn],
        frames: list[tuple[int, bytes]],
        end: EndCreate | None,
        problems: list[str],
    ) -> AttachedGroup:
        group = uuid.uuid4().hex[:12]
        status, error = (end.status, end.error) if end is not None else ("interrupted", NO_END_ERROR)
        dropped = end.dropped_frames if end is not None else 0
        records = [
            self._record(c.model_copy(update={"dropped_frames": dropped}), group, body) for c in configs
        ]
        rows = [row.model_dump() for row in steps]
        _create_all(self.storage, records)
        try:
            for record in records:
                self.storage.add_steps(record.id, rows)
            for index, data in frames:  # pass 2: decode again, one at a time, and store
                frame = Frame.from_bytes(data)
                frame.header["run_id"] = records[index].id
                self.storage.add_probe(records[index].id, frame.step, *_encoded(frame))
            done = [
                self.storage.update_run(r.id, status=status, error=error, finished_at=utcnow())
                for r in records
            ]
        except BaseException:
            for record in records:
                self.storage.delete_run(record.id)
            raise
        return AttachedGroup(
            group=group, runs=[r.to_public() for r in done if r is not None], warnings=problems
        )

    # -- plumbing --------------------------------------------------------------------------

    def _record(self, config: AttachedConfig, group: str, body: AttachCreate) -> RunRecord:
        """A new attached run of `config`, with the body's storage budget or the service's."""
        record = RunRecord.attached(uuid.uuid4().hex[:12], config, group)
        record.storage_mb = body.storage_mb or self.storage_mb
        return record

    def _ingest(self, run_id: str, heard: bool = True) -> _Held:
        """The live run `run_id`, locked; RunNotFound, WrongState (built-in) or RunEnded if not live."""
        with self._lock:
            run = self._live.get(run_id)
        if run is None:
            run = self._revive(run_id)
        return _Held(run, self._clock() if heard else None)

    def _revive(self, run_id: str) -> _Live:
        """A running attached run this service does not track yet (made by another Storage user)."""
        record = self.storage.get_run(run_id)
        if record is None:
            raise RunNotFound(f"there is no run with id {run_id!r}")
        if record.kind != "attached":
            raise WrongState(
                f"run {run_id} is built-in: it trains on this server and takes no steps or frames"
            )
        if record.status in FINISHED:
            raise RunEnded(f"run {run_id} has ended: it is {record.status}")
        run = _Live(
            record,
            AttachedConfig.model_validate(record.config),
            record.step,
            set(self.storage.probe_steps(run_id)),
            self._clock(),
        )
        with self._lock:
            return self._live.setdefault(run_id, run)

    def _finish(self, run: _Live, status: str, error: str | None, stale_at: float | None = None) -> bool:
        """End a live run (unless it went meanwhile, or, for the reaper, was heard from since)."""
        with run.lock:
            if run.gone is not None or (stale_at is not None and stale_at - run.heard <= STALE_SECONDS):
                return False
            self._finish_locked(run, status, error, run.config)
            return True

    def _finish_locked(self, run: _Live, status: str, error: str | None, config: AttachedConfig) -> RunRecord:
        record = self.storage.update_run(
            run.record.id,
            status=status,
            error=error,
            finished_at=utcnow(),
            config=config.model_dump(mode="json"),
        )
        if record is None:  # pragma: no cover - deleted behind the service's back
            raise RunNotFound(f"there is no run with id {run.record.id!r}")
        run.gone = RunEnded(f"run {record.id} has ended: it is {record.status}")
        run.record = record
        with self._lock:
            self._live.pop(record.id, None)
        public = record.to_public()
        self._emit(record.id, StatusMessage(public))
        self._emit(record.id, EndMessage(public))
        return record

    def _emit(self, run_id: str, message: Message) -> None:
        if self._publish is None:
            return
        try:
            self._publish(run_id, message)
        except Exception:
            log.exception("run %s: publish failed", run_id)


class _Held:
    """`with service._ingest(id) as run:` holds the run's lock; a run that ended (or was deleted)
    while the request waited raises RunEnded (RunNotFound). Entering counts as a heartbeat (unless
    made with heard=None)."""

    def __init__(self, run: _Live, heard: float | None) -> None:
        self.run, self.heard = run, heard

    def __enter__(self) -> _Live:
        self.run.lock.acquire()
        gone = self.run.gone
        if gone is not None:
            self.run.lock.release()
            raise type(gone)(str(gone))  # a new one each time: a raised exception keeps its traceback
        if self.heard is not None:
            self.run.heard = self.heard
        return self.run

    def __exit__(self, *exc: object) -> None:
        self.run.lock.release()


def _create_all(storage: Storage, records: list[RunRecord]) -> None:
    """Create every run, or (deleting those made) none."""
    try:
        for record in records:
            storage.create_run(record)
    except BaseException:
        for record in records:
            storage.delete_run(record.id)
        raise


def _encoded(frame: Frame) -> tuple[bytes, bytes | None]:
    """A frame's bytes and its display frame's (None when that is the frame), as the worker makes them."""
    display = frame.pooled()
    return frame.to_bytes(), display.to_bytes() if display is not frame else None


def _steps(rows: list[dict[str, Any]]) -> list[StepIn]:
    """The steps of a run file, checked as StepsIn checks a batch (but any number of them)."""
    try:
        steps = _STEP_ROWS.validate_python(rows)
    except ValidationError as exc:
        raise Invalid(f"the run file's steps are not valid: {first_error(exc)}") from exc
    try:
        check_increasing(steps)
    except ValueError as exc:
        raise Invalid(f"the run file's steps are not valid: {exc}") from exc
    return steps


_STEP_ROWS = TypeAdapter(list[StepIn])


def _parse(model: type[M], value: Any, what: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise Invalid(f"{what} is not valid: {first_error(exc)}") from exc

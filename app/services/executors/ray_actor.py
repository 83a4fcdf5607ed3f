"""The Ray executor: each run trains in a detached, named Ray actor (GATESCOPE_RAY_ADDRESS).

What this is: `RunActor`, the actor (namespace ACTOR_NAMESPACE, name "run-<id>", 1 CPU, one torch
thread, never restarted), and `RayExecutor` / `RayWorker`, the server's side. The actor runs
app.services.worker.run in a thread; the worker's messages (its tuples) go into the actor's buffer
and `messages()`, a streaming generator, yields them in batches (what accumulated, at most one
batch every BATCH_SECONDS) to the server's reader thread. `control` feeds the worker's control
channel (pause, resume, intervene), `stop` sets its stop flag. The buffer keeps every message until
the server says it is stored (`ack`), so a new server (after a restart) calls `messages()` again
and loses nothing: it gets again what was not acknowledged (storage writes are idempotent). The
actor exits itself once its end is acknowledged, and stops and exits after ORPHAN_SECONDS with no
server acknowledging (a server that died for good does not leave actors training forever).

The nodes import this module and app.services.worker from the `gatescope` package installed there
(`pip install "gatescope[ray]"` in the nodes' environment, the same version as the server's): the
actor's class is pickled by reference, nothing is shipped.

What this is not: the interface (app.services.executors) or the scheduling (app.services.manager).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import ray
import torch
from ray.exceptions import GetTimeoutError, RayError

from app.services import worker
from app.services.executors import ExecutorName, ExecutorUnavailable, RunWorker, Start

ACTOR_NAMESPACE = "gatescope"
BATCH_SECONDS = 0.05  # the actor yields at most one batch this often (a step's latency through Ray)
ACK_SECONDS = 0.5  # the server acknowledges at most this often (and at least, as a heartbeat)
ORPHAN_SECONDS = 600.0  # an actor no server has acknowledged for this long stops and exits
CONTROL_SECONDS = 5.0  # the longest wait for the actor to take a control message
CONNECT_SECONDS = 5.0  # the longest wait for the cluster's address to answer at start
ENDS = ("end", "error")


def actor_name(run_id: str) -> str:
    return f"run-{run_id}"


class _Inbox:
    """The worker's control channel (worker.Inbox) over a queue the actor's methods fill."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Any, ...]] = queue.Queue()

    def poll(self, timeout: float = 0.0) -> bool:
        if not self.queue.empty():
            return True
        if timeout > 0:
            time.sleep(min(timeout, worker.PAUSED_POLL_SECONDS))
        return not self.queue.empty()

    def recv(self) -> tuple[Any, ...]:
        return self.queue.get_nowait()


@ray.remote(num_cpus=1, max_restarts=0, max_concurrency=4, concurrency_groups={"stream": 2})  # type: ignore[call-overload]
class RunActor:
    """One run: worker.run in a thread, its messages buffered until the server has stored them."""

    def __init__(self, run_id: str, config_json: str, start: Start | None) -> None:
        torch.set_num_threads(1)
        self._cond = threading.Condition()
        self._buffer: deque[tuple[Any, ...]] = deque()  # not acknowledged yet
        self._first = 0  # the sequence number of _buffer[0]
        self._end: int | None = None  # the sequence number of the end, once sent
        self._acked_at = time.monotonic()
        self._generation = 0  # the latest messages() call; older ones return
        self._inbox = _Inbox()
        self._stop = threading.Event()
        args = (run_id, config_json, self, self._stop, self._inbox, start)
        threading.Thread(target=self._train, args=args, name="gatescope-train", daemon=True).start()
        threading.Thread(target=self._watch, name="gatescope-watch", daemon=True).start()

    def _train(self, *args: Any) -> None:
        worker.run(*args)
        if self._end is None:  # pragma: no cover - run() always ends with "end" or "error"
            self.send(("error", "RuntimeError: the worker thread ended without a word"))

    def send(self, message: tuple[Any, ...]) -> None:
        """worker.Outbox: buffer one of the worker's messages."""
        with self._cond:
            self._buffer.append(message)
            if message[0] in ENDS:
                self._end = self._first + len(self._buffer) - 1
            self._cond.notify_all()

    def where(self) -> tuple[str, int]:
        """The node training this run ("<ip>/<node id's first 8 hex digits>") and the actor's pid."""
        context = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return f"{ip}/{context.get_node_id()[:8]}", os.getpid()

    @ray.method(num_returns="streaming", concurrency_group="stream")
    def messages(self) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
        """Every message not acknowledged yet, then the new ones as they come, in batches, each
        with the sequence number of its first message (what `ack` counts in); ends after the
        worker's end (or when a newer call takes over)."""
        with self._cond:
            self._generation += 1
            mine, cursor = self._generation, self._first
        yielded_at = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(partial(self._ready, cursor, mine), timeout=1.0)
                if self._generation != mine:
                    return
                if not self._has(cursor):
                    continue
            time.sleep(max(0.0, yielded_at + BATCH_SECONDS - time.monotonic()))
            with self._cond:
                cursor = max(cursor, self._first)
                batch = list(self._buffer)[cursor - self._first :]
            yielded_at = time.monotonic()
            yield cursor, batch
            cursor += len(batch)
            if self._end is not None and cursor > self._end:
                return

    def _has(self, cursor: int) -> bool:
        return self._first + len(self._buffer) > cursor

    def _ready(self, cursor: int, generation: int) -> bool:
        return self._has(cursor) or self._generation != generation

    def ack(self, upto: int) -> None:
        """The server has stored the messages before sequence number `upto` (a heartbeat too)."""
        with self._cond:
            while self._buffer and self._first < upto:
                self._buffer.popleft()
                self._first += 1
            self._acked_at = time.monotonic()

    def control(self, message: tuple[Any, ...]) -> None:
        self._inbox.queue.put(message)

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        """Exit once the end is acknowledged; stop (then exit) when no server has acknowledged for
        ORPHAN_SECONDS."""
        while True:
            time.sleep(0.2)
            with self._cond:
                ended = self._end is not None and self._first > self._end
                orphaned = time.monotonic() - self._acked_at > ORPHAN_SECONDS
            if orphaned:
                self._stop.set()
            if ended or (orphaned and self._end is not None):
                ray.get_runtime_context().current_actor.__ray_terminate__.remote()
                return


class RayExecutor:
    """Runs as actors of the Ray cluster at `address` ("auto", "ray://host:port" or "host:port")."""

    name: ExecutorName = "ray"
    detaches = True

    def __init__(self, address: str, max_runs: int | None) -> None:
        self.address, self.max_runs = address, max_runs
        self.error: str | None = None
        try:
            _reachable(address)
            if not ray.is_initialized():
                ray.init(address=address, namespace=ACTOR_NAMESPACE, logging_level=logging.WARNING)
        except Exception as exc:  # ConnectionError, OSError, RuntimeError, ... : Ray's own sentence
            self.error = f"the Ray cluster at {address} is unreachable: {_text(exc)}"

    def capacity(self) -> int:
        """GATESCOPE_MAX_RUNS if set, else the cluster's CPUs (1 while Ray is unreachable)."""
        if self.max_runs is not None:
            return self.max_runs
        if self.error is not None:
            return 1
        return max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]

    def check(self) -> None:
        if self.error is not None:
            raise ExecutorUnavailable(f"no run can start: {self.error}")

    def launch(self, run_id: str, config_json: str, start: Start | None) -> RunWorker:
        self.check()
        return RayWorker(run_id, lambda: _create(run_id, config_json, start))

    def reattach(self, run_id: str) -> RunWorker | str:
        if self.error is not None:
            return self.error
        try:
            actor = ray.get_actor(actor_name(run_id), namespace=ACTOR_NAMESPACE)
            ray.get(actor.where.remote(), timeout=CONTROL_SECONDS)
        except (ValueError, RayError) as exc:
            return f"its Ray actor is gone ({_text(exc)})"
        return RayWorker(run_id, lambda: actor)

    def close(self) -> None:
        if self.error is None and ray.is_initialized():
            ray.shutdown()


def _create(run_id: str, config_json: str, start: Start | None) -> Any:
    options = {"name": actor_name(run_id), "namespace": ACTOR_NAMESPACE, "lifetime": "detached"}
    return RunActor.options(**options).remote(run_id, config_json, start)  # type: ignore[attr-defined]


class RayWorker:
    """The server's side of one run's actor: its stream of batches, read by the reader thread."""

    def __init__(self, run_id: str, actor: Any) -> None:
        self.run_id = run_id
        self._make = actor  # makes (or finds) the actor: called by start()
        self.actor: Any = None
        self._where: Any = None  # the ObjectRef of actor.where(), until it has answered
        self._node: str | None = None
        self._pid: int | None = None
        self._stream: Any = None
        self._batch: deque[tuple[int, tuple[Any, ...]]] = deque()  # (sequence number, message)
        self._received = 0  # the sequence number after the last message received
        self._acked_at = 0.0
        self._ended = False  # the stream ended after the worker's end
        self.death: str | None = None  # how the actor died, if the stream broke

    @property
    def where(self) -> tuple[ExecutorName, str | None]:
        return "ray", self._node

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        self.actor = self._make()
        self._where = self.actor.where.remote()

    def recv(self, timeout: float) -> tuple[Any, ...] | None:
        if not self._batch:
            if self.death is not None or self._ended:
                raise EOFError(self.death or "the run's stream has ended")
            try:
                self._fill(timeout)
            except (RayError, StopIteration) as exc:
                if not isinstance(exc, StopIteration):
                    self.death = f"the Ray actor training this run died: {_text(exc)}"
                self._ended = self.death is None
                raise EOFError(self.death or "the run's stream has ended") from None
            if not self._batch:
                return None
        seq, message = self._batch.popleft()
        self._received = seq + 1
        self._ended = self._ended or message[0] in ENDS
        return message

    def _fill(self, timeout: float) -> None:
        """Wait up to `timeout` s for the actor to be up, then for its next batch."""
        if self._stream is None:
            ready, _ = ray.wait([self._where], timeout=timeout)
            if not ready:
                return
            self._node, self._pid = ray.get(self._where)
            self._stream = self.actor.messages.remote()
            timeout = 0.0
        ready, _ = ray.wait([self._stream], timeout=timeout)
        if ready:
            first, batch = ray.get(next(self._stream))
            self._batch.extend(enumerate(batch, start=first))

    def control(self, message: tuple[Any, ...]) -> None:
        try:
            ray.get(self.actor.control.remote(message), timeout=CONTROL_SECONDS)
        except (RayError, GetTimeoutError) as exc:
            raise EOFError(_text(exc)) from exc

    def stop(self) -> None:
        if self.actor is not None:
            self.actor.stop.remote()

    def terminate(self) -> None:
        if self.actor is not None:
            ray.kill(self.actor)

    def committed(self) -> None:
        """Acknowledge what was received (every ACK_SECONDS at most: also the actor's heartbeat)."""
        now = time.monotonic()
        if self.actor is not None and now - self._acked_at >= ACK_SECONDS:
            self._acked_at = now
            self.actor.ack.remote(self._received)

    def detach(self) -> None:
        """Leave the actor training: a later server reattaches (ray_actor's docstring)."""

    def reap(self, timeout: float) -> str:
        """After the end: acknowledge it and wait for the actor to take it (it then exits itself,
        freeing its CPU; an acknowledgement lost to a server shutting down right after would
        leave it waiting ORPHAN_SECONDS); else kill the actor."""
        if self.actor is None:
            return "the Ray actor was never created"
        if self._ended:
            try:
                ray.get(self.actor.ack.remote(self._received), timeout=min(timeout, CONTROL_SECONDS))
            except (RayError, GetTimeoutError):
                ray.kill(self.actor)
            return "the Ray actor ended its stream"
        ray.kill(self.actor)
        return self.death or "the Ray actor was killed"


def _reachable(address: str) -> None:
    """OSError unless something listens at a "host:port" (or "ray://host:port") address: ray.init
    would retry an address that does not answer for minutes."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{address!r} is not 'auto', 'host:port' or 'ray://host:port'")
    with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_SECONDS):
        pass


def _text(exc: BaseException) -> str:
    """An exception's message on one line, at most 500 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."

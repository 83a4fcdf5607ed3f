"""A running run as the manager holds it: `Handle` (its worker process, pipe, reader thread and
the flags they share) and `Outcome` (how the worker ended, as the reader thread saw it).

What this is not: the scheduling (app.services.manager) or the worker's side (app.services.worker).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType


@dataclass(eq=False)
class Handle:
    """One running run: its worker process, pipe, reader thread and what they share."""

    run_id: str
    process: BaseProcess
    conn: Connection  # the parent's end
    child_conn: Connection  # the worker's end, closed here once the worker has started
    stop_event: EventType
    control: Connection  # the parent's end of the control pipe (pause, resume)
    child_control: Connection  # the worker's end, closed here once the worker has started
    thread: threading.Thread = field(init=False)
    checkpoint: bytes | None = None  # the latest weights, while running
    heard: bool = False  # a first message arrived (the worker is past importing torch)
    stop_requested: bool = False
    stop_deadline: float | None = None  # monotonic time after which the worker is terminated
    shutting_down: bool = False
    deleted: bool = False

    def terminate(self) -> None:
        if self.process.pid is not None and self.process.is_alive():
            self.process.terminate()

    def reap(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for the worker to exit (then terminate it, then kill it); its exit code."""
        if self.process.pid is None:
            return None  # never started
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.terminate()
            self.process.join(1.0)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        return self.process.exitcode


@dataclass
class Outcome:
    """How a worker ended, as the reader thread saw it."""

    end: tuple[str, int, str] | None = None  # (status, step, reason) from the worker's "end"
    error: str | None = None  # the worker's "error" text, or a storage failure
    exitcode: int | None = None

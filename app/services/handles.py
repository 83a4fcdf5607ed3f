"""A running run as the manager holds it: `Handle` (its RunWorker, reader thread and the flags they
share) and `Outcome` (how the worker ended, as the reader thread saw it).

What this is not: the scheduling (app.services.manager), the executors that make workers
(app.services.executors) or the worker's side (app.services.worker).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from app.services.executors import RunWorker


@dataclass(eq=False)
class Handle:
    """One running run: its worker, reader thread and what they share."""

    run_id: str
    worker: RunWorker
    thread: threading.Thread = field(init=False)
    checkpoint: bytes | None = None  # the latest weights, while running
    heard: bool = False  # a first message arrived (the worker is past importing torch)
    stop_requested: bool = False
    stop_deadline: float | None = None  # monotonic time after which the worker is terminated
    shutting_down: bool = False
    detached: bool = False  # the server shuts down and leaves the worker training (Executor.detaches)
    deleted: bool = False

    def terminate(self) -> None:
        self.worker.terminate()


@dataclass
class Outcome:
    """How a worker ended, as the reader thread saw it."""

    end: tuple[str, int, str] | None = None  # (status, step, reason) from the worker's "end"
    error: str | None = None  # the worker's "error" text, or a storage failure
    death: str | None = None  # RunWorker.reap's sentence: how the worker ended

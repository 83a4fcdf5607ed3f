"""A running run as the manager holds it: `Handle` (its RunWorker, reader thread and the flags they
share) and `Outcome` (how the worker ended, as the reader thread saw it, and the final status
that makes: `Outcome.verdict`).

What this is not: the scheduling (app.services.manager), the executors that make workers
(app.services.executors) or the worker's side (app.services.worker).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from app.services.executors import RunWorker

SHUTDOWN_ERROR = "server shut down during the run"


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

    def verdict(self, h: Handle) -> tuple[str, str | None]:
        """The run's final status and error: the worker's own end (a stop the shutdown asked for is
        'interrupted'), else its error, else the stop asked for, else how it died."""
        if self.end is not None:
            status, step, reason = self.end
            if status == "diverged":
                return status, f"{reason} at step {step}"
            if status == "stopped" and h.shutting_down and not h.stop_requested:
                return "interrupted", SHUTDOWN_ERROR
            return status, None
        if self.error is not None:
            return "failed", self.error
        if h.stop_requested:
            return "stopped", None
        if h.shutting_down:
            return "interrupted", SHUTDOWN_ERROR
        return "failed", self.death

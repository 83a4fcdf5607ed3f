"""Where a watch's steps and frames go: the `Sink` protocol, and `MemorySink`, which keeps them.

What this is: the one interface between `gatescope.watch` (which measures) and the transports
(which deliver): `HttpSink` (gatescope.transport) posts to a Gatescope server from a background
thread, `FileSink` (gatescope.runfile) appends to a local run file, `MemorySink` keeps everything
in lists (tests, notebooks). Every method the training thread calls costs an append (FileSink: an
append to a file). And `close_at_exit`: a sink the script forgot to close is closed when the
interpreter exits, "completed", or "failed" with the uncaught exception that ended the script.

What this is not: a place that measures anything, or that knows HTTP or files.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol

from app.core.probes import ProbeFrame

EndStatus = Literal["completed", "stopped", "failed"]
END_STATUSES: tuple[EndStatus, ...] = ("completed", "stopped", "failed")  # how a run may end
AT_EXIT_TIMEOUT = 10.0  # seconds a forgotten sink may take to flush when the interpreter exits


class Sink(Protocol):
    def open(self, attach: dict[str, Any]) -> None:
        """Start: `attach` is the AttachCreate JSON (docs/api.md). Returns at once."""

    def step(self, row: dict[str, Any]) -> None:
        """One StepIn row (docs/api.md), once per `Watch.step()`."""

    def frame(self, module: int, frame: ProbeFrame) -> None:
        """A probe frame of watched module `module` (an index into attach["modules"])."""

    @property
    def stop_requested(self) -> bool:
        """Someone asked, from the dashboard, that the script stop."""

    @property
    def dropped_frames(self) -> int:
        """Frames that did not reach the server (it was slow or away, or refused them)."""

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        """End the runs with `status` after flushing what is pending, waiting at most `timeout`
        seconds. A second call does nothing."""


@dataclass
class MemorySink:
    """Keeps everything it is given, in order."""

    attach: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    frames: list[tuple[int, ProbeFrame]] = field(default_factory=list)
    ended: tuple[str, str | None] | None = None
    stop_requested: bool = False
    dropped_frames: int = 0

    def open(self, attach: dict[str, Any]) -> None:
        self.attach = attach

    def step(self, row: dict[str, Any]) -> None:
        self.steps.append(row)

    def frame(self, module: int, frame: ProbeFrame) -> None:
        self.frames.append((module, frame))

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        check_status(status)
        if self.ended is None:
            self.ended = (status, error)


def check_status(status: str) -> None:
    """ValueError with a sentence unless `status` is one a run may end with."""
    if status not in END_STATUSES:
        raise ValueError(f"a watch ends with one of {', '.join(END_STATUSES)}, not {status!r}")


# -- closing forgotten sinks at exit --------------------------------------------------------

_open_sinks: list[Sink] = []  # in the order they were opened
_uncaught: list[BaseException] = []  # the exception that is ending the script, if one is


def close_at_exit(sink: Sink) -> None:
    """Close `sink` when the interpreter exits unless `forget_at_exit(sink)` came first."""
    _install_excepthook()
    if all(s is not sink for s in _open_sinks):
        _open_sinks.append(sink)


def forget_at_exit(sink: Sink) -> None:
    """`sink` was closed by the script: nothing to do for it at exit."""
    _open_sinks[:] = [s for s in _open_sinks if s is not sink]


def exit_status() -> tuple[EndStatus, str | None]:
    """How a script that is exiting ended: "completed"; "failed" with "ExcType: message" after
    an uncaught exception; "stopped" after Ctrl-C (an uncaught KeyboardInterrupt)."""
    if not _uncaught:
        return "completed", None
    exc = _uncaught[-1]
    return ("stopped" if isinstance(exc, KeyboardInterrupt) else "failed"), describe(exc)


def describe(exc: BaseException) -> str:
    """ "ExcType: message", as a run's error shows an exception."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@atexit.register
def _close_open_sinks() -> None:
    status, error = exit_status()
    for sink in list(_open_sinks):
        sink.close(status, error, timeout=AT_EXIT_TIMEOUT)


def _install_excepthook() -> None:
    """Wrap sys.excepthook (once, keeping whatever hook was there) to remember the exception."""
    previous: Callable[[type[BaseException], BaseException, TracebackType | None], Any] = sys.excepthook
    if getattr(previous, "gatescope", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _uncaught.append(exc)
        previous(kind, exc, tb)

    hook.gatescope = True  # type: ignore[attr-defined]
    sys.excepthook = hook

"""Where a watch's steps and frames go: the `Sink` protocol, and `MemorySink`, which keeps them.

What this is: the one interface between `gatescope.watch` (which measures) and the transports
(which deliver): `HttpSink` (gatescope.transport) posts to a Gatescope server from a background
thread, `FileSink` (gatescope.runfile) appends to a local run file, `MemorySink` keeps everything
in lists (tests, notebooks). Every method the training thread calls costs an append.

What this is not: a place that measures anything, or that knows HTTP or files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.probes import ProbeFrame


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
        """Frames dropped because the server was slow or away."""

    def close(self, status: str, error: str | None = None, timeout: float = 30.0) -> None:
        """End the runs with `status` ("completed", "stopped", "failed") after flushing what is
        pending, waiting at most `timeout` seconds."""


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

    def close(self, status: str, error: str | None = None, timeout: float = 30.0) -> None:
        self.ended = (status, error)

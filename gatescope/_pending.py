"""The frames an HttpSink has yet to send: bounded, the oldest dropped first, drops counted by module.

What this is: the queue between the training thread (`add`) and the sink's sending thread (`take`,
then `sent`, `put_back` or `drop`), one lock guarding it. A frame waits as its probe's arrays
until the sending thread encodes it. While more than `max_frames` frames wait, or more than
`max_bytes` of them (one frame may always wait), the oldest is dropped and counted, and `on_bound`
is called (the sink logs it once). The frame being sent (`in_flight`) counts as not delivered;
`undelivered` is the warning close() gives for what never got through.

What this is not: the sending, retrying or logging (gatescope.transport).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.core.probes import ProbeFrame


@dataclass
class Pending:
    """One frame waiting to be sent."""

    module: int
    step: int
    probe: ProbeFrame | None  # until the thread encodes it ...
    data: bytes | None  # ... into this
    nbytes: int  # what it holds in memory


class PendingFrames:
    def __init__(self, max_frames: int, max_bytes: int, on_bound: Callable[[], None]) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.on_bound = on_bound
        self.in_flight: Pending | None = None  # taken, not yet sent, put back or dropped
        self.dropped: Counter[int] = Counter()  # by module
        self._frames: deque[Pending] = deque()  # waiting, oldest first
        self._bytes = 0
        self._lock = threading.Lock()  # guards _frames, _bytes and dropped

    def __len__(self) -> int:
        """How many frames wait (the one in flight not counted)."""
        return len(self._frames)

    def add(self, pending: Pending) -> None:
        with self._lock:
            self._frames.append(pending)
            self._bytes += pending.nbytes
            self._bound()

    def take(self) -> Pending | None:
        """The oldest waiting frame, now in flight; None if none waits."""
        with self._lock:
            if not self._frames:
                return None
            pending = self._frames.popleft()
            self._bytes -= pending.nbytes
            self.in_flight = pending
            return pending

    def put_back(self, pending: Pending) -> None:
        """The frame in flight waits again, first in line (the server was away)."""
        with self._lock:
            self._frames.appendleft(pending)
            self._bytes += pending.nbytes
            self.in_flight = None
            self._bound()

    def sent(self) -> None:
        """The server answered for the frame in flight."""
        self.in_flight = None

    def drop(self, pending: Pending) -> None:
        """`pending` is not sent (again): counted as dropped."""
        with self._lock:
            self.dropped[pending.module] += 1
            self.in_flight = None

    def _bound(self) -> None:
        """Drop the oldest waiting frames while the waiting ones exceed a bound (under the lock)."""
        while len(self._frames) > self.max_frames or (self._bytes > self.max_bytes and len(self._frames) > 1):
            oldest = self._frames.popleft()
            self._bytes -= oldest.nbytes
            self.dropped[oldest.module] += 1
            self.on_bound()


def frame_nbytes(frame: ProbeFrame) -> int:
    """The bytes a frame's arrays hold."""
    total = 0
    for f in dataclasses.fields(frame):
        value = getattr(frame, f.name)
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, dict):
            total += sum(v.nbytes for v in value.values() if isinstance(v, np.ndarray))
    return total


def undelivered(
    server: str,
    timeout: float,
    gave_up: str | None,
    attached: bool,
    steps: int,
    frames: int,
    unended: list[str],
) -> str | None:
    """The warning for what close() could not deliver within `timeout` (`steps` and `frames` not
    delivered, the runs `unended`), or None if all went through. `gave_up`: why the sink sent
    nothing (the attach was refused); `attached`: whether the server made the runs."""
    what = [f"{n} {noun}" for n, noun in ((steps, "steps"), (frames, "frames")) if n]
    lost = f"{' and '.join(what)} were not delivered" if what else ""
    if gave_up is not None:
        return f"gatescope: {gave_up}" + (f": {lost}" if lost else "")
    if not attached:
        return f"gatescope: {server} could not be reached within {timeout:g} s: no run was made" + (
            f", and {lost}" if lost else ""
        )
    if not lost and not unended:
        return None
    parts = [lost] if lost else []
    if unended:
        parts.append(f"runs {', '.join(unended)} were not ended (the server will mark them interrupted)")
    return f"gatescope: {server} did not take everything within {timeout:g} s: {'; '.join(parts)}"

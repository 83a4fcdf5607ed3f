"""The hub: fans each run's live messages out to the websocket viewers watching it.

What this is: `Hub` lives on the server's event loop. `Hub.publish(run_id, message)` is called
from the run manager's reader threads and hops to the loop (call_soon_threadsafe). Per run a
`Channel` keeps what every viewer shares: recent step metrics, each encoded to JSON once; the
latest probe frame, the very bytes object every viewer sends; the run's current RunPublic; and
the interventions published since the channel opened (a few, each encoded once).
Per viewer a `Viewer` holds O(1) state: the index of the next step to send, the step of the last
probe sent, the status version last sent, how many interventions it was sent (and the ids its
snapshot had), and an asyncio.Event. `Hub.serve(viewer, sink)` is a viewer's sender: on each
wake-up it sends the pending steps as ONE text message, then each new intervention, then the
newest probe if it is newer (at most one every `probe_interval` seconds), then the status if it
changed, and when the run has ended and the viewer has caught up, the end message.

Steps are coalesced per channel, not per viewer: the first step after a quiet `interval` wakes
the viewers at once, later ones at most every `interval` seconds (one timer per channel), so a
step waits at most `interval` in the hub and every viewer in step sends the very same text,
encoded once.

A slow viewer only ever holds indices, never copies: it neither slows training nor grows memory.
The step buffer is trimmed to what the slowest viewer still needs, to at least the last
`retain_steps` (so a viewer joining mid-run can bridge the gap between what storage has flushed
and what is live), and to at most `max_buffer` steps: a viewer more than that far behind skips
the oldest, which the step numbers make visible. Channels with no viewer are dropped `linger`
seconds after the run ended or went quiet.

What this is not: the websocket endpoint (app/web/ws.py sends the snapshot and owns the socket),
storage, or training. It imports no web framework: a viewer sends through any `Sink`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from typing import Protocol

import orjson

from app.services.messages import (
    EndMessage,
    InterventionMessage,
    Message,
    ProbeMessage,
    StatusMessage,
    StepMessage,
)
from app.services.schemas import FINISHED, RunPublic

log = logging.getLogger(__name__)

STEP_INTERVAL = 0.01  # seconds between two step wake-ups of a channel: at most ~100 a second
PROBE_INTERVAL = 0.05  # seconds between two probe frames to one viewer: at most ~20 a second
RETAIN_STEPS = 2_000  # steps kept even with no viewer, for joiners (storage flushes every 0.2 s)
MAX_BUFFER = 20_000  # steps kept at most for slow viewers
LINGER = 60.0  # seconds a viewerless channel stays after its run ended or went quiet
TRIM_CHUNK = 256  # trim the buffer in chunks, so appending stays O(1) amortized


class Sink(Protocol):
    """Where a viewer's messages go: a websocket, or a list in a test."""

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...


class Channel:
    """One run's shared live state."""

    __slots__ = (
        "base",
        "batch",
        "ended",
        "flush",
        "flushed_at",
        "interventions",
        "last_activity",
        "numbers",
        "probe",
        "probe_step",
        "run",
        "run_id",
        "run_json",
        "steps",
        "version",
        "viewers",
    )

    def __init__(self, run_id: str, run: RunPublic | None, now: float) -> None:
        self.run_id = run_id
        self.steps: list[bytes] = []  # JSON of each step's metrics, oldest first
        self.numbers: list[int] = []  # the step number of each entry of `steps`
        self.base = 0  # absolute index of steps[0]
        self.probe: bytes | None = None  # the latest display frame's bytes (see ProbeMessage)
        self.probe_step = -1
        self.interventions: list[tuple[str, str]] = []  # (id, the intervention message's text)
        self.run: RunPublic | None = None
        self.run_json = "null"
        self.version = 0  # bumped on every status change
        self.ended = False
        self.viewers: set[Viewer] = set()
        self.last_activity = now
        self.flushed_at = -float("inf")  # loop time the viewers were last woken for steps
        self.flush: asyncio.TimerHandle | None = None  # the pending step wake-up
        self.batch: tuple[int, int, str] = (0, 0, "")  # (start, end, text) of the last step message
        if run is not None:
            self.set_run(run)

    @property
    def end(self) -> int:
        """Absolute index one past the newest step."""
        return self.base + len(self.steps)

    def set_run(self, run: RunPublic) -> None:
        self.run = run
        self.run_json = run.model_dump_json()
        self.version += 1
        if run.status in FINISHED:
            self.ended = True

    def index_after(self, step: int) -> int:
        """Absolute index of the first buffered step numbered above `step`."""
        return self.base + bisect.bisect_right(self.numbers, step)

    def wake(self) -> None:
        for viewer in self.viewers:
            viewer.wake.set()

    def step_message(self, start: int) -> str:
        """The step message of the buffered steps from absolute index `start` on (encoded once
        for all the viewers at the same place)."""
        if self.batch[:2] != (start, self.end):
            batch = self.steps[start - self.base :]
            self.batch = (start, self.end, '{"type":"step","steps":[' + b",".join(batch).decode() + "]}")
        return self.batch[2]


class Viewer:
    """One websocket's place in a channel: a few integers and an event, never a copy of data."""

    __slots__ = (
        "after_step",
        "channel",
        "interventions",
        "next_index",
        "probe_step",
        "seen",
        "version",
        "wake",
    )

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.next_index = channel.base  # pins the buffer until the snapshot is sent (see skip_to)
        self.after_step = -1  # steps numbered up to this one were in the snapshot: never send them
        self.probe_step = -1
        self.version = channel.version
        self.interventions = len(channel.interventions)  # the ones before it are in its snapshot
        self.seen: frozenset[str] = frozenset()  # ids of the interventions its snapshot had
        self.wake = asyncio.Event()

    def skip_to(self, last_step: int, probe_step: int, interventions: frozenset[str] = frozenset()) -> None:
        """Mark everything up to `last_step` (and the probe of `probe_step`, and the interventions
        of these ids) as already sent.

        Steps up to `last_step` that reach the hub only later (a probe or end can store a step
        batch while its messages are still on their way to the loop) are skipped too.
        """
        self.after_step = max(self.after_step, last_step)
        self.next_index = max(self.next_index, self.channel.index_after(last_step))
        self.probe_step = max(self.probe_step, probe_step)
        self.seen = self.seen | interventions
        self.wake.set()


class Hub:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float = STEP_INTERVAL,
        probe_interval: float = PROBE_INTERVAL,
        retain_steps: int = RETAIN_STEPS,
        max_buffer: int = MAX_BUFFER,
        linger: float = LINGER,
    ) -> None:
        self._loop = loop
        self.interval = interval
        self.probe_interval = probe_interval
        self.retain_steps = retain_steps
        self.max_buffer = max(max_buffer, retain_steps)
        self.linger = linger
        self.channels: dict[str, Channel] = {}
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None

    # -- from any thread -------------------------------------------------------------------

    def publish(self, run_id: str, message: Message) -> None:
        """Hand a run's message to the hub; safe from any thread, never blocks, never raises.

        A step without a "time" is stamped with time.time() here, so viewers can measure latency.
        """
        if self._closed:
            return
        if isinstance(message, StepMessage) and "time" not in message.metrics:
            message.metrics["time"] = time.time()  # for latency: when the step reached the server's hub
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
            self._loop.call_soon_threadsafe(self._deliver, run_id, message)

    # -- on the loop -----------------------------------------------------------------------

    def _deliver(self, run_id: str, message: Message) -> None:
        if self._closed:
            return
        try:
            channel = self._channel(run_id, None)
            channel.last_activity = self._loop.time()
            if isinstance(message, StepMessage):
                self._append(channel, message.metrics)
                self._wake_for_steps(channel)
                return
            if isinstance(message, ProbeMessage):
                if message.step >= channel.probe_step:
                    channel.probe, channel.probe_step = message.display, message.step
            elif isinstance(message, InterventionMessage):
                text = intervention_message(message.item.model_dump_json())
                channel.interventions.append((message.item.id, text))
            elif isinstance(message, StatusMessage | EndMessage):
                channel.set_run(message.run)
                if isinstance(message, EndMessage):
                    channel.ended = True
            else:  # pragma: no cover - the manager sends only the five kinds
                log.warning("hub: ignoring a message of unknown type %s", type(message).__name__)
                return
            channel.wake()
        except Exception:  # a bad message must never take the loop's callback down silently
            log.exception("hub: could not deliver a message for run %s", run_id)

    def _wake_for_steps(self, channel: Channel) -> None:
        """Wake the viewers now if the last step wake-up is `interval` old, else when it is."""
        if channel.flush is not None:
            return  # one is due already: it takes this step along
        now = self._loop.time()
        due = channel.flushed_at + self.interval
        if due <= now:
            self._flush_steps(channel)
        else:
            channel.flush = self._loop.call_at(due, self._flush_steps, channel)

    def _flush_steps(self, channel: Channel) -> None:
        channel.flush = None
        channel.flushed_at = self._loop.time()
        channel.wake()

    def _append(self, channel: Channel, metrics: dict[str, object]) -> None:
        step = metrics.get("step")
        number = step if isinstance(step, int) else (channel.numbers[-1] + 1 if channel.numbers else 0)
        channel.steps.append(orjson.dumps(metrics, option=orjson.OPT_SERIALIZE_NUMPY))
        channel.numbers.append(number)
        if len(channel.steps) >= self.retain_steps + TRIM_CHUNK:
            self._trim(channel)

    def _trim(self, channel: Channel) -> None:
        end = channel.end
        floor = min((v.next_index for v in channel.viewers), default=end)
        floor = max(min(floor, end - self.retain_steps), end - self.max_buffer)
        drop = floor - channel.base
        if drop >= TRIM_CHUNK or (drop > 0 and len(channel.steps) > self.max_buffer):
            del channel.steps[:drop]
            del channel.numbers[:drop]
            channel.base = floor

    def _channel(self, run_id: str, run: RunPublic | None) -> Channel:
        channel = self.channels.get(run_id)
        if channel is None:
            channel = self.channels[run_id] = Channel(run_id, run, self._loop.time())
            self._schedule_sweep()
        return channel

    def attach(self, run_id: str, run: RunPublic) -> Viewer:
        """A new viewer of `run_id` (must be called on the loop). Pair with `detach`."""
        channel = self._channel(run_id, run)
        viewer = Viewer(channel)
        channel.viewers.add(viewer)
        return viewer

    def detach(self, viewer: Viewer) -> None:
        channel = viewer.channel
        channel.viewers.discard(viewer)
        channel.last_activity = self._loop.time()

    def sweep(self) -> None:
        """Drop channels with no viewer whose run ended (or went quiet) `linger` seconds ago."""
        now = self._loop.time()
        for run_id, channel in list(self.channels.items()):
            if not channel.viewers and now - channel.last_activity >= self.linger:
                if channel.flush is not None:
                    channel.flush.cancel()
                del self.channels[run_id]

    def _schedule_sweep(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = self._loop.call_later(max(self.linger / 2, 0.01), self._sweep_tick)

    def _sweep_tick(self) -> None:
        self._sweeper = None
        self.sweep()
        if self.channels:
            self._schedule_sweep()

    def close(self) -> None:
        """Stop delivering; every viewer's `serve` returns at its next wake-up (call on the loop)."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for channel in self.channels.values():
            if channel.flush is not None:
                channel.flush.cancel()
                channel.flush = None
            channel.wake()

    async def serve(self, viewer: Viewer, sink: Sink) -> bool:
        """Send `viewer` its channel's live messages until the run ends (True) or the hub closes (False).

        The caller has already sent the snapshot and called `viewer.skip_to`. Returns after the end
        message; closing the socket is the caller's job.
        """
        channel = viewer.channel
        loop = asyncio.get_running_loop()
        probe_sent = -float("inf")
        probe_timer: asyncio.TimerHandle | None = None

        def probe_due() -> None:
            nonlocal probe_timer
            probe_timer = None
            viewer.wake.set()

        try:
            while True:
                await viewer.wake.wait()
                viewer.wake.clear()
                if self._closed:
                    return False
                start = max(viewer.next_index, channel.base, channel.index_after(viewer.after_step))
                if start < channel.end:
                    text = channel.step_message(start)
                    viewer.next_index = channel.end
                    await sink.send_text(text)
                while viewer.interventions < len(channel.interventions):
                    item_id, text = channel.interventions[viewer.interventions]
                    viewer.interventions += 1
                    if item_id not in viewer.seen:
                        await sink.send_text(text)
                if channel.probe is not None and channel.probe_step > viewer.probe_step:
                    wait = probe_sent + self.probe_interval - loop.time()
                    if wait <= 0:
                        viewer.probe_step, probe_sent = channel.probe_step, loop.time()
                        await sink.send_bytes(channel.probe)
                    elif probe_timer is None:
                        probe_timer = loop.call_later(wait, probe_due)  # the newest frame then
                if viewer.version != channel.version and not channel.ended:
                    viewer.version = channel.version
                    await sink.send_text('{"type":"status","run":' + channel.run_json + "}")
                caught_up = viewer.next_index >= channel.end and viewer.probe_step >= channel.probe_step
                if channel.ended and caught_up and not viewer.wake.is_set():
                    await sink.send_text(end_message(channel.run_json))
                    return True
        finally:
            if probe_timer is not None:
                probe_timer.cancel()


def intervention_message(item_json: str) -> str:
    """{"type": "intervention", "id", "step", "changes", "applied_at"}: an Intervention's fields."""
    return '{"type":"intervention",' + item_json[1:]


def end_message(run_json: str) -> str:
    """The text of the last message a viewer gets: {"type": "end", "run": RunPublic}."""
    return '{"type":"end","run":' + run_json + "}"

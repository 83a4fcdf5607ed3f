"""HttpSink: a watch's steps and frames, posted to a Gatescope server from a background thread.

What this is: the client half of the ingest endpoints (docs/api.md, "Attached runs"). The
training thread only appends (`step()`, `frame()`: microseconds). A daemon thread attaches
(POST /api/attach: one run per watched module), then posts the steps in batches of at most
MAX_STEPS to every run of the group (steps are model-wide), encodes each frame
(`Frame.from_probe(run_id, frame).to_bytes()`) and posts it to its module's run, and makes sure
each run hears from it at least every HEARTBEAT_SECONDS. While the server is slow or away:

- steps wait in memory, however many: none is dropped. A 409 for steps sent before (whose answer
  was lost) counts as delivered: the thread asks the run's stored step and sends only the rest;
- frames wait up to MAX_PENDING_FRAMES frames and MAX_PENDING_BYTES bytes; past either bound the
  oldest waiting frame is dropped and counted (`dropped_frames`, reported to the server at /end);
- the thread retries with a backoff (0.25 s, doubling to 5 s) and logs once that it cannot reach
  the server (naming the URL) and once that it is back.

A refusal (a 4xx but 409 and 429) is logged with the server's sentence, once per kind, and what
was refused is dropped (a frame: counted), never retried; a frame above MAX_FRAME_BYTES is refused
here, before sending. A run the server has ended (409 with "stop", or 404) gets nothing more.
`IngestReply.stop` sets `stop_requested`. `close()` flushes for at most its timeout, ends the runs
(POST /end, with the run's dropped frames) and, if the server did not take everything, warns
naming what was not delivered: it never hangs the script. A sink the script forgot to close is
closed at exit (gatescope.sink.close_at_exit); a script killed with -9 leaves its runs to the
server's heartbeat reaper, which marks them interrupted.

What this is not: validation (the server validates everything it gets) or measuring (gatescope.watch).
Its parts: the waiting frames' queue and close()'s warning (gatescope._pending), requests'
content and the reading of the server's answers (gatescope._replies).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.core.frames import MAX_FRAME_BYTES, Frame
from app.core.probes import ProbeFrame
from gatescope._pending import Pending, PendingFrames, frame_nbytes, undelivered
from gatescope._replies import encode, is_over, reply_json, sentence
from gatescope.runfile import too_large
from gatescope.sink import check_status, close_at_exit, forget_at_exit

MAX_STEPS = 1000  # steps per request, the most the server takes
MAX_PENDING_FRAMES = 16  # frames that may wait for a slow or absent server ...
MAX_PENDING_BYTES = 256 * 2**20  # ... and their bytes (as held: float32 arrays, or encoded)
HEARTBEAT_SECONDS = 4.0  # each run hears from us at least this often (the server waits 30 s)
POLL_SECONDS = 0.25  # how often the thread looks for new steps and frames (a request per 0.25 s)
BACKOFF_SECONDS = (0.25, 5.0)  # the first and the longest wait before trying an absent server again
REQUEST_TIMEOUT = 10.0  # seconds, per request
END_SHARE = 0.2  # of close()'s timeout kept for ending the runs (at most END_SECONDS)
END_SECONDS = 2.0
MAX_ERROR_CHARS = 2000  # the longest error /end takes

log = logging.getLogger("gatescope")


@dataclass
class _Run:
    id: str
    steps: list[dict[str, Any]] = field(default_factory=list)  # the rows this run has yet to take
    ended: bool = False  # by us (POST /end) or by the server (it answered that the run is over)
    heard: float = 0.0  # time.monotonic() of its last answer


@dataclass(frozen=True)
class _Closing:
    status: str
    error: str | None
    deadline: float  # time.monotonic() by which close() returns
    flush_until: float  # then the runs are ended


class _Backoff:
    def __init__(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        first, longest = BACKOFF_SECONDS
        self.delay = min(longest, max(first, 2 * self.delay))
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class HttpSink:
    """Sends a watch to the Gatescope server at `server` (e.g. "http://127.0.0.1:8000"), with
    `token` if the server has one. `transport` (an httpx transport) is for tests."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        max_pending_frames: int = MAX_PENDING_FRAMES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        heartbeat: float = HEARTBEAT_SECONDS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self.max_pending_frames = max_pending_frames
        self.max_pending_bytes = max_pending_bytes
        self.max_frame_bytes = max_frame_bytes
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._transport = transport
        self._attach: dict[str, Any] = {}
        self._inbox: deque[dict[str, Any]] = deque()  # steps from the training thread
        self._pending = PendingFrames(max_pending_frames, max_pending_bytes, self._log_bound)
        self._runs: list[_Run] = []
        self._group: str | None = None
        self._stop = False
        self._away = False
        self._gave_up: str | None = None  # why nothing more is sent, after a refused attach
        self._lost_steps = 0  # steps given after that
        self._logged: set[str] = set()
        self._closing: _Closing | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None

    # -- what the training thread calls ---------------------------------------------------

    def open(self, attach: dict[str, Any]) -> None:
        """Start the thread that attaches and sends; returns at once."""
        if self._thread is not None:
            raise RuntimeError("this HttpSink is open already")
        self._attach = attach
        self._thread = threading.Thread(target=self._main, name="gatescope-http", daemon=True)
        self._thread.start()
        close_at_exit(self)

    def step(self, row: dict[str, Any]) -> None:
        if self._closing is not None:
            raise RuntimeError("step() after close()")
        if self._gave_up is not None:
            self._lost_steps += 1
            return
        self._inbox.append(row)

    def frame(self, module: int, frame: ProbeFrame) -> None:
        modules = len(self._attach.get("modules", ()))
        if not 0 <= module < modules:
            raise ValueError(f"module {module} is not one of the {modules} watched modules")
        self._pending.add(Pending(module, frame.step, frame, None, frame_nbytes(frame)))

    @property
    def stop_requested(self) -> bool:
        return self._stop

    @property
    def dropped_frames(self) -> int:
        return self._pending.dropped.total()

    @property
    def run_ids(self) -> list[str]:
        """The runs the server made, one per watched module ([] until it attached)."""
        return [run.id for run in self._runs]

    @property
    def group(self) -> str | None:
        return self._group

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        """Flush, end the runs with `status`, and return within `timeout` seconds; warn if the
        server did not take everything. A second call does nothing."""
        check_status(status)
        if self._closing is not None:
            return
        now = time.monotonic()
        reserve = min(END_SECONDS, END_SHARE * timeout)
        self._closing = _Closing(status, error, now + timeout, now + timeout - reserve)
        forget_at_exit(self)
        if self._thread is None:
            return
        self._wake.set()
        self._thread.join(timeout)
        message = self._undelivered(timeout)
        if message is not None:
            warnings.warn(message, stacklevel=2)

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            with httpx.Client(
                base_url=self.server,
                headers=self._headers,
                timeout=self.request_timeout,
                transport=self._transport,
            ) as http:
                self._http = http
                if self._attach_runs():
                    self._deliver()
                    self._end_runs()
        except Exception:
            log.exception("gatescope: the thread that sends to %s failed: nothing more is sent", self.server)

    def _attach_runs(self) -> bool:
        """POST /api/attach until the server answers (False if it refused, or close() gave up)."""
        backoff = _Backoff()
        while not self._past_flush():
            response = self._post("/api/attach", self._attach)
            if response is None:
                self._sleep(backoff.next())
                continue
            runs = reply_json(response).get("runs") if response.status_code in (200, 201) else None
            if isinstance(runs, list) and len(runs) == len(self._attach["modules"]):
                self._group = reply_json(response).get("group")
                self._runs = [_Run(str(run["id"]), heard=time.monotonic()) for run in runs]
                log.info("gatescope: attached to %s as runs %s", self.server, ", ".join(self.run_ids))
                return True
            self._give_up(response)
            return False
        return False

    def _deliver(self) -> None:
        """Send until close() and everything is sent, or close()'s time to flush is up."""
        backoff = _Backoff()
        while self._closing is None or not (self._flushed() or self._past_flush()):
            sent = self._send_once()
            if sent is None:
                self._sleep(backoff.next())
                continue
            backoff.reset()
            if not sent:
                self._sleep(POLL_SECONDS)

    def _send_once(self) -> bool | None:
        """One round: a batch of steps to each run, one frame, the heartbeats due. True if it
        sent steps or a frame, None if the server is away."""
        self._take_inbox()
        sent = False
        for run in self._live():
            if run.steps:
                if self._send_steps(run) is None:
                    return None
                sent = True
        pending = self._pending.take()
        if pending is not None:
            if self._send_frame(pending) is None:
                return None
            sent = True
        for run in self._live():
            if time.monotonic() - run.heard >= self.heartbeat and self._heartbeat(run) is None:
                return None
        return sent

    def _end_runs(self) -> None:
        closing = self._closing
        assert closing is not None  # _deliver returns only after close()
        backoff = _Backoff()
        for index, run in enumerate(self._runs):
            while not run.ended and not self._past_deadline():
                body = {
                    "status": closing.status,
                    "error": closing.error[:MAX_ERROR_CHARS] if closing.error is not None else None,
                    "dropped_frames": self._pending.dropped[index],
                }
                response = self._post(f"/api/runs/{run.id}/end", body)
                if response is None:
                    self._sleep(backoff.next())
                    continue
                if response.status_code != 200 and not is_over(response):
                    self._log_once(
                        "end", "gatescope: the server did not end run %s: %s", run.id, sentence(response)
                    )
                run.ended = True

    # -- steps -----------------------------------------------------------------------------

    def _take_inbox(self) -> None:
        live = self._live()
        while self._inbox:
            row = self._inbox.popleft()
            for run in live:
                run.steps.append(row)

    def _send_steps(self, run: _Run) -> bool | None:
        batch = run.steps[:MAX_STEPS]
        response = self._post(f"/api/runs/{run.id}/steps", {"steps": batch})
        if response is None:
            return None
        if response.status_code == 200:
            del run.steps[: len(batch)]
            self._heard(run, response)
        elif response.status_code == 409 and not is_over(response):
            return self._reconcile(run, batch, response)
        elif not self._lost(run, response):
            self._refuse_steps(run, batch, response)
        return True

    def _reconcile(self, run: _Run, batch: list[dict[str, Any]], conflict: httpx.Response) -> bool | None:
        """After a 409: the rows the run has stored already are delivered; if none was, the 409
        stands, and the batch is refused."""
        response = self._post(f"/api/runs/{run.id}/heartbeat", None)
        if response is None:
            return None
        if response.status_code != 200:
            if not self._lost(run, response):
                self._refuse_steps(run, batch, response)
            return True
        stored = int(self._heard(run, response).get("step", 0))
        waiting = len(run.steps)
        run.steps = [row for row in run.steps if row["step"] > stored]
        if len(run.steps) == waiting:
            self._refuse_steps(run, batch, conflict)
        return True

    def _refuse_steps(self, run: _Run, batch: list[dict[str, Any]], response: httpx.Response) -> None:
        del run.steps[: len(batch)]
        self._log_once(
            f"steps {response.status_code}",
            "gatescope: the server refused %d steps of run %s (%d: %s): they are not sent again",
            len(batch),
            run.id,
            response.status_code,
            sentence(response),
        )

    # -- frames ----------------------------------------------------------------------------

    def _log_bound(self) -> None:
        self._log_once(
            "bound",
            "gatescope: %s is slow or away: past %d waiting frames (or %d MiB) the oldest is dropped "
            "and counted; steps are all kept",
            self.server,
            self.max_pending_frames,
            self.max_pending_bytes // 2**20,
        )

    def _send_frame(self, pending: Pending) -> bool | None:
        run = self._runs[pending.module]
        if run.ended:
            self._pending.drop(pending)
            return True
        if pending.probe is not None:
            pending.data = Frame.from_probe(run.id, pending.probe).to_bytes()
            pending.probe, pending.nbytes = None, len(pending.data)
        assert pending.data is not None
        if len(pending.data) > self.max_frame_bytes:
            self._log_once("too large", "%s", too_large(pending.step, pending.module, pending.nbytes))
            self._pending.drop(pending)
            return True
        response = self._post(f"/api/runs/{run.id}/frames", pending.data)
        if response is None:
            self._pending.put_back(pending)
            return None
        self._pending.sent()
        if response.status_code == 200 or (response.status_code == 409 and not is_over(response)):
            self._heard(run, response)  # a 409 that is not "over": this frame is stored already
        elif not self._lost(run, response):
            self._log_once(
                f"frame {response.status_code}",
                "gatescope: the server refused the frame of step %d of run %s (%d: %s): it is dropped",
                pending.step,
                run.id,
                response.status_code,
                sentence(response),
            )
            self._pending.drop(pending)
        return True

    # -- requests --------------------------------------------------------------------------

    def _post(self, path: str, body: Any) -> httpx.Response | None:
        """POST a JSON body (bytes: a frame; None: nothing); None if the server could not be
        reached or answered 5xx or 429 (the caller backs off and tries again)."""
        assert self._http is not None
        content, headers = encode(body)
        try:
            response = self._http.post(
                path,
                content=content,
                headers=headers,
                timeout=self._timeout(),
            )
        except httpx.TransportError as exc:
            self._unreachable(f"{type(exc).__name__}: {exc}")
            return None
        if response.status_code >= 500 or response.status_code == 429:
            self._unreachable(f"it answered {response.status_code}: {sentence(response)}")
            return None
        if self._away:
            self._away = False
            log.warning("gatescope: %s answers again; sending what waited", self.server)
        return response

    def _unreachable(self, reason: str) -> None:
        if not self._away:
            self._away = True
            log.warning(
                "gatescope: cannot reach %s (%s); training goes on: steps wait in memory, frames up to "
                "%d, and the watch keeps trying",
                self.server,
                reason,
                self.max_pending_frames,
            )

    def _heartbeat(self, run: _Run) -> bool | None:
        response = self._post(f"/api/runs/{run.id}/heartbeat", None)
        if response is None:
            return None
        if response.status_code == 200:
            self._heard(run, response)
        elif not self._lost(run, response):
            run.heard = time.monotonic()  # not again at once
            self._log_once(
                f"heartbeat {response.status_code}",
                "gatescope: the server refused a heartbeat of run %s (%d: %s)",
                run.id,
                response.status_code,
                sentence(response),
            )
        return True

    def _heard(self, run: _Run, response: httpx.Response) -> dict[str, Any]:
        """An IngestReply: the run is alive; its "stop" asks the script to stop."""
        run.heard = time.monotonic()
        reply = reply_json(response)
        if reply.get("stop") is True:
            self._stop = True
        return reply

    def _lost(self, run: _Run, response: httpx.Response) -> bool:
        """If `response` says the run is over (409 with "stop") or gone (404): nothing more is
        sent to it. True if so."""
        if response.status_code != 404 and not is_over(response):
            return False
        run.ended, run.steps = True, []
        self._stop = self._stop or is_over(response)
        log.warning(
            "gatescope: run %s is over on the server (%s): nothing more is sent to it",
            run.id,
            sentence(response),
        )
        return True

    def _give_up(self, response: httpx.Response) -> None:
        reason = f"{self.server} refused to attach ({response.status_code}: {sentence(response)})"
        if response.status_code == 401:
            reason += "; pass token= to gatescope.watch, or set GATESCOPE_TOKEN"
        self._gave_up = reason  # step() stops keeping rows; _undelivered counts those kept before
        log.warning("gatescope: %s: nothing is sent", reason)

    # -- time and state ----------------------------------------------------------------------

    def _timeout(self) -> float:
        if self._closing is None:
            return self.request_timeout
        return max(0.05, min(self.request_timeout, self._closing.deadline - time.monotonic()))

    def _past_flush(self) -> bool:
        return self._closing is not None and time.monotonic() >= self._closing.flush_until

    def _past_deadline(self) -> bool:
        return self._closing is not None and time.monotonic() >= self._closing.deadline

    def _sleep(self, seconds: float) -> None:
        if self._closing is not None:
            seconds = min(seconds, max(0.0, self._closing.deadline - time.monotonic()))
        self._wake.wait(seconds)
        self._wake.clear()

    def _live(self) -> list[_Run]:
        return [run for run in self._runs if not run.ended]

    def _flushed(self) -> bool:
        return (
            not self._inbox
            and not self._pending
            and self._pending.in_flight is None
            and not any(r.steps for r in self._runs)
        )

    def _log_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(message, *args)

    def _undelivered(self, timeout: float) -> str | None:
        """The warning for what close() could not deliver, or None if all went through."""
        live = self._live()
        steps = len(self._inbox) + self._lost_steps + max((len(r.steps) for r in live), default=0)
        frames = len(self._pending) + (self._pending.in_flight is not None)
        unended = [r.id for r in live]
        return undelivered(self.server, timeout, self._gave_up, bool(self._runs), steps, frames, unended)

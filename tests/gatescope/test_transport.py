"""HttpSink against a server that keeps the ingest contract (docs/api.md), in memory behind an
httpx.MockTransport, with faults on demand: down, 503, lost answers, refusals, stop; and against
a port where nothing listens. What must hold: steps all arrive, each once, in order, at every run;
frames wait up to the bound and the oldest are dropped and counted past it; close() returns
within its timeout and says what it could not deliver; the training thread's calls are cheap."""

from __future__ import annotations

import dataclasses
import functools
import logging
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import uvicorn

from app.core.engine import TrainConfig, Trainer
from app.core.frames import Frame
from app.core.probes import ProbeFrame
from app.main import create_app
from app.settings import Settings
from gatescope import _pending, transport
from gatescope.transport import HttpSink
from tests.live_server import REPO_ROOT, free_port

URL = "http://gatescope.test:8000"
MODULE = {
    "path": "rnn",
    "cell": "lstm",
    "input_size": 2,
    "hidden_size": 8,
    "num_layers": 1,
    "bidirectional": False,
    "batch_first": True,
    "bias": True,
    "dropout": 0.0,
}


def attach(modules: int = 1) -> dict[str, Any]:
    paths = ["rnn", "decoder.rnn", "c", "d"]
    return {
        "name": "t",
        "script": "t.py",
        "every": 1,
        "modules": [{**MODULE, "path": p} for p in paths[:modules]],
    }


def row(step: int) -> dict[str, Any]:
    return {"step": step, "loss": 1.0 / step, "metric": None, "grad_norm": 0.5, "grad_norm_clipped": 0.5,
            "clipped": False, "param_grad_norms": {"rnn.weight_hh_l0": 0.1}, "update_ratio": 1e-3,
            "lr": 1e-3, "seconds": 0.01}  # fmt: skip


@functools.cache
def _probe() -> ProbeFrame:
    trainer = Trainer(
        TrainConfig(cell="lstm", hidden_size=8, task="adding", task_params={"seq_len": 6}, threads=1)
    )
    return trainer.probe()


def probe(step: int) -> ProbeFrame:
    return dataclasses.replace(_probe(), step=step)


# -- the server ---------------------------------------------------------------------------------


@dataclass
class FakeRun:
    id: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[int, Frame] = field(default_factory=dict)
    end: dict[str, Any] | None = None
    heartbeats: int = 0


class FakeServer:
    """The ingest endpoints as the contract has them, in memory, thread-safe, with faults."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, FakeRun] = {}
        self.log: list[tuple[str, int]] = []  # (path, status answered; 0: no answer)
        self.headers: list[httpx.Headers] = []
        self.down = False  # connections are refused
        self.failing: int | None = None  # answer every ingest request with this status
        self.lose_answers = 0  # store the next n step batches, fail to answer, and go down
        self.refuse_frames = False  # 422 for every frame
        self.stop = False  # someone pressed Stop
        self.attach_status = 201

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.headers.append(request.headers)
            path = request.url.path
            if self.down:
                self.log.append((path, 0))
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            response = self.answer(path, request.content)
            self.log.append((path, response.status_code))
            if response.status_code == 200 and path.endswith("/steps") and self.lose_answers:
                self.lose_answers -= 1
                self.log[-1] = (path, 0)
                self.down = True
                raise httpx.ReadTimeout("timed out", request=request)
            return response

    def answer(self, path: str, body: bytes) -> httpx.Response:
        if path == "/api/attach":
            return self.attach(orjson.loads(body))
        _, _, _, run_id, what = path.split("/")
        run = self.runs.get(run_id)
        if run is None:
            return httpx.Response(404, json={"detail": f"there is no run with id {run_id!r}"})
        if self.failing is not None:
            return httpx.Response(self.failing, json={"detail": "the server is busy"})
        if run.end is not None and what != "end":
            return httpx.Response(409, json={"detail": f"run {run_id} has ended", "stop": True})
        if what == "steps":
            return self.steps(run, orjson.loads(body)["steps"])
        if what == "frames":
            return self.frame(run, body)
        if what == "heartbeat":
            run.heartbeats += 1
            return self.reply(run)
        assert what == "end"
        if run.end is not None:
            return httpx.Response(409, json={"detail": f"run {run_id} has ended", "stop": True})
        run.end = orjson.loads(body)
        return httpx.Response(200, json={"id": run_id, "status": run.end["status"]})

    def attach(self, body: dict[str, Any]) -> httpx.Response:
        if self.attach_status != 201:
            return httpx.Response(self.attach_status, json={"detail": "this server needs a token"})
        ids = [f"run{len(self.runs) + i}" for i in range(len(body["modules"]))]
        self.runs |= {i: FakeRun(i) for i in ids}
        return httpx.Response(
            201, json={"group": "g1", "runs": [{"id": i, "status": "running"} for i in ids]}
        )

    def steps(self, run: FakeRun, rows: list[dict[str, Any]]) -> httpx.Response:
        last = run.steps[-1]["step"] if run.steps else 0
        for row in rows:
            if row["step"] <= last:
                return httpx.Response(409, json={"detail": f"step {row['step']} is not after step {last}"})
            last = row["step"]
        run.steps.extend(rows)
        return self.reply(run)

    def frame(self, run: FakeRun, body: bytes) -> httpx.Response:
        if self.refuse_frames:
            return httpx.Response(
                422, json={"detail": "the frame's h has shape (1, 6, 8), the run's is (2, T, 8)"}
            )
        frame = Frame.from_bytes(body)
        assert frame.header["run_id"] == run.id
        if frame.step in run.frames:
            return httpx.Response(409, json={"detail": f"run {run.id} has a frame of step {frame.step}"})
        run.frames[frame.step] = frame
        return self.reply(run)

    def reply(self, run: FakeRun) -> httpx.Response:
        step = run.steps[-1]["step"] if run.steps else 0
        return httpx.Response(
            200, json={"run_id": run.id, "step": step, "frames": len(run.frames), "stop": self.stop}
        )

    def count(self, suffix: str, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for p, s in self.log if p.endswith(suffix) and (status is None or s == status))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    monkeypatch.setattr(transport, "BACKOFF_SECONDS", (0.01, 0.05))  # tests need not wait seconds
    monkeypatch.setattr(transport, "POLL_SECONDS", 0.01)
    return FakeServer()


@pytest.fixture
def sinks() -> Iterator[list[HttpSink]]:
    """Sinks a test opened: closed (quickly) after it, so none is left to the exit hook."""
    made: list[HttpSink] = []
    yield made
    for sink in made:
        if sink._closing is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sink.close(timeout=0.1)


def opened(server: FakeServer, sinks: list[HttpSink], modules: int = 1, **options: Any) -> HttpSink:
    sink = HttpSink(URL, "secret", transport=server.transport(), **options)
    sinks.append(sink)
    sink.open(attach(modules))
    return sink


def steps_of(run: FakeRun) -> list[int]:
    return [r["step"] for r in run.steps]


# -- delivery -------------------------------------------------------------------------------------


def test_steps_go_to_every_run_and_frames_to_their_module_s_run(
    server: FakeServer, sinks: list[HttpSink]
) -> None:
    sink = opened(server, sinks, modules=2)
    for k in range(1, 26):
        sink.step(row(k))
        if k in (1, 10):
            sink.frame(0 if k == 1 else 1, probe(k))
    sink.close("stopped", "asked to")
    assert sink.run_ids == ["run0", "run1"]
    assert sink.group == "g1"
    first, second = server.runs["run0"], server.runs["run1"]
    assert steps_of(first) == steps_of(second) == list(range(1, 26))
    assert first.steps[3] == row(4)
    assert (list(first.frames), list(second.frames)) == ([1], [10])
    expected = Frame.from_probe("run1", probe(10))
    assert second.frames[10].header == expected.header
    assert first.end == second.end == {"status": "stopped", "error": "asked to", "dropped_frames": 0}
    assert all(h["authorization"] == "Bearer secret" for h in server.headers)


def test_steps_go_in_batches_of_at_most_1000(server: FakeServer, sinks: list[HttpSink]) -> None:
    server.down = True
    sink = opened(server, sinks)
    for k in range(1, 2501):
        sink.step(row(k))
    server.down = False
    sink.close()
    assert steps_of(server.runs["run0"]) == list(range(1, 2501))
    assert server.count("/steps") == 3


def test_a_server_down_at_the_start_gets_every_step_once_when_it_comes_up(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    server.down = True
    started = time.perf_counter()
    sink = opened(server, sinks)
    assert time.perf_counter() - started < 0.05  # open() returns at once
    for k in range(1, 51):
        sink.step(row(k))
        if k % 10 == 0:
            sink.frame(0, probe(k))
    wait_until(lambda: server.count("/api/attach", 0) >= 3)
    [warning] = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert warning.startswith(
        f"gatescope: cannot reach {URL} (ConnectError: [Errno 111] Connection refused);"
    )
    assert "training goes on" in warning
    server.down = False
    sink.close()
    run = server.runs["run0"]
    assert steps_of(run) == list(range(1, 51))
    assert list(run.frames) == [10, 20, 30, 40, 50]
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_steps_whose_answer_was_lost_are_not_sent_twice(server: FakeServer, sinks: list[HttpSink]) -> None:
    server.lose_answers = 1
    sink = opened(server, sinks, modules=2)
    for k in range(1, 101):
        sink.step(row(k))
    wait_until(lambda: server.down)  # a batch is stored, its answer lost, and the server went away
    for k in range(101, 201):
        sink.step(row(k))  # so the next batch has more than the stored one
    server.down = False
    sink.close()
    assert steps_of(server.runs["run0"]) == steps_of(server.runs["run1"]) == list(range(1, 201))
    assert server.count("/steps", 409) >= 1  # the resend after a lost answer: counted as delivered
    assert server.lose_answers == 0


def test_a_server_answering_503_keeps_every_step_and_the_newest_frames(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = opened(server, sinks)
    wait_until(lambda: sink.run_ids != [])
    server.failing = 503
    for k in range(1, 41):
        for j in range(5):
            sink.step(row(5 * (k - 1) + j + 1))
        sink.frame(0, probe(k))
    failed = server.count("", 503)
    wait_until(lambda: server.count("", 503) >= failed + 2)  # a frame in flight meanwhile was put back
    assert sink.dropped_frames == 40 - transport.MAX_PENDING_FRAMES
    server.failing = None
    sink.close()
    run = server.runs["run0"]
    assert steps_of(run) == list(range(1, 201))
    assert list(run.frames) == list(range(41 - transport.MAX_PENDING_FRAMES, 41))  # the oldest were dropped
    assert run.end == {"status": "completed", "error": None, "dropped_frames": 24}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("the oldest is dropped and counted" in m for m in messages) == 1
    assert any("(it answered 503: the server is busy)" in m for m in messages)


def test_the_byte_bound_drops_frames_too(server: FakeServer, sinks: list[HttpSink]) -> None:
    size = _pending.frame_nbytes(probe(1))
    server.down = True
    sink = opened(server, sinks, max_pending_bytes=3 * size)
    for k in range(1, 11):
        sink.frame(0, probe(k))
    assert sink.dropped_frames == 7  # 3 frames' worth wait (none is in flight before the attach)
    server.down = False
    sink.close()
    assert list(server.runs["run0"].frames) == [8, 9, 10]


# -- refusals, stop, heartbeat ------------------------------------------------------------------------


def test_a_refused_frame_is_logged_once_with_the_sentence_and_dropped(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    server.refuse_frames = True
    sink = opened(server, sinks)
    for k in range(1, 4):
        sink.step(row(k))
        sink.frame(0, probe(k))
    sink.close()
    assert server.count("/frames") == 3  # each tried once, never again
    assert steps_of(server.runs["run0"]) == [1, 2, 3]
    assert server.runs["run0"].end == {"status": "completed", "error": None, "dropped_frames": 3}
    [message] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert message == (
        "gatescope: the server refused the frame of step 1 of run run0 (422: the frame's h has shape "
        "(1, 6, 8), the run's is (2, T, 8)): it is dropped"
    )


def test_a_frame_above_the_server_s_limit_is_refused_before_it_is_sent(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = opened(server, sinks, max_frame_bytes=1000)
    sink.frame(0, probe(1))
    sink.close()
    assert server.count("/frames") == 0
    assert sink.dropped_frames == 1
    assert any(
        "the frame of step 1 (module 0) is 0.0 MiB, above the 32 MiB" in r.getMessage()
        for r in caplog.records
    )


def test_stop_from_the_dashboard_sets_stop_requested(server: FakeServer, sinks: list[HttpSink]) -> None:
    sink = opened(server, sinks)
    sink.step(row(1))
    wait_until(lambda: server.count("/steps") == 1)
    assert not sink.stop_requested
    server.stop = True
    sink.step(row(2))
    wait_until(lambda: sink.stop_requested)
    sink.close("stopped")
    assert server.runs["run0"].end is not None
    assert server.runs["run0"].end["status"] == "stopped"


def test_a_run_the_server_ended_gets_nothing_more(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = opened(server, sinks)
    sink.step(row(1))
    wait_until(lambda: server.count("/steps") == 1)
    server.runs["run0"].end = {"status": "interrupted"}  # the reaper, say
    sink.step(row(2))
    wait_until(lambda: sink.stop_requested)
    requests = len(server.log)
    sink.step(row(3))
    sink.frame(0, probe(3))
    sink.close()
    assert len(server.log) == requests
    assert steps_of(server.runs["run0"]) == [1]
    assert any(
        "run run0 is over on the server (run run0 has ended)" in r.getMessage() for r in caplog.records
    )


def test_each_run_hears_a_heartbeat_when_the_script_is_quiet(
    server: FakeServer, sinks: list[HttpSink]
) -> None:
    sink = opened(server, sinks, modules=2, heartbeat=0.05)
    wait_until(lambda: all(r.heartbeats >= 3 for r in server.runs.values()))
    sink.close()
    assert transport.HEARTBEAT_SECONDS < 5  # the contract: at least every 5 s


def test_a_refused_attach_sends_nothing_more_and_says_why(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    server.attach_status = 401
    sink = opened(server, sinks)
    wait_until(lambda: sink._gave_up is not None)
    sink.step(row(1))
    started = time.monotonic()
    with pytest.warns(UserWarning, match="^gatescope: ") as warned:
        sink.close(timeout=5)
    assert time.monotonic() - started < 0.5
    assert str(warned[0].message) == (
        f"gatescope: {URL} refused to attach (401: this server needs a token); pass token= to "
        "gatescope.watch, or set GATESCOPE_TOKEN: 1 steps were not delivered"
    )
    assert len(server.log) == 1
    assert any("refused to attach" in r.getMessage() for r in caplog.records)


# -- close ------------------------------------------------------------------------------------------


def test_close_with_the_server_away_returns_within_its_timeout_and_says_what_was_lost(
    server: FakeServer, sinks: list[HttpSink]
) -> None:
    sink = opened(server, sinks)
    wait_until(lambda: sink.run_ids != [])
    server.down = True
    for k in range(1, 11):
        sink.step(row(k))
    sink.frame(0, probe(1))
    sink.frame(0, probe(2))
    started = time.monotonic()
    with pytest.warns(UserWarning, match="^gatescope: ") as warned:
        sink.close(timeout=1.0)
    assert 0.9 < time.monotonic() - started < 1.3
    assert str(warned[0].message) == (
        f"gatescope: {URL} did not take everything within 1 s: 10 steps and 2 frames were not delivered; "
        "runs run0 were not ended (the server will mark them interrupted)"
    )


def test_close_before_the_server_was_ever_reached(server: FakeServer, sinks: list[HttpSink]) -> None:
    server.down = True
    sink = opened(server, sinks)
    sink.step(row(1))
    with pytest.warns(
        UserWarning, match=r"could not be reached within 0.3 s: no run was made, and 1 steps were"
    ):
        sink.close(timeout=0.3)
    sink.close()  # a second close does nothing (and does not warn again)
    with pytest.raises(RuntimeError, match=r"step\(\) after close\(\)"):
        sink.step(row(2))


def test_nothing_listening_at_the_url_is_a_warning_and_training_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sink = HttpSink(url)
    started = time.perf_counter()
    sink.open(attach())
    sink.step(row(1))
    assert time.perf_counter() - started < 0.05
    wait_until(lambda: any("cannot reach" in r.getMessage() for r in caplog.records))
    assert any(
        r.getMessage().startswith(f"gatescope: cannot reach {url} (ConnectError:") for r in caplog.records
    )
    started = time.monotonic()
    with pytest.warns(UserWarning, match=f"{url} could not be reached within 0.5 s"):
        sink.close(timeout=0.5)
    assert time.monotonic() - started < 0.8


def test_misuse_is_refused_with_sentences(server: FakeServer, sinks: list[HttpSink]) -> None:
    sink = opened(server, sinks)
    with pytest.raises(ValueError, match="module 1 is not one of the 1 watched modules"):
        sink.frame(1, probe(1))
    with pytest.raises(RuntimeError, match="open already"):
        sink.open(attach())
    with pytest.raises(ValueError, match="a watch ends with one of completed, stopped, failed"):
        sink.close("finished")
    sink.close()


# -- cost -------------------------------------------------------------------------------------------


def per_call_us(call: Callable[[int], None], n: int) -> float:
    """The median of n calls' durations, in microseconds."""
    times = []
    for i in range(n):
        started = time.perf_counter_ns()
        call(i)
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1000


def test_the_training_thread_only_appends(
    server: FakeServer, sinks: list[HttpSink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gatescope")
    sink = opened(server, sinks)
    rows = [row(k) for k in range(1, 20_001)]
    frames = [probe(k) for k in range(1, 201)]
    step_us = per_call_us(lambda i: sink.step(rows[i]), len(rows))
    frame_us = per_call_us(lambda i: sink.frame(0, frames[i]), len(frames))
    sink.close()
    assert steps_of(server.runs["run0"])[-1] == 20_000
    assert step_us < 20, step_us  # an append: well under a microsecond when the machine is idle
    assert frame_us < 100, frame_us  # an append and a sum of array sizes: a few microseconds


# -- against the real app ----------------------------------------------------------------------------


@contextmanager
def real_server(data_dir: Path, port: int) -> Iterator[str]:
    """The app (create_app) served by uvicorn in a thread on `port`; its URL."""
    config = uvicorn.Config(
        create_app(Settings(data_dir=data_dir)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def attached_probe(step: int) -> ProbeFrame:
    """A frame as watch makes one: no targets, no outputs (the probe of an LSTM, H=8, I=2)."""
    return dataclasses.replace(_probe(), step=step, targets=None, outputs=None, source="live")


def test_a_watch_s_traffic_is_a_run_on_the_real_server_even_if_it_came_up_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    sink = HttpSink(f"http://127.0.0.1:{port}")
    sink.open(attach(modules=2))
    for k in range(1, 31):
        sink.step(row(k))
        if k in (1, 10, 20, 30):
            sink.frame(k % 2, attached_probe(k))
    wait_until(lambda: any("cannot reach" in r.getMessage() for r in caplog.records))
    with real_server(tmp_path, port) as url, httpx.Client(base_url=url) as http:
        sink.close()
        runs = {run["id"]: run for run in http.get("/api/runs").json()["items"]}
        assert list(runs) == list(reversed(sink.run_ids))  # newest first
        for module, run_id in enumerate(sink.run_ids):
            run = runs[run_id]
            assert (run["kind"], run["status"], run["config"]["module"]) == (
                "attached",
                "completed",
                attach(2)["modules"][module]["path"],
            )
            assert run["config"]["dropped_frames"] == 0
            metrics = http.get(f"/api/runs/{run_id}/metrics").json()
            assert [m["step"] for m in metrics] == list(range(1, 31))
            assert metrics[4]["loss"] == pytest.approx(0.2)
            assert http.get(f"/api/runs/{run_id}/probes").json() == ([10, 20, 30] if module == 0 else [1])
        frame = Frame.from_bytes(http.get(f"/api/runs/{sink.run_ids[0]}/probes/20").content)
        expected = Frame.from_probe(sink.run_ids[0], attached_probe(20))
        assert frame.header["run_id"] == sink.run_ids[0]
        assert all(np.array_equal(frame.arrays[k], expected.arrays[k]) for k in expected.arrays)


FORGETFUL = """
import sys
sys.path.insert(0, {root!r})
from gatescope.transport import HttpSink
sink = HttpSink({url!r})
sink.open({attach!r})
sink.step({row!r})
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "status", "error"),
    [("pass", "completed", None), ("1 / 0", "failed", "ZeroDivisionError: division by zero")],
)
def test_a_script_that_forgets_close_ends_its_run_at_exit(
    tmp_path: Path, ending: str, status: str, error: str | None
) -> None:
    with real_server(tmp_path, free_port()) as url, httpx.Client(base_url=url) as http:
        script = FORGETFUL.format(root=str(REPO_ROOT), url=url, attach=attach(), row=row(1), ending=ending)
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == (0 if ending == "pass" else 1), done.stderr
        [run] = http.get("/api/runs").json()["items"]
        assert (run["status"], run["error"]) == (status, error)
        assert [m["step"] for m in http.get(f"/api/runs/{run['id']}/metrics").json()] == [1]

"""Streaming benchmark: a real server on loopback, real worker processes, real websocket viewers.

    python -m scripts.bench_stream                      # starts `python -m app` on a free port
    python -m scripts.bench_stream --url http://127.0.0.1:8000 --cycles 8

What it measures, printed as one table:
  latency     step -> viewer latency, median and p95, with 1 and with 20 viewers: every step
              carries "time", the wall clock (time.time()) at which the worker finished the step;
              a viewer subtracts it from its own clock as the message arrives (same machine, same
              clock). So this is worker -> pipe -> manager -> hub -> websocket -> viewer, whole.
  probes      probe frames per second delivered to each of 1 and of 20 viewers, for a run that
              probes every step (a viewer gets only the newest frame at each send).
  cost        what 20 viewers cost the training, side by side in ONE run: it trains while 20
              viewers come and go, `--cycles` times `--phase` seconds without them, then as long
              with them (counted from when all 20 have their snapshot to when they start leaving).
              One more viewer watches all along and records each step's worker time and duration
              (StepMetrics.seconds, measured in the worker). Training steps per second in a phase
              = its steps / the sum of their durations; each cycle gives a ratio (with / without),
              and the median ratio is the cost. Alternating within one run cancels what differs
              between runs and most of a drift in the machine's load. (Two runs at the same moment
              would not show it: the server's fan-out takes its CPU from both workers alike.)
              It also reports the CPU each process used per second of each kind of phase: the
              viewers' (this process), and when the benchmark starts the server itself, the
              server's and the worker's (from /proc), and the steps per CPU second of the worker:
              the fan-out's cost in CPU time, whether the worker got less CPU, and whether its
              steps took more of it, figures that hold however busy the machine is otherwise
              (on a machine shared with other jobs the steps/s ratios swing with their load).
The viewers stand in for browsers on other machines: all of them share one asyncio event loop
in this process (a websocket each, no decoding beyond JSON, frames only counted). The latency
runs come first, at normal priority, so that the viewers keep up with what they are sent; then
this process lowers its priority (nice 19) for the cost run, so that the viewers' own work takes
as little as possible of the two cores from the server and the worker: what remains is what
serving them costs. Runs are small LSTMs on the adding problem; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from gatescope import Client
from tests.live_server import serve

STEPS_RUN: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 32,
    "task": {"name": "adding", "seq_len": 20},
    "batch_size": 16,
    "steps": 3000,
    "probe_every": 100,
}
PROBE_RUN: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 64,
    "task": {"name": "adding", "seq_len": 50},
    "batch_size": 16,
    "steps": 600,
    "probe_every": 1,
}
COST_RUN: dict[str, Any] = {**STEPS_RUN, "steps": 100_000, "probe_every": 1000}  # stopped when done
CROWD = 20


class Viewer:
    """One websocket viewer of a run: step latencies (ms), steps (worker time, seconds), frames."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.steps: list[tuple[float, float]] = []
        self.probe_times: list[float] = []
        self.probe_bytes: list[int] = []
        self.ended = False
        self.ws: ClientConnection | None = None

    async def watch(self, url: str, joined: asyncio.Semaphore) -> None:
        async with connect(url, compression=None, max_size=None, open_timeout=60, proxy=None) as ws:
            self.ws = ws
            async for message in ws:
                now = time.time()
                if isinstance(message, bytes):
                    self.probe_times.append(now)
                    self.probe_bytes.append(len(message))
                    continue
                data = orjson.loads(message)
                kind = data["type"]
                if kind == "snapshot":
                    joined.release()
                elif kind == "step":
                    self.latencies += [1000 * (now - s["time"]) for s in data["steps"]]
                    self.steps += [(s["time"], s["seconds"]) for s in data["steps"]]
                elif kind == "end":
                    self.ended = True


class Crowd:
    """n viewers of one run, all on the benchmark's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str, n: int) -> None:
        self.loop = loop
        self.viewers = [Viewer() for _ in range(n)]
        joined = threading.Event()

        async def main() -> None:
            snapshots = asyncio.Semaphore(0)
            tasks = [asyncio.create_task(v.watch(url, snapshots)) for v in self.viewers]
            for _ in self.viewers:
                await asyncio.wait_for(snapshots.acquire(), 60)
            joined.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 900)

        self.done = asyncio.run_coroutine_threadsafe(main(), loop)
        if not joined.wait(60):
            raise TimeoutError(f"{n} viewers did not all have their snapshot within 60 s")

    def leave(self) -> None:
        """Close every viewer's socket, and wait until they are gone."""

        async def close() -> None:
            await asyncio.gather(*(v.ws.close() for v in self.viewers if v.ws is not None))

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(60)
        self.done.result(60)


def watch(
    gs: Client, loop: asyncio.AbstractEventLoop, config: dict[str, Any], n: int
) -> tuple[dict[str, Any], list[Viewer]]:
    """Create a run with n viewers; they connect as it starts and stay until its end."""
    run = gs.create_run(config)
    crowd = Crowd(loop, gs.ws_url(run["id"]), n)
    final = gs.wait(run["id"], timeout=900)
    crowd.done.result(60)
    assert all(v.ended for v in crowd.viewers), "a viewer did not get the end message"
    return final, crowd.viewers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wall_seconds(run: dict[str, Any]) -> float:
    return (
        datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
    ).total_seconds()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds process `pid` has used so far (Linux /proc; 0 without a pid)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(gs: Client, loop: asyncio.AbstractEventLoop) -> list[tuple[str, str]]:
    """Step latency with 1 and with 20 viewers, and probe frames per second to each."""
    rows: list[tuple[str, str]] = []
    for n in (1, CROWD):
        _, viewers = watch(gs, loop, STEPS_RUN, n)
        ms = [x for v in viewers for x in v.latencies]
        rows.append(
            (
                f"step -> viewer latency, {n} viewer{'s' if n > 1 else ''}, median / p95",
                f"{statistics.median(ms):.1f} / {percentile(ms, 0.95):.1f} ms ({len(ms)} steps)",
            )
        )
    for n in (1, CROWD):
        run, viewers = watch(gs, loop, PROBE_RUN, n)
        made = len(gs.probes(run["id"])) / wall_seconds(run)
        rate = [len(v.probe_times) / wall_seconds(run) for v in viewers]
        kb = statistics.mean(b for v in viewers for b in v.probe_bytes) / 1000
        rows.append(
            (
                f"probe frames/s to each of {n} viewer{'s' if n > 1 else ''}",
                f"{statistics.mean(rate):.1f} (min {min(rate):.1f}; "
                f"the run made {made:.0f}/s; {kb:.0f} kB each)",
            )
        )
    return rows


def worker_pid(server_pid: int | None) -> int | None:
    """The server's child process that trains (multiprocessing "spawn"), if there is one now."""
    if server_pid is None:
        return None
    for task in Path(f"/proc/{server_pid}/task").iterdir():  # the thread that started it is its parent
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    return None


class Window:
    """A phase of the cost run: its wall-clock span and the CPU each process used in it."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start = time.time()
        self.cpu0 = self.cpu()

    def cpu(self) -> dict[str, float]:
        return {"viewers": time.process_time()} | {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def close(self) -> None:
        self.end = time.time()
        self.share = {k: (v - self.cpu0[k]) / (self.end - self.start) for k, v in self.cpu().items()}


def count(steps: list[tuple[float, float]], window: Window) -> int:
    return sum(1 for t, _ in steps if window.start <= t < window.end)


def rate(steps: list[tuple[float, float]], window: Window) -> float:
    """Training steps per second of the steps done in the window (by their own durations)."""
    seconds = [d for t, d in steps if window.start <= t < window.end]
    return len(seconds) / sum(seconds)


def cost(
    gs: Client, loop: asyncio.AbstractEventLoop, cycles: int, phase: float, pid: int | None
) -> list[tuple[str, str]]:
    """One run, alternately without and with 20 viewers; the steps/s ratio of each cycle."""
    run = gs.create_run(COST_RUN)
    monitor = Crowd(loop, gs.ws_url(run["id"]), 1)
    while gs.get_run(run["id"])["step"] < 200:  # past the start-up
        time.sleep(0.1)
    windows: dict[bool, list[Window]] = {False: [], True: []}
    pids = {"server": pid, "worker": worker_pid(pid)} if pid is not None else {}

    def measure(crowded: bool) -> None:
        window = Window(pids)
        time.sleep(phase)
        window.close()
        windows[crowded].append(window)

    for _ in range(cycles):
        time.sleep(0.5)  # the viewers that left are gone
        measure(False)
        crowd = Crowd(loop, gs.ws_url(run["id"]), CROWD)
        measure(True)
        crowd.leave()
    gs.stop(run["id"])
    gs.wait(run["id"], timeout=60)
    monitor.done.result(60)
    steps = monitor.viewers[0].steps
    ratios = [
        rate(steps, on) / rate(steps, off) for off, on in zip(windows[False], windows[True], strict=True)
    ]
    rows = [
        (
            "training steps/s without viewers (each cycle)",
            ", ".join(f"{rate(steps, w):.0f}" for w in windows[False]),
        ),
        (f"steps/s ratio {CROWD} / 0 viewers (each cycle)", ", ".join(f"{r:.3f}" for r in ratios)),
        (
            f"training cost of {CROWD} viewers (median of {cycles} cycles)",
            f"{100 * (1 - statistics.median(ratios)):.1f} %",
        ),
    ]
    if pids.get("worker") is not None:  # steps per CPU second of the worker: rate / CPU share
        per_cpu = [
            statistics.median(count(steps, w) / (w.share["worker"] * (w.end - w.start)) for w in windows[k])
            for k in (False, True)
        ]
        rows.append(
            (
                "training steps per worker CPU second, 0 / 20 viewers (median)",
                f"{per_cpu[0]:.0f} / {per_cpu[1]:.0f} (ratio {per_cpu[1] / per_cpu[0]:.3f})",
            )
        )
    for name in ("viewers", *pids):
        share = [statistics.median(w.share[name] for w in windows[k]) for k in (False, True)]
        rows.append(
            (
                f"{name} process CPU, 0 / 20 viewers (median)",
                f"{100 * share[0]:.1f} / {100 * share[1]:.1f} % of a core",
            )
        )
    return rows


def bench(
    url: str, cycles: int, phase: float, server_pid: int | None = None, latency_too: bool = True
) -> list[tuple[str, str]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with Client(url) as gs:
            watch(gs, loop, {**STEPS_RUN, "steps": 200}, 1)  # warm up: imports, caches
            rows = latency(gs, loop) if latency_too else []
            os.nice(19)  # from here the viewers yield the CPU to the server and its worker
            rows += cost(gs, loop, cycles, phase, server_pid)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--url", help="a running Gatescope server (default: start one on loopback)")
    parser.add_argument("--cycles", type=int, default=8, help="phases without and with 20 viewers")
    parser.add_argument("--phase", type=float, default=3.0, help="seconds of each phase")
    parser.add_argument("--cost-only", action="store_true", help="skip the latency and probe runs")
    args = parser.parse_args()
    if args.url:
        rows = bench(args.url, args.cycles, args.phase, latency_too=not args.cost_only)
    else:
        with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), GATESCOPE_MAX_RUNS="1") as server:
            rows = bench(server.url, args.cycles, args.phase, server.process.pid, not args.cost_only)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Streaming benchmark: a real server on loopback, real worker processes, real websocket viewers.

    python -m scripts.bench_stream                      # starts `python -m app` on a free port
    python -m scripts.bench_stream --url http://127.0.0.1:8000

Three measurements, printed as one table:
  latency     step-to-viewer latency, median and p95: every step message carries "time", the
              wall clock (time.time()) at which the worker finished the step; the viewer
              subtracts it from its own clock at receipt (same machine, same clock). So this is
              worker -> pipe -> storage batch (<= 0.1 s) -> hub -> websocket -> client.
  probes      probe frames per second delivered to each of 1 and of 20 viewers, for a run that
              probes every step (the hub sends each viewer only the newest frame, at most ~20/s).
  throughput  training steps per second with 0 and with 20 viewers: steps / the sum of the steps'
              own wall times (StepMetrics.seconds, measured in the worker), so it shows what the
              viewers cost the training process, and the run's wall time from start to finish.
              The 0-viewer runs come before and after the 20-viewer run; their mean is reported.
The viewers stand in for browsers on other machines: this process lowers its own priority
(nice 19) once the server runs, so the clients' own decoding does not take the two cores from
the server and the worker; what remains is what serving 20 viewers costs.
Runs are small LSTMs on the adding problem; every request loop is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from app.client import GatescopeClient
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


class Viewer(threading.Thread):
    """Streams one run to its end, recording step latencies and probe arrivals."""

    def __init__(self, gs: GatescopeClient, run_id: str) -> None:
        super().__init__(daemon=True)
        self.gs, self.run_id = gs, run_id
        self.latencies: list[float] = []
        self.probe_times: list[float] = []
        self.ended = False
        self.connected = threading.Event()

    def run(self) -> None:
        for message in self.gs.stream(self.run_id):
            now = time.time()
            kind = message["type"]
            if kind == "snapshot":
                self.connected.set()
            elif kind == "step":
                self.latencies += [now - s["time"] for s in message["steps"] if "time" in s]
            elif kind == "probe":
                self.probe_times.append(now)
            elif kind == "end":
                self.ended = True


def watch(gs: GatescopeClient, config: dict[str, Any], viewers: int) -> tuple[dict[str, Any], list[Viewer]]:
    """Start a run with `viewers` viewers connected before it trains; wait for it to end."""
    run = gs.create_run(config)
    threads = [Viewer(gs, run["id"]) for _ in range(viewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.connected.wait(30)
    final = gs.wait(run["id"], timeout=600)
    for t in threads:
        t.join(60)
    assert all(t.ended for t in threads), "a viewer did not get the end message"
    return final, threads


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seconds(run: dict[str, Any]) -> float:
    started, finished = run["started_at"], run["finished_at"]
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def throughput(gs: GatescopeClient, run: dict[str, Any]) -> float:
    rows = gs.metrics(run["id"])
    return len(rows) / float(sum(r["seconds"] for r in rows))


def bench(url: str) -> list[tuple[str, str]]:
    os.nice(19)  # the viewers yield the CPU to the server and its workers (see the docstring)
    rows: list[tuple[str, str]] = []
    with GatescopeClient(url) as gs:
        run, (viewer,) = watch(gs, STEPS_RUN, 1)
        ms = [1000 * x for x in viewer.latencies]
        rows.append(("step -> viewer latency, median", f"{statistics.median(ms):.1f} ms ({len(ms)} steps)"))
        rows.append(("step -> viewer latency, p95", f"{percentile(ms, 0.95):.1f} ms"))

        for n in (1, 20):
            run, viewers = watch(gs, PROBE_RUN, n)
            produced = len(gs.probes(run["id"]))
            rate = [len(v.probe_times) / seconds(run) for v in viewers]
            made = produced / seconds(run)
            name = f"probe frames/s to each of {n} viewer{'s' if n > 1 else ''}"
            mean = statistics.mean(rate)
            rows.append((name, f"{mean:.1f} (min {min(rate):.1f}; the run made {made:.0f}/s)"))

        before, _ = watch(gs, STEPS_RUN, 0)
        run, viewers = watch(gs, STEPS_RUN, 20)
        after, _ = watch(gs, STEPS_RUN, 0)
        crowd = throughput(gs, run)
        alone = (throughput(gs, before) + throughput(gs, after)) / 2
        alone_wall = (seconds(before) + seconds(after)) / 2
        ms20 = [1000 * x for v in viewers for x in v.latencies]
        rows.append(("training steps/s, 0 viewers", f"{alone:.0f} (run wall time {alone_wall:.1f} s)"))
        rows.append(("training steps/s, 20 viewers", f"{crowd:.0f} (run wall time {seconds(run):.1f} s)"))
        rows.append(("training cost of 20 viewers", f"{100 * (1 - crowd / alone):.1f} % of throughput"))
        crowd_ms = f"{statistics.median(ms20):.1f} / {percentile(ms20, 0.95):.1f} ms"
        rows.append(("latency with 20 viewers, median / p95", crowd_ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Gatescope server (default: start one on loopback)")
    args = parser.parse_args()
    if args.url:
        rows = bench(args.url)
    else:
        with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp)) as server:
            rows = bench(server.url)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Executor benchmark: a sweep of small runs through a RunManager, local processes vs Ray, side by side.

    python -m scripts.bench_ray                  # 48 runs of 500 steps each way
    python -m scripts.bench_ray --runs 8 --steps 200

Local: RunManager with the local executor, max_runs 2 (this machine's cores). Ray: the same
manager on the Ray executor, on a cluster this script starts with `ray start` (a head and a second
node on loopback, 1 CPU each, so MAX_RUNS is 2 there too), up during both, and always stops. Both
get the same runs (small LSTMs on the adding problem), all submitted at once per round; the manager
queues them. Measured from
what the manager publishes (app.services.messages), in this process:

  wall         first submit -> last run's end, summed over the rounds
  steps/s      per run, its steps / (its last step's time - its first's): the worker's wall clock
               ("time" in each step); median over the runs
  step         a step's own duration as the worker measured it (StepMetrics.seconds); median
  start        per run, its 'running' status -> its first step (the worker or actor starting,
               importing torch, building the trainer); median
  handoff      per run that waited for a slot, the end of the run before it -> its first step: how
               long a slot trains nothing between two runs, the per-run overhead; median
  latency      per step, its "time" -> the moment the manager published it (what viewers get next):
               median and p95 over every step of every run

and the Ray path's steps/s against the local one (goal: no worse than 5 %) and its per-run
overhead. The machine may be shared (a CI): the runs go in alternating rounds (local, Ray, local,
...), so that a change in its load falls on both alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from app.services.executors import Executor
from app.services.executors.local import LocalExecutor
from app.services.manager import RunManager
from app.services.messages import EndMessage, Message, StatusMessage, StepMessage
from app.services.schemas import RunCreate
from app.services.storage import Storage

RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def run_config(steps: int, seed: int) -> RunCreate:
    return RunCreate.model_validate(
        {
            "cell": "lstm",
            "hidden_size": 16,
            "task": {"name": "adding", "seq_len": 20},
            "batch_size": 16,
            "steps": steps,
            "probe_every": max(1, steps // 5),
            "seed": seed,
        }
    )


@dataclass
class Log:
    """What the manager published, with the moment it did (time.time(), the workers' clock)."""

    running: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    steps: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, run_id: str, message: Message) -> None:
        now = time.time()
        with self.lock:
            if isinstance(message, StepMessage):
                self.steps[run_id].append((float(message.metrics["time"]), now))
            elif isinstance(message, StatusMessage) and message.run.status == "running":
                self.running.setdefault(run_id, now)
            elif isinstance(message, EndMessage):
                self.ended[run_id] = now


@dataclass
class Samples:
    """Per-run and per-step figures of one executor's runs (every round's)."""

    wall: float = 0.0
    rates: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # StepMetrics.seconds: a step's own duration
    starts: list[float] = field(default_factory=list)
    handoffs: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    trained: list[float] = field(default_factory=list)


def sweep(executor: Executor, runs: int, steps: int, data: Path, into: Samples) -> None:
    """Submit the runs at once, wait for all to end; add their figures to `into`."""
    log = Log()
    storage = Storage(data)
    slots = executor.capacity()
    manager = RunManager(storage, slots, log, executor=executor)
    manager.start()
    try:
        started = time.time()
        records = manager.submit_group([run_config(steps, seed) for seed in range(runs)])
        deadline = time.monotonic() + 60 * runs
        while len(log.ended) < runs:
            assert time.monotonic() < deadline, f"{runs - len(log.ended)} runs did not end"
            time.sleep(0.1)
        into.wall += max(log.ended.values()) - started
        statuses = {(storage.get_run(r.id) or r).status for r in records}
        assert statuses == {"completed"}, statuses
        into.seconds.extend(m["seconds"] for r in records for m in storage.metrics(r.id))
    finally:
        manager.shutdown()
        storage.close()
    add_figures(log, [r.id for r in records], slots, into)


def add_figures(log: Log, ids: list[str], slots: int, into: Samples) -> None:
    for run_id in ids:
        steps = log.steps[run_id]
        span = steps[-1][0] - steps[0][0]
        into.rates.append((len(steps) - 1) / span)
        into.trained.append(span)
        into.starts.append(steps[0][0] - log.running[run_id])
        into.latencies.extend(published - done for done, published in steps)
    by_start = sorted(ids, key=lambda r: log.running[r])
    for run_id in by_start[slots:]:  # those that waited for a slot
        before = max(t for t in log.ended.values() if t <= log.running[run_id] + 1e-3)
        into.handoffs.append(log.steps[run_id][0][0] - before)


def summary(x: Samples) -> dict[str, float]:
    latencies = sorted(x.latencies)
    return {
        "wall": x.wall,
        "steps_per_s": statistics.median(x.rates),
        "step_ms": 1000 * statistics.median(x.seconds),
        "start": statistics.median(x.starts),
        "handoff": statistics.median(x.handoffs) if x.handoffs else float("nan"),
        "latency_median": 1000 * statistics.median(latencies),
        "latency_p95": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "trained": statistics.median(x.trained),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cluster(temp: str) -> str:
    port = free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", f"--object-store-memory={200 * 2**20}"]
    head = [
        "--head",
        f"--port={port}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    for args in (head, [f"--address=127.0.0.1:{port}"]):
        subprocess.run([RAY, "start", *args, *common], env=ENV, check=True, capture_output=True, timeout=120)
    return f"127.0.0.1:{port}"


def table(local: dict[str, float], on_ray: dict[str, float], runs: int, steps: int, rounds: int) -> str:
    rows = [
        ("wall, all rounds (s)", "wall"),
        ("steps/s per run (wall clock), median", "steps_per_s"),
        ("a step's own duration (ms), median", "step_ms"),
        ("start: running -> first step (s), median", "start"),
        ("handoff: end -> next run's first step (s), median", "handoff"),
        ("step -> publish latency (ms), median", "latency_median"),
        ("step -> publish latency (ms), p95", "latency_p95"),
        ("a run's training: first -> last step (s), median", "trained"),
    ]
    head = f"{runs} runs x {steps} steps each way, in {rounds} alternating rounds, 2 slots each"
    out = [head, f"{'':52}{'local':>10}{'ray':>10}"]
    out += [f"{label:52}{local[k]:10.3f}{on_ray[k]:10.3f}" for label, k in rows]
    rate = on_ray["steps_per_s"] / local["steps_per_s"] - 1
    out.append(f"Ray steps/s per run against local: {rate:+.1%} (goal: no worse than -5 %)")
    extra = on_ray["handoff"] - local["handoff"]
    out.append(
        f"per-run overhead (a slot's handoff, end -> next first step): local {local['handoff']:.2f} s, "
        f"ray {on_ray['handoff']:.2f} s ({extra:+.2f} s per run on Ray)"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=48)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4, help="alternate local and Ray this many times")
    args = parser.parse_args()
    from app.services.executors.ray_actor import RayExecutor

    local, on_ray = Samples(), Samples()
    per_round = max(1, args.runs // args.rounds)
    temp = tempfile.mkdtemp(prefix="gsb", dir="/tmp")
    with tempfile.TemporaryDirectory() as data:
        try:
            address = start_cluster(temp)  # up for both, so that both run beside its idle processes
            for i in range(args.rounds):
                sweep(LocalExecutor(2), per_round, args.steps, Path(data) / f"local{i}", local)
                executor = RayExecutor(address, None)
                assert executor.error is None, executor.error
                sweep(executor, per_round, args.steps, Path(data) / f"ray{i}", on_ray)
        finally:
            subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=120)
            shutil.rmtree(temp, ignore_errors=True)
    print(table(summary(local), summary(on_ray), per_round * args.rounds, args.steps, args.rounds))


if __name__ == "__main__":
    main()

"""What `gatescope.watch` costs a person's own training loop, and how close the probe budget stays.

    python -m scripts.bench_watch                     # 5 rounds x 20 steps per variant, 2 torch threads
    python -m scripts.bench_watch --http              # + a variant posting to a live local server
    python -m scripts.bench_watch --rounds 9 --block 30 --threads 1

The loop is the issue's (issue 9): a model of the script's own (nn.LSTM, 2 layers, H=256,
batch_first, a linear head), batch 32, T=100, 64 input features, cross-entropy over every step,
Adam, clip_grad_norm_ 1.0, on a fixed pool of random batches. One process trains one copy of
the model per variant, alternating blocks of `--block` steps, so drift of the machine hits every
variant alike:

  plain        no watch;
  metrics      watch, every-step metrics only (every larger than the run: its one probe, at
               step 1, falls in the warm-up);
  probe/10     watch, a live-batch probe every 10 steps;
  probe/1      watch, a probe every step;
  budget/0.05  watch with probe_budget=0.05 (and every=1: the budget alone picks the steps);
  http/10      (--http) probe/10 through a real HttpSink to a live local server (started here,
               a subprocess on this machine: it competes for the same cores, as it would).

All but http/10 use a sink that counts and discards (no encoding, no transport), so they show the
cost of watching itself. Itemization is watch's default ("auto": the first probe, then within 1 %
of training time). The table shows each variant's median ms per step over its blocks, and its
overhead: the median over rounds of (its block time / plain's block time in the same round) - 1,
by wall time and by this process's CPU time (time.process_time: all its threads, the sink's
included); on a machine shared with other work the CPU figures hold better. With --http, the
server's own CPU per step is read from /proc.
For budget/0.05 the probe share is measured against metrics the same way (a budgeted watch is
the metrics watch plus probes), and then once more with that watch training alone (`--alone`
steps, each timed: probe steps against the median step without a probe). "own" is each watch's
own accounting (its ProbeBudget's probe seconds / training seconds, warm-up included), which is
what the budget steers by.

What this is not: a test. The figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import gatescope
from app.core.probes import ProbeFrame

INPUT, HIDDEN, LAYERS, CLASSES = 64, 256, 2, 10
BATCH, T, POOL = 32, 100, 8
WARMUP = 3  # steps each variant trains before the clock starts (watch's first probe among them)


class Tagger(nn.Module):
    """The script's own model: a 2-layer LSTM and a linear head over every step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(INPUT, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        logits: Tensor = self.head(out)
        return logits


@dataclass
class CountingSink:
    """A Sink (gatescope.sink) that counts what it is given and keeps nothing."""

    steps: int = 0
    frames: int = 0
    itemized: int = 0
    stop_requested: bool = False
    dropped_frames: int = 0

    def open(self, attach: dict[str, Any]) -> None:
        pass

    def step(self, row: dict[str, Any]) -> None:
        self.steps += 1

    def frame(self, module: int, frame: ProbeFrame) -> None:
        self.frames += 1
        self.itemized += frame.itemized is not None

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        pass


@dataclass
class Variant:
    name: str
    step: Callable[[], None]
    watch: gatescope.Watch | None = None
    sink: CountingSink | None = None
    seconds: list[float] = field(default_factory=list)  # wall time per block
    cpu: list[float] = field(default_factory=list)  # this process's CPU time per block (all threads)


def batches(seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    pool = [
        (torch.randn(BATCH, T, INPUT, generator=g), torch.randint(CLASSES, (BATCH, T), generator=g))
        for _ in range(POOL)
    ]
    return itertools.cycle(pool)


def training(model: nn.Module, watch: gatescope.Watch | None) -> Callable[[], None]:
    """The issue's loop, one step per call."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    data = batches(0)

    def step() -> None:
        x, y = next(data)
        loss = criterion(model(x).reshape(-1, CLASSES), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if watch is not None:
            watch.step(loss=loss)

    return step


def variants(base: Tagger, server: str | None, stack: ExitStack) -> list[Variant]:
    out = [Variant("plain", training(copy.deepcopy(base), None))]
    settings: list[tuple[str, dict[str, Any]]] = [
        ("metrics", {"every": 10**9}),
        ("probe/10", {"every": 10}),
        ("probe/1", {"every": 1}),
        ("budget/0.05", {"every": 1, "probe_budget": 0.05}),
    ]
    for name, kwargs in settings:
        model, sink = copy.deepcopy(base), CountingSink()
        watch = stack.enter_context(gatescope.watch(model, name=f"bench-{name}", sink=sink, **kwargs))
        out.append(Variant(name, training(model, watch), watch, sink))
    if server is not None:
        model = copy.deepcopy(base)
        watch = stack.enter_context(gatescope.watch(model, server=server, every=10, name="bench-http"))
        out.append(Variant("http/10", training(model, watch), watch))
    return out


def measure(runs: list[Variant], rounds: int, block: int) -> None:
    for v in runs:
        for _ in range(WARMUP):
            v.step()
    for _ in range(rounds):
        for v in runs:
            if v.watch is not None:
                # a watch counts the wall time between step() calls as training; the other
                # variants' blocks are not, so its clock restarts with its own block
                v.watch._since = time.perf_counter()
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(block):
                v.step()
            v.seconds.append(time.perf_counter() - started)
            v.cpu.append(time.process_time() - cpu)


def overhead(v: Variant, against: Variant, clock: str = "wall") -> float:
    """Median over rounds of (v's block time / the other's in the same round) - 1."""
    mine, theirs = (v.seconds, against.seconds) if clock == "wall" else (v.cpu, against.cpu)
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True)) - 1


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(runs: list[Variant], args: argparse.Namespace, server_cpu: float | None) -> None:
    by = {v.name: v for v in runs}
    plain, block = by["plain"], args.block
    print(
        f"nn.LSTM({INPUT}, {HIDDEN}, num_layers={LAYERS}), batch {BATCH}, T={T}, Adam, clip_grad_norm_; "
        f"{args.threads} torch threads; {args.rounds} rounds x {block} steps per variant, alternating; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    head = ("variant", "wall ms", "wall +", "CPU ms", "CPU +", "frames", "itemized", "own")
    print("{:<12} {:>8} {:>7} {:>7} {:>7} {:>6} {:>8} {:>6}".format(*head))
    for v in runs:
        wall = "" if v is plain else f"{100 * overhead(v, plain):6.1f}%"
        cpu = "" if v is plain else f"{100 * overhead(v, plain, 'cpu'):6.1f}%"
        frames = f"{v.sink.frames:>6} {v.sink.itemized:>8}" if v.sink else f"{'':>6} {'':>8}"
        own = f"{100 * v.watch.budget.share:5.1f}%" if v.watch else ""  # the watch's own accounting
        ms_wall, ms_cpu = (1000 * statistics.median(x) / block for x in (v.seconds, v.cpu))
        print(f"{v.name:<12} {ms_wall:8.1f} {wall:>7} {ms_cpu:7.1f} {cpu:>7} {frames} {own:>6}")
    budgeted, metrics = by["budget/0.05"], by["metrics"]
    assert budgeted.watch is not None
    print(
        f"budget/0.05: probing measured at {100 * overhead(budgeted, metrics):.1f} % (wall) / "
        f"{100 * overhead(budgeted, metrics, 'cpu'):.1f} % (CPU) of training time against metrics; "
        f"the watch's own accounting {100 * budgeted.watch.budget.share:.1f} %; budget 5.0 %"
    )
    if "http/10" in by:
        http, probed = by["http/10"], by["probe/10"]
        dropped = http.watch.dropped_frames if http.watch else 0
        print(
            f"http/10 against probe/10 (the transport, this process): {100 * overhead(http, probed):+.1f} % "
            f"wall, {100 * overhead(http, probed, 'cpu'):+.1f} % CPU; {dropped} frames dropped"
        )
        if server_cpu is not None:
            per_step = 1000 * server_cpu / (len(http.seconds) * block)
            print(f"http/10: the server (its own process) used {per_step:.1f} ms CPU per step")


def budget_alone(base: Tagger, steps: int) -> None:
    """One budgeted watch training by itself (no alternation): each step timed, probe steps told
    apart by the frames they made. Probing's measured share = the steps' total time over
    `steps` x the median time of a step without a probe, minus 1."""
    model, sink = copy.deepcopy(base), CountingSink()
    with gatescope.watch(model, every=1, probe_budget=0.05, name="bench-alone", sink=sink) as watch:
        step = training(model, watch)
        for _ in range(WARMUP):
            step()
        times: list[tuple[float, bool]] = []
        for _ in range(steps):
            frames, started = sink.frames, time.perf_counter()
            step()
            times.append((time.perf_counter() - started, sink.frames > frames))
    plain = statistics.median(t for t, probed in times if not probed)
    probes = [t for t, probed in times if probed]
    share = sum(t for t, _ in times) / (plain * len(times)) - 1
    print(
        f"budget/0.05 alone, {steps} steps: {len(probes)} probes, a probe step "
        f"{1000 * statistics.median(probes):.1f} ms vs {1000 * plain:.1f} ms without; probing measured at "
        f"{100 * share:.1f} % of training time, the watch's own accounting {100 * watch.budget.share:.1f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=20, help="steps per block (a multiple of 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--http", action="store_true", help="add http/10: a live local server")
    parser.add_argument("--alone", type=int, default=150, help="steps of budget/0.05 by itself (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = Tagger()
    with ExitStack() as stack:
        server, pid = None, None
        if args.http:
            from tests.live_server import serve  # the benchmark's own server, as the tests start one

            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-watch-")))
            live = stack.enter_context(serve(data))
            server, pid = live.url, live.process.pid
        runs = variants(base, server, stack)
        before = process_cpu(pid) if pid is not None else 0.0
        measure(runs, args.rounds, args.block)
        for v in runs:  # the http watch delivers what it has before the server's CPU is read
            if v.watch is not None:
                v.watch.close()
        server_cpu = process_cpu(pid) - before if pid is not None else None
        report(runs, args, server_cpu)
    if args.alone:
        budget_alone(base, args.alone)


if __name__ == "__main__":
    main()

"""Throughput of the engine against plain torch.nn training of the same model, in one process.

    python -m scripts.bench_engine                       # LSTM, batch 32, T=200, H=128, Adam
    python -m scripts.bench_engine --task char_lm --rounds 3
    python -m scripts.bench_engine --budget 0.02

Three loops train the same network on the same task, alternating in short blocks so that any
drift of the machine hits all of them alike:
  plain      forward, loss, backward, clip, Adam step: what a person writes with torch.nn;
  probe/10   the engine: per-step metrics on every step plus a probe every 10 steps;
  probe/1    the engine with a probe on every step;
  metrics    the engine without probes (per-step metrics only);
  budget/b   the engine with probe_budget=b (default 0.05): it times its steps and probes and
             picks the probe steps and when to itemize.
It prints the median steps per second of each and the overhead against plain; for budget/b, the
probe share measured against metrics and the engine's own accounting (ProbeBudget.share). CPU
time per block (time.process_time) is shown too, paired by round: on a machine shared with other
work it holds far better than wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from app.core.engine import StepMetrics, TrainConfig, Trainer

TASK_PARAMS: dict[str, dict[str, object]] = {
    "adding": {"seq_len": 200},
    "char_lm": {"corpus": "shakespeare", "seq_len": 200},
}


def plain_loop(config: TrainConfig) -> Callable[[], None]:
    """The textbook loop on a Trainer's network, task and data, bypassing all instrumentation."""
    trainer = Trainer(config)
    net, task = trainer.net, trainer.task
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)

    def step() -> None:
        batch = task.sample(config.batch_size, trainer.data)
        optimizer.zero_grad()
        y, _ = net(batch.inputs)
        task.loss(y, batch).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip_threshold)
        optimizer.step()

    return step


def engine_loop(config: TrainConfig) -> Callable[[], None]:
    trainer = Trainer(config)

    def step() -> None:
        trainer.train_step()
        if trainer.step % config.probe_every == 0:
            trainer.probe()

    return step


def events_loop(config: TrainConfig) -> tuple[Callable[[], None], Trainer]:
    """The engine as a run uses it (Trainer.events): one training step per call, and the probes
    its schedule or budget asks for after it (they fall in the next call)."""
    trainer = Trainer(config)
    events = trainer.events()

    def step() -> None:
        for event in events:
            if isinstance(event, StepMetrics):
                return

    return step, trainer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=sorted(TASK_PARAMS), default="adding")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=20, help="steps per block")
    parser.add_argument("--no-itemize", action="store_true", help="probes without the itemized matrix")
    parser.add_argument("--budget", type=float, default=0.05, help="probe_budget of the budget/b loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = TrainConfig(
        cell=args.cell, task=args.task, task_params=TASK_PARAMS[args.task], hidden_size=128, batch_size=32,
        optimizer="adam", lr=3e-3, steps=10**9, itemize=not args.no_itemize,
    )  # fmt: skip
    budgeted, budgeted_trainer = events_loop(
        TrainConfig(**{**base.__dict__, "probe_every": 0, "probe_budget": args.budget})
    )
    budget_name = f"budget/{args.budget:g}"
    loops = {
        "plain": plain_loop(base),
        "probe/10": engine_loop(TrainConfig(**{**base.__dict__, "probe_every": 10})),
        "probe/1": engine_loop(TrainConfig(**{**base.__dict__, "probe_every": 1})),
        "metrics": events_loop(TrainConfig(**{**base.__dict__, "probe_every": 0}))[0],
        budget_name: budgeted,
    }
    rates: dict[str, list[float]] = {name: [] for name in loops}
    cpu: dict[str, list[float]] = {name: [] for name in loops}  # this process's CPU s per block
    for loop in loops.values():  # warm up
        for _ in range(3):
            loop()
    for _ in range(args.rounds):
        for name, loop in loops.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(args.block):
                loop()
            rates[name].append(args.block / (time.perf_counter() - started))
            cpu[name].append(time.process_time() - cpu_started)
    plain = statistics.median(rates["plain"])
    itemized = "without" if args.no_itemize else "with"
    print(f"{args.cell}, {args.task}, batch 32, T=200, H=128, Adam, probes {itemized} the itemized matrix;")
    print(
        f"{args.rounds} rounds x {args.block} steps, load average {os.getloadavg()[0]:.2f}; median steps/s,"
    )
    print("and CPU time per step (the median over rounds of its ratio to plain's in the same round):")
    for name, r in rates.items():
        med, ms = statistics.median(r), 1000 * statistics.median(cpu[name]) / args.block
        print(
            f"  {name:<11} {med:6.2f} steps/s   overhead vs plain {100 * (1 - med / plain):5.1f} %   "
            f"CPU {ms:6.1f} ms/step, {100 * paired(cpu[name], cpu['plain']):5.1f} %"
        )
    wall = paired([1 / r for r in rates[budget_name]], [1 / r for r in rates["metrics"]])
    print(
        f"{budget_name}: probing measured at {100 * wall:.1f} % (wall) / "
        f"{100 * paired(cpu[budget_name], cpu['metrics']):.1f} % (CPU) of training time against metrics; "
        f"the engine's own accounting {100 * budgeted_trainer.budget.share:.1f} %"
    )


def paired(mine: list[float], theirs: list[float]) -> float:
    """The median over rounds of (my block's time / theirs in the same round) - 1."""
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True)) - 1


if __name__ == "__main__":
    main()

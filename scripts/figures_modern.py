"""The numbers issue 14 asks for: the seven cells side by side, at initialisation and in training.

    .venv/bin/python -m scripts.figures_modern [--parts 1,2,3] [--jobs 1] [--json]
    .venv/bin/python -m scripts.figures_modern --load figures.json   # the table of a saved --json

1. Gradient reach at initialisation, adding T=200:
       .venv/bin/python -m scripts.figures_modern --parts 1 [--reach-seeds 5]
   ||dl_T/dh_1|| / ||dl_T/dh_T|| of layer 0, from the probe of each cell's run at step 0
   (app.core.probes.probe on the run's own probe sample, `frame.grad_h_last[0]`; h_1 is the
   first timestep, T the last, the one step with a loss): hidden 64, one layer, default init,
   the median over seeds 0..4. Small means the last loss barely reaches the first step. The
   probe computes in float32, where anything below 1.4e-45 is 0; the float64 column is the same
   ratio by autograd through `net.unrolled` in double precision (the explicit graph).
2. Steps to solve, adding T=100 and copy (the catalog's defaults: delay 50, 10 symbols):
       .venv/bin/python -m scripts.figures_modern --parts 2 [--seeds 3] [--cap-adding 1200] \
           [--cap-copy 800] [--check-every 25] --jobs 1 [--runs runs.jsonl]
   Each cell trains with app.core.engine.Trainer on RunCreate's defaults (hidden 64, one layer,
   batch 64, Adam lr 3e-3, clip norm 1, default init), seeds 0..2. Every `check_every` steps the
   net is evaluated on a fixed held-out batch (its own generator, not the training stream):
   adding is solved when its mean squared error on 512 samples is below 0.01 (6% of the 1/6
   baseline of predicting 1); copy is solved when the accuracy on the recalled symbols alone (the
   last 10 steps, 256 samples: 2,560 symbols) is at least 0.99. The step count is the first check
   that passes; a run that has not passed by the cap is "not within <cap>" (its last held-out
   figure is kept). The median is over the seeds that solved, shown with how many did.
3. Throughput at T=1000 (forward + backward of one layer, B=16, H=64, one thread, median of 5
   runs of each path, the two alternated):
       .venv/bin/python -m scripts.figures_modern --parts 3
   minGRU and minLSTM: the parallel scan against the sequential loop (scripts.bench_minrnn);
   sLSTM has no parallel path (its gates read h_{t-1}): its training path (one recurrent matmul a
   step, hand-written backward) against the unrolled reference (scripts.bench_slstm).

Every part runs with one torch thread a process. A measurement, not a test: run it on a quiet
machine; the throughput in particular depends on the load.
What this is not: a sweep over hidden sizes, learning rates or inits (one setting, the defaults).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

import torch

from app.core.cells import CELLS, CellName
from app.core.engine import Trainer
from app.core.minrnn import MIN_CELLS, MinRNN
from app.core.slstm import SLSTM, unroll
from app.core.tasks.synthetic import CopyTask
from app.services.schemas import RunCreate, TaskSpec
from app.services.train_config import to_train_config
from scripts import bench_minrnn, bench_slstm

ADDING_SOLVED = 0.01  # held-out MSE below this
COPY_SOLVED = 0.99  # held-out accuracy on the recalled symbols at least this
EVAL_SEED = 0xE7A1  # the held-out batch's own stream
TASKS: dict[str, dict[str, int]] = {"adding": {"seq_len": 100}, "copy": {"seq_len": 50, "n_symbols": 10}}


def trainer(cell: CellName, task: str, params: dict[str, int], seed: int, steps: int) -> Trainer:
    """The Trainer of a run made of RunCreate's defaults, as the server would train it."""
    run = RunCreate(cell=cell, task=TaskSpec(name=task, **params), seed=seed, steps=steps, probe_every=0)  # type: ignore[arg-type]
    return Trainer(to_train_config(run, threads=1))


# ----------------------------------------------------------------------------------------------
# 1. gradient reach at initialisation


def reach(cell: CellName, seed: int, T: int = 200) -> tuple[float, float]:
    """||dl_T/dh_1|| / ||dl_T/dh_T|| of layer 0 at step 0 of an adding-T run: the probe's (float32,
    `frame.grad_h_last[0]`), and the same ratio in float64 by autograd through `net.unrolled`
    (every h_t its own tensor), which does not underflow where float32 reaches 0 below 1.4e-45."""
    tr = trainer(cell, "adding", {"seq_len": T}, seed, steps=1)
    frame = tr.probe(itemize=False, spectra=False)
    g = frame.grad_h_last[0]  # (T,) ||dl_T/dh_t||, t = 1..T
    net, sample = tr.net.double(), tr.probe_sample
    y, u = net.unrolled(sample.inputs.double())  # y (1, T, 1)
    hs = u.layers[0][0].h  # T x (1, H)
    loss_T = (y[0, frame.last_step, 0] - sample.targets[0, frame.last_step, 0].double()).pow(2)
    first, last = torch.autograd.grad(loss_T, [hs[0], hs[frame.last_step]])
    return float(g[0] / g[frame.last_step]), float(first.norm() / last.norm())


def part_reach(seeds: int) -> dict[str, Any]:
    rows = {}
    for cell in CELLS:
        probe32, exact64 = zip(*(reach(cell, s) for s in range(seeds)), strict=True)
        rows[cell] = {
            "median": statistics.median(probe32),
            "seeds": list(probe32),
            "median_float64": statistics.median(exact64),
            "seeds_float64": list(exact64),
        }
        print(
            f"[1] {cell}: {rows[cell]['median']:.3g} {rows[cell]['median_float64']:.3g}",
            file=sys.stderr,
            flush=True,
        )
    return {"task": "adding", "T": 200, "hidden": 64, "layers": 1, "init": "default", "cells": rows}


# ----------------------------------------------------------------------------------------------
# 2. steps to solve


def held_out(tr: Trainer, task: str, batch_size: int) -> float:
    """Adding: the MSE on a fixed held-out batch; copy: the accuracy on its recalled symbols."""
    batch = tr.task.sample(batch_size, torch.Generator().manual_seed(EVAL_SEED))
    with torch.no_grad():
        y, _ = tr.net(batch.inputs)  # (B, T, O)
    if task == "adding":
        return float((y[:, -1, 0] - batch.targets[:, -1, 0]).pow(2).mean())
    copy = cast(CopyTask, tr.task)
    start = copy.delay + copy.n_symbols  # the recall window: the last K steps
    hits = y[:, start:].argmax(dim=-1) == batch.targets[:, start:]  # (B, K)
    return float(hits.to(torch.float32).mean())


def solve(job: tuple[CellName, str, int, int, int]) -> dict[str, Any]:
    """Train one run until its held-out check passes or the cap: the step, or None."""
    cell, task, seed, cap, every = job
    torch.set_num_threads(1)
    started = time.perf_counter()
    tr = trainer(cell, task, TASKS[task], seed, steps=cap)
    size = 512 if task == "adding" else 256
    solved, figure, status = None, math.nan, "capped"
    while tr.step < cap:
        if tr.train_step() is None:
            status = "diverged"
            break
        if tr.step % every == 0 or tr.step == cap:
            figure = held_out(tr, task, size)
            if figure < ADDING_SOLVED if task == "adding" else figure >= COPY_SOLVED:
                solved, status = tr.step, "solved"
                break
    out = {"cell": cell, "task": task, "seed": seed, "cap": cap, "check_every": every}
    out |= {"steps": solved, "status": status}
    out |= {"last": figure, "trained": tr.step, "seconds": time.perf_counter() - started}
    print(f"[2] {task} {cell} seed {seed}: {status} at {tr.step} ({figure:.4g})", file=sys.stderr, flush=True)
    return out


def part_solve(
    seeds: int, caps: dict[str, int], every: int, jobs: int, saved: str | None = None
) -> dict[str, Any]:
    """Every (cell, task, seed) run; with `saved` (a JSON-lines file) each finished run is appended
    there as it ends, and the runs already in it (same cap and check) are read, not trained again."""
    # seed-major order: if the run is cut short, every cell has its first seeds
    order = [(c, t, s, caps[t], every) for s in range(seeds) for t in caps for c in CELLS]
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if saved is not None and os.path.exists(saved):
        with open(saved) as f:
            for line in f:
                r = json.loads(line)
                if r["task"] not in caps or r["check_every"] != every:
                    continue
                cap = caps[r["task"]]  # training is bit for bit the same: a run solved within
                if r["cap"] == cap or (r["steps"] is not None and r["steps"] <= cap):  # a cap still is
                    done[r["cell"], r["task"], r["seed"]] = r | {"cap": cap}
    todo = [job for job in order if job[:3] not in done]

    def keep(r: dict[str, Any]) -> None:
        done[r["cell"], r["task"], r["seed"]] = r
        if saved is not None:
            with open(saved, "a") as f:
                f.write(json.dumps(r) + "\n")

    if jobs == 1:
        for job in todo:
            keep(solve(job))
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for r in pool.map(solve, todo):
                keep(r)
    runs = [done[job[:3]] for job in order]
    summary: dict[str, dict[str, Any]] = {t: {} for t in caps}
    for task in caps:
        for cell in CELLS:
            mine = [r for r in runs if r["cell"] == cell and r["task"] == task]
            steps = [r["steps"] for r in mine if r["steps"] is not None]
            summary[task][cell] = {
                "median": statistics.median(steps) if steps else None,
                "solved": len(steps),
                "of": len(mine),
                "steps": [r["steps"] for r in mine],
                "last": statistics.median(r["last"] for r in mine),
            }
    criteria = {
        "adding": f"held-out MSE (512 samples) < {ADDING_SOLVED}",
        "copy": f"held-out accuracy on the recalled symbols (256 samples) >= {COPY_SOLVED}",
    }
    criteria = {t: criteria[t] for t in caps}
    return {
        "tasks": {t: TASKS[t] for t in caps},
        "caps": caps,
        "check_every": every,
        "criteria": criteria,
        "summary": summary,
        "runs": runs,
    }


# ----------------------------------------------------------------------------------------------
# 3. throughput at T = 1000


def part_speed(T: int = 1000, batch: int = 16, hidden: int = 64, repeats: int = 5) -> dict[str, Any]:
    """Median seconds of each path, the two paths' runs alternated (a passing load hits both)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(batch, T, 8)  # (B, T, I)
    rows: dict[str, dict[str, float | str]] = {}
    for cell in MIN_CELLS:
        model = MinRNN(cell, 8, hidden)
        pairs = [
            (bench_minrnn.timed(model, x, False, 1), bench_minrnn.timed(model, x, True, 1))
            for _ in range(repeats)
        ]
        slow, fast = (statistics.median(p) for p in zip(*pairs, strict=True))
        rows[cell] = {"slow": slow, "fast": fast, "slow_is": "sequential loop", "fast_is": "parallel scan"}
    cell_s = SLSTM(8, hidden)
    params = dict(cell_s.named_parameters())

    def reference() -> torch.Tensor:
        return unroll(params, x, 1, forget="exp", stabilizer=True).output

    pairs = [
        (bench_slstm.once(reference, cell_s), bench_slstm.once(lambda: cell_s(x)[0], cell_s))
        for _ in range(repeats)
    ]
    slow, fast = (statistics.median(p) for p in zip(*pairs, strict=True))
    rows["slstm"] = {"slow": slow, "fast": fast, "slow_is": "unrolled reference", "fast_is": "training path"}
    return {"T": T, "batch": batch, "hidden": hidden, "repeats": repeats, "cells": rows}


# ----------------------------------------------------------------------------------------------
# the table


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    if "reach" in results:
        r = results["reach"]
        lines += [
            f"1. ||dl_T/dh_1|| / ||dl_T/dh_T|| at init, adding T={r['T']}, H={r['hidden']}, median of "
            f"{len(next(iter(r['cells'].values()))['seeds'])} seeds",
            f"   {'cell':9s} {'probe (f32)':>11s} {'float64':>10s}   float64 per seed",
        ]
        for cell, row in r["cells"].items():
            spread = ", ".join(f"{v:.2g}" for v in row["seeds_float64"])
            lines.append(f"   {cell:9s} {row['median']:11.3g} {row['median_float64']:10.3g}   ({spread})")
    if "solve" in results:
        r = results["solve"]
        lines += ["", f"2. steps to solve (held-out check every {r['check_every']} steps), seeds 0..n-1"]
        for task, crit in r["criteria"].items():
            lines.append(f"   {task} {r['tasks'][task]}: {crit}, cap {r['caps'][task]}")
        figure = {"adding": "MSE", "copy": "recall acc"}
        lines.append(
            f"   {'cell':9s} "
            + "".join(
                f"{t + ': steps (solved: each seed)':>38s} {'last ' + figure[t]:>15s}" for t in r["tasks"]
            )
        )
        for cell in next(iter(r["summary"].values())):
            cols = []
            for task in r["tasks"]:
                row = r["summary"][task][cell]
                each = "/".join("-" if s is None else str(s) for s in row["steps"])
                head = f"not within {r['caps'][task]}" if row["median"] is None else f"{row['median']:g}"
                last = row.get("last", math.nan)  # the median held-out figure where the runs ended
                steps = f"{head} ({row['solved']}/{row['of']}: {each})"
                cols.append(f"{steps:>38s} {last:15.4g}")
            lines.append(f"   {cell:9s} " + "".join(cols))
    if "speed" in results:
        r = results["speed"]
        head = f"T={r['T']} B={r['batch']} H={r['hidden']}, median of {r['repeats']}"
        lines += ["", f"3. forward+backward, one layer, {head}"]
        for cell, row in r["cells"].items():
            lines.append(
                f"   {cell:9s} {row['slow_is']:>18s} {row['slow'] * 1000:7.1f} ms   {row['fast_is']:>13s} "
                f"{row['fast'] * 1000:7.1f} ms   {row['slow'] / row['fast']:5.1f} x"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="1,2,3", help="which of 1 (reach), 2 (solve), 3 (speed)")
    parser.add_argument("--reach-seeds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cap-adding", type=int, default=1200)
    parser.add_argument("--cap-copy", type=int, default=800)
    parser.add_argument("--tasks", default="adding,copy", help="part 2's tasks")
    parser.add_argument("--check-every", type=int, default=25)
    parser.add_argument("--jobs", type=int, default=1, help="processes for part 2, one thread each")
    parser.add_argument("--runs", help="part 2's JSON-lines file: each run kept as it ends, resumed from")
    parser.add_argument("--json", action="store_true", help="print the results as JSON, not the table")
    parser.add_argument("--load", help="print the table of a saved --json output and stop")
    args = parser.parse_args()
    if args.load:
        with open(args.load) as f:
            print(table(json.load(f)))
        return
    torch.set_num_threads(1)
    parts = {int(p) for p in args.parts.split(",")}
    results: dict[str, Any] = {}
    started = time.perf_counter()
    if 1 in parts:
        results["reach"] = part_reach(args.reach_seeds)
    if 2 in parts:
        caps = {t: {"adding": args.cap_adding, "copy": args.cap_copy}[t] for t in args.tasks.split(",")}
        results["solve"] = part_solve(args.seeds, caps, args.check_every, args.jobs, args.runs)
    if 3 in parts:
        results["speed"] = part_speed()
    results["seconds"] = time.perf_counter() - started
    print(json.dumps(results, indent=1) if args.json else table(results))


if __name__ == "__main__":
    main()

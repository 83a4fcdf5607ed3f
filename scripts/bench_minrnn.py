"""Throughput of minGRU / minLSTM's parallel scan against the sequential loop, side by side.

    .venv/bin/python -m scripts.bench_minrnn [--T 1000] [--batch 16] [--hidden 64] [--repeats 5]

Forward + backward of one layer on (B, T, 8) inputs, CPU, one torch thread; prints the median
seconds of each and their ratio. A benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from app.core.minrnn import MIN_CELLS, MinRNN


def timed(model: MinRNN, x: torch.Tensor, parallel: bool, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        model.zero_grad()
        start = time.perf_counter()
        out, _ = model(x, parallel=parallel)
        out.sum().backward()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.T, 8)
    print(f"T={args.T} B={args.batch} H={args.hidden}, forward+backward, median of {args.repeats}")
    for cell in MIN_CELLS:
        model = MinRNN(cell, 8, args.hidden)
        seq, par = timed(model, x, False, args.repeats), timed(model, x, True, args.repeats)
        print(f"{cell:8s} sequential {seq * 1000:7.1f} ms  parallel {par * 1000:7.1f} ms  {seq / par:4.1f} x")


if __name__ == "__main__":
    main()

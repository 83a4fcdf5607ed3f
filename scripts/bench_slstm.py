"""Throughput of the sLSTM training path against the unrolled reference, side by side.

    .venv/bin/python -m scripts.bench_slstm [--T 1000] [--batch 16] [--hidden 64] [--repeats 5]

Forward + backward of one layer (exp forget, stabilizer on) on (B, T, 8) inputs, CPU, one torch
thread; prints the median seconds of each and their ratio. A benchmark, not a test: run it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from app.core.slstm import SLSTM, unroll


def once(run: Callable[[], torch.Tensor], model: SLSTM) -> float:
    model.zero_grad()
    start = time.perf_counter()
    run().sum().backward()
    return time.perf_counter() - start


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
    model = SLSTM(8, args.hidden)
    params = dict(model.named_parameters())
    print(f"T={args.T} B={args.batch} H={args.hidden}, forward+backward, median of {args.repeats}")
    refs, fasts = [], []
    for _ in range(args.repeats):  # alternated, so that a load that comes and goes hits both
        refs.append(once(lambda: unroll(params, x, 1, forget="exp", stabilizer=True).output, model))
        fasts.append(once(lambda: model(x)[0], model))
    ref, fast = statistics.median(refs), statistics.median(fasts)
    print(f"slstm    unroll {ref * 1000:7.1f} ms  training path {fast * 1000:7.1f} ms  {ref / fast:4.1f} x")


if __name__ == "__main__":
    main()

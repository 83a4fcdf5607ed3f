"""Gatescope against the literature: the vanishing/exploding picture at initialisation and the
adding problem (Hochreiter & Schmidhuber 1997), where gated cells learn and a tanh RNN does not.

    python -m scripts.literature                 # the full protocol: 3 seeds x 3 cells, 2000 steps
    python -m scripts.literature --seeds 1 --steps 500

The test suite runs a shorter version of each check (tests/core/test_literature.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from app.core.cells import CellName
from app.core.engine import TrainConfig, Trainer
from app.core.model import InitScheme

TEST_SEED = 10_000  # the held-out test batch is drawn from its own generator


@dataclass(frozen=True)
class AddingResult:
    cell: CellName
    seed: int
    steps: int
    test_mse: float  # at the end
    solved_at: int | None  # first evaluated step with test MSE < 0.01
    seconds: float


RATIO_CASES: dict[str, tuple[CellName, InitScheme, float, float | None]] = {
    "tanh RNN, W_hh ~ N(0, 0.5^2/H)": ("rnn_tanh", "normal", 0.5, None),
    "tanh RNN, W_hh ~ N(0, 1.5^2/H)": ("rnn_tanh", "normal", 1.5, None),
    "LSTM, forget bias 3": ("lstm", "default", 1.0, 3.0),
}
RATIO_SEEDS = range(5)


def gradient_ratio(case: str, seed: int, seq_len: int = 100) -> float:
    """||dl_T/dh_1|| / ||dl_T/dh_T|| at initialisation (H=128) on the adding problem's probe sample."""
    cell, init, gain, forget_bias = RATIO_CASES[case]
    config = TrainConfig(
        cell=cell, task="adding", task_params={"seq_len": seq_len}, hidden_size=128, init=init, gain=gain,
        forget_bias=forget_bias, seed=seed, itemize=False,
    )  # fmt: skip
    g = Trainer(config).probe().grad_h_last[0]
    return float(g[0] / g[-1])


def median_ratio(case: str) -> float:
    """A typical network, not one draw: the median over RATIO_SEEDS."""
    return statistics.median(gradient_ratio(case, seed) for seed in RATIO_SEEDS)


def adding(cell: CellName, seed: int, steps: int = 2000, seq_len: int = 50, evaluate_every: int = 100,
           stop_when_solved: bool = False) -> AddingResult:  # fmt: skip
    config = TrainConfig(
        cell=cell, task="adding", task_params={"seq_len": seq_len}, hidden_size=64, optimizer="adam", lr=3e-3,
        clip="off", batch_size=64, steps=steps, seed=seed, probe_every=0,
    )  # fmt: skip
    trainer = Trainer(config)
    test = trainer.task.sample(1000, torch.Generator().manual_seed(TEST_SEED + seed))
    started = time.perf_counter()
    solved_at, mse = None, float("nan")
    for step in range(1, steps + 1):
        if trainer.train_step() is None:
            break
        if step % evaluate_every == 0 or step == steps:
            with torch.no_grad():
                mse = float(trainer.task.loss(trainer.net(test.inputs)[0], test))
            if mse < 0.01 and solved_at is None:
                solved_at = step
                if stop_when_solved:
                    break
    return AddingResult(cell, seed, trainer.step, mse, solved_at, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    print("1. ||dl_T/dh_1|| / ||dl_T/dh_T|| at initialisation, T=100, H=128, seeds 0-4")
    for case in RATIO_CASES:
        ratios = [gradient_ratio(case, seed) for seed in RATIO_SEEDS]
        listed = " ".join(f"{r:.1e}" for r in ratios)
        print(f"   {case:<32} median {statistics.median(ratios):.2e}   ({listed})")
    print(f"2. adding problem T=50, H=64, Adam 3e-3, batch 64, {args.steps} steps, test MSE on 1000 samples")
    for cell in ("lstm", "gru", "rnn_tanh"):
        for seed in range(args.seeds):
            r = adding(cell, seed, args.steps)
            print(f"   {cell:<8} seed {seed}: test MSE {r.test_mse:.4f}  below 0.01 at step {r.solved_at}  "
                  f"({r.seconds:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

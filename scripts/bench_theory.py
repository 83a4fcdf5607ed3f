"""What the theory arrays (app/core/jacobians.py) cost a built-in probe, against another version.

    python -m scripts.bench_theory                  # against the version of HEAD~1
    python -m scripts.bench_theory --against 214b9f5 --repeats 7

For each config (H=128, batch 32, the adding task, one torch thread) a Trainer takes three steps,
then probes (Trainer.probe and the frame's encoding, as a worker does) alternately with this
tree's `app.core.jacobians.theory` and with the one of `--against` (its file read with `git show`,
loaded as a module of its own): machine drift hits both alike. Both must give the same arrays
(to 1e-5 relative). It prints the median CPU time (time.process_time) of each, their ratio, and
the training step's, so the cost of a probe every step reads off as step + probe.

What this is not: a test (the figures depend on the machine and on what else runs on it).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from app.core import jacobians, probes
from app.core.cells import CellName
from app.core.engine import TrainConfig, Trainer
from app.services import worker

CONFIGS: list[tuple[CellName, int]] = [("gru", 200), ("lstm", 100), ("rnn_tanh", 200), ("rnn_relu", 200)]


def other_version(rev: str) -> ModuleType:
    """app/core/jacobians.py as it is at `rev`, loaded as the module "jacobians_at_rev"."""
    source = subprocess.run(
        ["git", "show", f"{rev}:app/core/jacobians.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-theory-")) / "jacobians_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("jacobians_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["jacobians_at_rev"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cpu(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def probe(trainer: Trainer) -> None:
    """A probe as a worker makes it: the frame, encoded."""
    worker.frame_bytes("bench", trainer.probe())


def use(theory: Callable[..., object]) -> None:
    """Make app.core.probes.make_frame call `theory` (the name it calls it by)."""
    vars(probes)["theory"] = theory


def same(a: object, b: object) -> None:
    for name in ("jacobian_norm", "cell_path_mean", "cell_path_max", "w_hh_radius", "w_hh_singular"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.abs(x - y).max() <= 1e-5 * max(float(np.abs(x).max()), 1e-30), name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", default="HEAD~1", help="the git revision to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    before = other_version(args.against)
    print(f"this tree against {args.against}; load average {os.getloadavg()[0]:.2f}")
    for cell, T in CONFIGS:
        config = TrainConfig(
            cell=cell, task="adding", task_params={"seq_len": T}, hidden_size=128, batch_size=32, steps=10**9
        )
        trainer = Trainer(config)
        for _ in range(3):
            trainer.train_step()
        times: dict[str, list[float]] = {"before": [], "now": []}
        for _ in range(args.repeats):
            for name, theory in (("before", before.theory), ("now", jacobians.theory)):
                use(theory)
                times[name].append(cpu(functools.partial(probe, trainer)))
        use(before.theory)
        was_frame = trainer.probe()
        use(jacobians.theory)
        same(was_frame.theory, trainer.probe().theory)  # the same weights, the same sample
        step = statistics.median(cpu(trainer.train_step) for _ in range(args.repeats))
        was, now = (1e3 * statistics.median(times[k]) for k in ("before", "now"))
        print(
            f"{cell} H=128 T={T} B=32: probe {was:.1f} -> {now:.1f} ms CPU ({was / now:.2f}x); "
            f"training step {1e3 * step:.1f} ms: a probe every step {1e3 * step + was:.0f} -> "
            f"{1e3 * step + now:.0f} ms a step",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""The cost model (app/core/cost.py) against measurement: estimate vs measured, per config.

    python -m scripts.bench_cost                 # the spread: real workers, time per step and peak memory
    python -m scripts.bench_cost --big           # also the issue's 3-layer bidirectional H=512, T=1000
    python -m scripts.bench_cost --fit           # refit TRAIN and PROBE from in-process timings

Default: each config of SPREAD trains in a real worker process (app.services.worker.run, one
torch thread, its events sent over a pipe to this process, which only reads them), with its own
probes, frames and checkpoints. Measured in the worker: the CPU time per step between the first
and the last step message (probes included: what the run costs when it has its core; on a
machine shared with other work the wall time, shown too, is longer) and its peak resident size
(ru_maxrss, read as it ends). Estimated: app.services.estimates.estimate of the same RunCreate,
with this process's calibration. It prints a table of both and their ratio (estimate /
measured), and exits 1 if a ratio falls outside [1/FACTOR, FACTOR].

--fit times training steps and probes (with the frame encoding, checkpoint and snapshot a worker adds) of
FIT configs in this process, and solves the non-negative least squares of the relative error
for each coefficient set; paste its output into app/core/cost.py.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from app.core import cost
from app.core.engine import Trainer
from app.services import worker
from app.services.estimates import estimate, shape_of
from app.services.schemas import RunCreate, to_train_config

Config = dict[str, Any]


def _cfg(
    cell: str, H: int, T: int, *, L: int = 1, bi: bool = False, B: int = 64, task: str = "adding", **kw: Any
) -> Config:
    params: Config = {"name": task, "seq_len": T}
    if task == "char_lm":
        params["corpus"] = "shakespeare"
    return {
        "cell": cell,
        "hidden_size": H,
        "num_layers": L,
        "bidirectional": bi,
        "batch_size": B,
        "task": params,
        **kw,
    }


# the validation spread: cells, sizes, depth, directions, batch, length, tbptt, probing
SPREAD: list[tuple[Config, int]] = [
    (_cfg("rnn_tanh", 32, 50), 200),
    (_cfg("lstm", 64, 100, task="char_lm"), 100),
    (_cfg("gru", 128, 200, B=32, task="copy"), 60),
    (_cfg("lstm", 256, 100, L=2, B=32), 30),
    (_cfg("lstm", 128, 400, tbptt=50), 30),
    (_cfg("rnn_relu", 512, 300, B=16), 30),
    (_cfg("lstm", 256, 200, task="char_lm", probe_every=1), 10),
    (_cfg("gru", 256, 100, L=2, bi=True, task="tagging"), 10),
    (_cfg("lstm", 512, 200, L=3, bi=True, B=32), 3),
    (_cfg("lstm", 64, 1000, B=128, probe_budget=0.05), 20),
]
BIG: tuple[Config, int] = (_cfg("lstm", 512, 1000, L=3, bi=True, probe_every=0), 2)

# the fit set: other configs than the spread, chosen to move one term at a time
FIT: list[Config] = [
    _cfg("lstm", 8, 200, B=1),
    _cfg("lstm", 16, 200),
    _cfg("lstm", 64, 50),
    _cfg("lstm", 128, 200, B=32, task="char_lm"),
    _cfg("lstm", 256, 100, L=2, B=32, task="recall"),
    _cfg("lstm", 512, 100),
    _cfg("lstm", 384, 100, bi=True, task="tagging"),
    _cfg("gru", 256, 100, task="counting"),
    _cfg("gru", 64, 300, L=3),
    _cfg("rnn_tanh", 256, 100),
    _cfg("rnn_tanh", 64, 100, task="copy"),
    _cfg("rnn_relu", 16, 1000, B=8, tbptt=20),
    _cfg("lstm", 32, 150, L=2, bi=True, B=128, task="char_lm"),
    _cfg("lstm", 128, 600, B=16, tbptt=100, task="char_lm"),
    _cfg("gru", 128, 50, B=128, task="char_lm"),
    _cfg("gru", 32, 500, B=16, tbptt=50, task="recall"),
    _cfg("rnn_relu", 384, 200, B=32, task="counting"),
    _cfg("rnn_tanh", 128, 100, L=3, bi=True, B=32, task="tagging"),
    _cfg("lstm", 64, 2000, B=8, tbptt=200),
]


# -- measuring one run in a real worker ----------------------------------------------------


class _Clocked:
    """The worker's end of the pipe, noting the CPU and wall clock as each step message leaves."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def send(self, message: Any) -> None:
        if message[0] == "step":
            self.cpu.append(time.process_time())
            self.wall.append(time.perf_counter())
        self.conn.send(message)


def _per_step(clock: list[float]) -> float:
    return (clock[-1] - clock[0]) / (len(clock) - 1) if len(clock) > 1 else float("nan")


def _worker(config_json: str, conn: Connection, result: Connection) -> None:
    """The body of a worker process; as it ends, its CPU and wall seconds per step and its peak
    resident size go back over `result`."""
    clocked = _Clocked(conn)
    code = worker.run("bench", config_json, clocked, multiprocessing.Event())
    conn.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.send((code, _per_step(clocked.cpu), _per_step(clocked.wall), peak))
    result.close()


def measure(config: RunCreate) -> tuple[float, float, int]:
    """(CPU and wall seconds per step between the first and last step, peak bytes) of a real worker
    (probes, frames and checkpoints included), its messages read and dropped here."""
    ctx = multiprocessing.get_context("spawn")
    conn, child = ctx.Pipe(duplex=False)
    result, result_child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_worker, args=(config.model_dump_json(), child, result_child))
    process.start()
    child.close()
    result_child.close()
    while True:
        try:
            message = conn.recv()
        except EOFError:
            break
        if message[0] == "error":
            raise RuntimeError(message[1])
    code, cpu, wall, peak = result.recv()
    process.join()
    if code != 0:
        raise RuntimeError(f"the worker exited with {code}")
    return cpu, wall, int(peak)


def describe(c: Config) -> str:
    task = c["task"]
    bits = [f"{c['cell']} H={c['hidden_size']}", f"L={c['num_layers']}" if c["num_layers"] > 1 else ""]
    bits += [
        "bi" if c["bidirectional"] else "",
        f"B={c['batch_size']}",
        f"{task['name']} T={task['seq_len']}",
    ]
    bits += [f"{k}={c[k]}" for k in ("tbptt", "probe_every", "probe_budget") if k in c]
    return " ".join(b for b in bits if b)


def validate(spread: list[tuple[Config, int]]) -> int:
    speed = cost.calibrate()
    print(
        f"calibration: speed {speed:.2f} (tiny step {speed * cost.REFERENCE_SECONDS * 1e3:.2f} ms CPU); "
        f"load average {os.getloadavg()[0]:.2f}; stated factor {cost.FACTOR}"
    )
    print(
        "| config | steps | s/step est | CPU s/step | ratio | wall s/step | peak MB est | peak MB | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 1.0
    for data, steps in spread:
        config = RunCreate.model_validate({**data, "steps": steps})
        est = estimate(config, speed)
        cpu, wall, peak = measure(config)
        rt, rm = est.seconds_per_step / cpu, est.memory_bytes / peak
        worst = max(worst, rt, 1 / rt, rm, 1 / rm)
        print(
            f"| {describe(data)} | {steps} | {est.seconds_per_step:.3g} | {cpu:.3g} | {rt:.2f} | "
            f"{wall:.3g} | {est.memory_bytes / 2**20:,.0f} | {peak / 2**20:,.0f} | {rm:.2f} |",
            flush=True,
        )
    verdict = "within" if worst <= cost.FACTOR else "OUTSIDE"
    print(f"worst ratio (either way): {worst:.2f}, {verdict} the stated factor {cost.FACTOR}")
    return 0 if worst <= cost.FACTOR else 1


# -- fitting -------------------------------------------------------------------------------


def _time(fn: Any, repeats: int) -> float:
    """The median CPU seconds of fn() over `repeats` calls (after one to warm up): what a worker's
    steps average, as `validate` measures them, rather than the best case."""
    fn()
    return statistics.median(_one(fn) for _ in range(repeats))


def _one(fn: Any) -> float:
    """CPU seconds of fn() in this process, its threads all counted (as `validate` counts the
    worker's): other work on the machine does not count."""
    started = time.process_time()
    fn()
    return time.process_time() - started


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares by active set: drop the most negative coefficient until none is."""
    active = list(range(a.shape[1]))
    while True:
        x, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        if (x >= 0).all():
            out = np.zeros(a.shape[1])
            out[active] = x
            return out
        del active[int(np.argmin(x))]


def fit() -> None:
    torch.set_num_threads(1)
    reference = statistics.median(cost.tiny_step_seconds() for _ in range(5))
    print(f"REFERENCE_SECONDS = {reference:.3e}  # load average {os.getloadavg()[0]:.2f}")
    rows_t, rows_p, ts, ps = [], [], [], []
    for data in FIT:
        config = RunCreate.model_validate({**data, "steps": 100})
        trainer = Trainer(to_train_config(config, threads=1))
        checkpoints = worker._Checkpoints(config, trainer)
        shape = shape_of(config)

        def probe(trainer: Trainer = trainer, checkpoints: worker._Checkpoints = checkpoints) -> None:
            worker.frame_bytes("fit", trainer.probe())
            checkpoints.due(trainer.step)
            worker.snapshot_bytes(trainer)

        t = _time(trainer.train_step, 7)
        p = _time(probe, 5)
        rows_t.append(cost.train_terms(shape))
        rows_p.append(cost.probe_terms(shape))
        ts.append(t)
        ps.append(p)
        print(f"{describe(data)}: step {t * 1e3:.2f} ms, probe {p * 1e3:.2f} ms", flush=True)
    for name, rows, y in (("TRAIN", rows_t, ts), ("PROBE", rows_p, ps)):
        names = list(rows[0])
        a, b = np.array([[r[n] for n in names] for r in rows]), np.array(y)
        k = nnls(a / b[:, None], np.ones(len(b)))  # relative error: every config counts alike
        ratios = (a @ k) / b
        fields = ", ".join(f'"{n}": {v:.3g}' for n, v in zip(names, k, strict=True) if v > 0)
        print(f"{name}: Terms = {{{fields}}}  # estimate/measured {ratios.min():.2f}..{ratios.max():.2f}")
        print("  ratios: " + " ".join(f"{r:.2f}" for r in ratios))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fit", action="store_true", help="refit the coefficients")
    parser.add_argument(
        "--big", action="store_true", help="also two steps of the issue's 3-layer bidirectional run"
    )
    args = parser.parse_args()
    if args.fit:
        fit()
        return 0
    return validate(SPREAD + ([BIG] if args.big else []))


if __name__ == "__main__":
    sys.exit(main())

"""The cost of a run before it starts: seconds per training step, per probe, and peak memory.

What this is: a model, not a measurement. `Shape` is what the cost depends on (cell, sizes,
batch, sequence length, the truncated-BPTT window, the optimizer, how often and how much it
probes). `estimate(shape, speed)` sums terms that are linear in a few machine coefficients
(`TRAIN`, `PROBE`: seconds per FLOP of the fused kernels, per pointwise element, per timestep
of kernel calls, per parameter, per step) fitted on this repository's reference machine with
`python -m scripts.bench_cost --fit`, and `speed` scales them all to the machine at hand:
`calibrate()` times a tiny LSTM step (about 0.1 s, one torch thread, as a worker trains) and
divides by what the reference machine took. Memory is the worker process's peak resident size:
the interpreter with torch loaded, the parameters with their gradients and optimizer state,
and the larger of the training step's saved activations and the probe's backward walk.

How honest: `scripts/bench_cost.py` runs real workers over a spread of configs and prints
estimate / measured for both; the model is held to within FACTOR of the measurement there.

What this is not: a limit (app.services.estimates applies the server's limits), nor a profiler.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Literal

import torch

from app.core.cells import CHUNKS, CellName
from app.core.jacobians import MAX_JACOBIAN_WORK, MAX_SPECTRA_WORK, STATE_WIDTH, spectra_every
from app.core.probes import ITEMIZE_MAX_STEPS

FACTOR = 2.0  # the estimates are within this factor of measured times and peaks (bench_cost)
GATES: dict[CellName, int] = CHUNKS  # weight blocks per layer
OPTIMIZER_STATES = {"sgd": 1, "rmsprop": 1, "adam": 2, "adagrad": 1}  # per-parameter buffers
SMALL_CHECKPOINT_BYTES = 4 * 2**20  # up to this, a worker sends its checkpoint with every probe
STARTUP_SECONDS = 3.0  # a worker process: spawn, import torch, build the task and the net
BASE_BYTES = 320 * 2**20  # a worker process with torch loaded and one step taken, nothing large
FLOAT = 4


@dataclass(frozen=True)
class Shape:
    """What a run's cost depends on."""

    cell: CellName
    input_size: int
    output_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_size: int
    seq_len: int
    loss_steps: int  # timesteps with a loss term in a sample (1 for many-to-one)
    steps: int
    tbptt: int | None = None
    optimizer: Literal["sgd", "rmsprop", "adam", "adagrad"] = "adam"
    probe_every: int = 10  # 0: first and last step only
    probe_budget: float | None = None
    itemize: bool = True

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def parameters(self) -> int:
        """Weights of the recurrent stack and the readout."""
        G, H, D = GATES[self.cell], self.hidden_size, self.directions
        total = 0
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else D * H
            total += D * (G * H * (width + H) + 2 * G * H)
        return total + self.output_size * (D * H + 1)

    @property
    def probe_rows(self) -> int:
        """Rows of the probe's backward walk: the loss L, its last term, each itemized l_s."""
        if self.loss_steps <= 1:
            return 1
        itemized = self.loss_steps if self.itemize and self.seq_len <= ITEMIZE_MAX_STEPS else 0
        return 2 + itemized


Terms = dict[str, float]  # a term's name -> its amount in one step or probe


# seconds per unit of each term on the reference machine, fitted by `python -m scripts.bench_cost
# --fit` (2 cores, one torch thread; the median process CPU time of each step and probe, worker's
# frame, checkpoint and fork snapshot included; refitted 2026-12-01 at load average 7, the machine
# shared): a term missing here costs nothing
TRAIN: Terms = {
    "flop": 1.18e-11,
    "element": 5.12e-09,
    "gru_timestep": 0.000118,
    "window": 0.000939,
    "constant": 0.0023,
}
PROBE: Terms = {
    "flop": 3.45e-11,
    "row_unit": 1.33e-08,
    "row_gate": 3.04e-09,
    "frame": 5.84e-08,
    "timestep": 6.79e-06,
    "gru_timestep": 5e-05,
    "weight": 1.56e-10,
    "checkpoint": 1.75e-07,
    "snapshot": 4.69e-10,
    "constant": 0.0116,
    "jacobian": 1.17e-10,
    "spectra": 6.72e-10,
}
# the modern cells' are reasoned, not fitted by bench_cost: minGRU/minLSTM keep a and b at each of
# the scan's log2(T) levels (about 2 log2 T + 6 floats for T = 64..1000), sLSTM LSTM's plus n and m
ACTIVATION_FLOATS: dict[CellName, float] = {
    "rnn_tanh": 5.0,
    "rnn_relu": 5.0,
    "lstm": 18.0,
    "gru": 13.0,
    "mingru": 20.0,
    "minlstm": 24.0,
    "slstm": 24.0,
}
PROBE_FLOATS = 11.0  # floats held per (t, row, unit, direction) of one layer's backward walk
REFERENCE_SECONDS = 1.017e-3  # calibrate()'s tiny step on the reference machine


def train_terms(s: Shape) -> Terms:
    """What one training step does: matmul FLOPs (forward and backward), pointwise elements,
    kernel timesteps (the fused kernels step through time), truncated-BPTT windows, weights."""
    G, H, D, B, T = GATES[s.cell], s.hidden_size, s.directions, s.batch_size, s.seq_len
    flops = 0.0
    for layer in range(s.num_layers):
        width = s.input_size if layer == 0 else D * H
        flops += D * 2.0 * B * T * G * H * (width + H)
    flops += 2.0 * B * T * D * H * s.output_size
    timesteps = float(T * s.num_layers * D)
    return {
        "flop": 3.0 * flops,
        "element": float(B * T * s.num_layers * D * (G + 2) * H + B * T * (s.input_size + s.output_size)),
        "timestep": timesteps,
        "gru_timestep": timesteps
        if s.cell in ("gru", "slstm")
        else 0.0,  # slower steps: GRU, sLSTM (a Python loop)
        "window": float(math.ceil(T / s.tbptt) if s.tbptt else 1),
        "weight": float(s.parameters),
        "constant": 1.0,
    }


def probe_terms(s: Shape) -> Terms:
    """What one probe does: FLOPs of the forward pass and the backward walk's rows, pointwise
    elements (walk and frame), walk timesteps, weights read, weights checkpointed with it, and the
    state a fork can start from (weights and optimizer buffers) sent with it."""
    G, H, D, T, L = GATES[s.cell], s.hidden_size, s.directions, s.seq_len, s.num_layers
    R = s.probe_rows
    flops = row_units = 0.0
    for layer in range(L):
        width = s.input_size if layer == 0 else D * H
        # rows join the walk at their own loss step: in layers nothing flows into from later, half live
        rows = R if D == 2 and layer < L - 1 else (R + 1) / 2
        flops += D * 2.0 * T * G * H * (width + H + rows * (H + width))
        row_units += D * T * rows * H
    timesteps = float(T * L * D)
    n = STATE_WIDTH.get(s.cell, 1) * H
    jacobian, spectra = L * D * T * n**3, L * D * G * H**3  # the theory: step Jacobians, W_hh spectra
    every = spectra_every(s.cell, L, D, H)  # one probe in `every` carries the spectra
    return {
        "flop": flops,
        "row_unit": row_units,  # what the walk does per row and unit whatever the cell: norms, copies
        "row_gate": G * row_units,  # and per gate
        "frame": float(L * T * D * H * (G + 2) + (L + 1) * T * T * (R > 2)),  # values encoded
        "timestep": timesteps,
        "gru_timestep": timesteps
        if s.cell in ("gru", "slstm")
        else 0.0,  # slower steps: GRU, sLSTM (a Python loop)
        "weight": float(s.parameters),
        "checkpoint": float(s.parameters if s.parameters * FLOAT <= SMALL_CHECKPOINT_BYTES else 0),
        "snapshot": float(s.parameters * (1 + OPTIMIZER_STATES[s.optimizer])),  # the fork state it sends
        "constant": 1.0,
        "jacobian": float(jacobian if jacobian <= MAX_JACOBIAN_WORK else 0),
        "spectra": float(spectra / every if spectra <= MAX_SPECTRA_WORK else 0),  # a probe's average
    }


def seconds(coefficients: Terms, terms: Terms) -> float:
    """Reference seconds of `terms` at `coefficients`."""
    return sum(coefficients.get(name, 0.0) * amount for name, amount in terms.items())


def probes_per_step(s: Shape, train_seconds: float, probe_seconds: float) -> float:
    """How many probes a training step carries on average (the first and last probe included)."""
    fixed = 2 / s.steps
    if s.probe_every:
        fixed = 1 / s.probe_every + 1 / s.steps
    if s.probe_budget is None:
        return fixed
    budgeted = s.probe_budget * train_seconds / max(probe_seconds, 1e-9)
    return min(fixed, budgeted + 2 / s.steps)


@dataclass(frozen=True)
class Estimate:
    train_seconds: float  # one training step
    probe_seconds: float  # one probe, with the itemized matrix when it has one
    seconds_per_step: float  # training plus the probes' share: the wall time per step
    eta_seconds: float  # the whole run, from start to end
    memory_bytes: int  # the worker process's peak resident size


def estimate(s: Shape, speed: float = 1.0) -> Estimate:
    """The cost of a run of shape `s` on a machine `speed` times slower than the reference."""
    train = speed * seconds(TRAIN, train_terms(s))
    probe = speed * seconds(PROBE, probe_terms(s))
    per_step = train + probe * probes_per_step(s, train, probe)
    return Estimate(
        train_seconds=train,
        probe_seconds=probe,
        seconds_per_step=per_step,
        eta_seconds=STARTUP_SECONDS + probe + s.steps * per_step,
        memory_bytes=int(memory(s)),
    )


def memory(s: Shape) -> float:
    """Bytes: the process, the weights with gradients and optimizer state, the larger working set."""
    H, D, B, L = s.hidden_size, s.directions, s.batch_size, s.num_layers
    window = min(s.tbptt or s.seq_len, s.seq_len)
    weights = s.parameters * FLOAT * (3 + OPTIMIZER_STATES[s.optimizer])  # + grad, the update's copy
    batch = 3 * B * s.seq_len * (s.input_size + s.output_size) * FLOAT
    activations = ACTIVATION_FLOATS[s.cell] * B * window * L * D * H * FLOAT
    walk = PROBE_FLOATS * s.seq_len * s.probe_rows * D * H * FLOAT
    return BASE_BYTES + weights + batch + max(activations, walk)


# -- calibration ----------------------------------------------------------------------------

_CALIBRATION = Shape("lstm", 8, 8, 32, 1, False, 16, 16, 16, steps=1)
_speed: float | None = None
_speed_lock = threading.Lock()


def tiny_step_seconds(repeats: int = 30) -> float:
    """The least CPU time of `repeats` training steps (forward, backward, Adam) of a tiny LSTM, on
    one torch thread (set for the calling thread only: OpenMP's count is per thread). CPU time,
    not wall time: other work on the machine does not make the machine look slower."""
    torch.set_num_threads(1)
    s = _CALIBRATION
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.LSTM(s.input_size, s.hidden_size, batch_first=True)
    head = torch.nn.Linear(s.hidden_size, s.output_size)
    params = [*net.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params)
    x = torch.randn(s.batch_size, s.seq_len, s.input_size, generator=gen)
    best = math.inf
    for _ in range(repeats):
        started = time.thread_time()
        opt.zero_grad()
        y, _ = net(x)
        head(y).square().mean().backward()
        torch.stack([p.grad.norm() for p in params if p.grad is not None]).norm()
        opt.step()
        best = min(best, time.thread_time() - started)
    return best


def calibrate() -> float:
    """This machine's speed against the reference (2.0: twice as slow), measured once per
    process in a thread of its own, then cached."""
    global _speed
    with _speed_lock:
        if _speed is None:
            result: list[float] = []
            thread = threading.Thread(
                target=lambda: result.append(tiny_step_seconds()), name="gatescope-calibrate"
            )
            thread.start()
            thread.join()
            _speed = result[0] / REFERENCE_SECONDS
        return _speed

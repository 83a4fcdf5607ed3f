"""The training engine: one run of one network on one task, step by step, with its measurements.

What this is: `Trainer(config)` builds the task, the seeded network and the optimizer, and
trains with the fused torch.nn kernels. Every step yields a `StepMetrics` (loss, the task's
metric, the global gradient norm before and after clipping, per-parameter gradient norms, the
update-to-weight ratio, the learning rate); every `probe_every` steps, and at step 0 and the
last step, a `ProbeFrame` of the run's fixed probe sample. With `probe_budget` the engine times
its own steps and probes and lets `app.core.budget.ProbeBudget` choose when to probe (and when
to include the itemized matrix) so that probing stays within that share of training time; the
clock is injectable for tests. A NaN or inf ends the run as
"diverged" at that step instead of raising. The same config and seed train bit for bit the same
on CPU, probes or not.

`state()` is what a run needs to go on from its step (weights, optimizer state, the data
stream's position, the step and the knobs); `restore(state)` makes a trainer of the same config
continue from it bit for bit (a fork: app.services.forks).

What this is not: a server. It does no I/O and knows nothing of processes, storage or sockets:
callers iterate `Trainer.events()` (or pass callbacks to `run`) and ask it to `stop()`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import Tensor

from app.core.budget import Plan, ProbeBudget
from app.core.cells import GATES, CellName, CellOptions
from app.core.jacobians import spectra_every
from app.core.model import InitScheme, ModelSpec, RecurrentNet, State, initialize
from app.core.probes import ProbeFrame, probe
from app.core.surgery import reinit_layer, rescale_recurrent, set_forget_bias
from app.core.tasks import Batch, Task, make_task

OptimizerName = Literal["sgd", "rmsprop", "adam", "adagrad"]
OPTIMIZERS: tuple[OptimizerName, ...] = ("sgd", "rmsprop", "adam", "adagrad")
ClipMode = Literal["off", "norm", "value"]
Status = Literal["running", "completed", "stopped", "diverged"]
KNOBS = frozenset({"lr", "clip", "tbptt", "optimizer", "rescale", "reinit", "forget_bias"})
# the TrainConfig fields state() keeps: those apply() may change, and the optimizer's momentum
STATE_KNOBS = ("lr", "clip", "clip_threshold", "tbptt", "optimizer", "momentum")
PROBE_SEED_OFFSET = 0x5EED  # the probe sample comes from its own stream, not the training batches


@dataclass(frozen=True)
class TrainConfig:
    cell: CellName
    task: str = "adding"
    task_params: Mapping[str, object] = field(default_factory=dict)
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    options: CellOptions = field(default_factory=CellOptions)  # sLSTM: forget gate kind and stabiliser
    init: InitScheme = "default"
    gain: float = 1.0
    forget_bias: float | None = None
    optimizer: OptimizerName = "adam"
    lr: float = 3e-3
    momentum: float = 0.0  # SGD only
    clip: ClipMode = "norm"
    clip_threshold: float = 1.0
    tbptt: int | None = None  # truncated BPTT window k; None = full backprop through time
    batch_size: int = 64
    steps: int = 2000
    seed: int = 0
    probe_every: int = 10  # 0 = probe only at the first and last step; with probe_budget: the smallest gap
    probe_text: str | None = None  # a person's own probe input (character models)
    itemize: bool = True  # itemized ||dl_s/dh_t|| in every probe (T <= 200); with probe_budget: when it fits
    probe_budget: float | None = None  # probing's share of training time (0 < b <= 0.5); None: probe_every
    threads: int = 1


@dataclass
class StepMetrics:
    step: int
    loss: float
    metric: float
    grad_norm: float  # global, before clipping
    grad_norm_clipped: float  # global, after clipping
    clipped: bool
    param_grad_norms: dict[str, float]
    update_ratio: float  # ||delta theta|| / ||theta||
    lr: float
    seconds: float  # wall time of this step


@dataclass
class End:
    status: Status
    step: int  # the last step trained, or the step at which the run diverged
    reason: str = ""


Event = StepMetrics | ProbeFrame | End


class Trainer:
    def __init__(self, config: TrainConfig, clock: Callable[[], float] = time.perf_counter) -> None:
        self.config = config
        self.clock = clock
        self.budget = ProbeBudget(
            every=config.probe_every,
            fraction=config.probe_budget,
            itemize="auto" if config.itemize and config.probe_budget is not None else config.itemize,
            first=0,
            spectra_every=spectra_every(
                config.cell, config.num_layers, 2 if config.bidirectional else 1, config.hidden_size
            ),
        )
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.task: Task = make_task(config.task, **dict(config.task_params))
        spec = ModelSpec(
            cell=config.cell,
            input_size=self.task.input_size,
            hidden_size=config.hidden_size,
            output_size=self.task.output_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            options=config.options,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.net = RecurrentNet(spec)
            initialize(self.net, config.init, config.gain, config.forget_bias)
        self.params = [p for p in self.net.parameters()]
        self.param_names = [n for n, _ in self.net.named_parameters()]
        self.optimizer = _optimizer(config, self.params)
        self.data = torch.Generator().manual_seed(config.seed)
        self.probe_sample = probe_sample(self.task, config)
        self.step = 0
        self.status: Status = "running"
        self._stop_requested = False

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to end after the step in progress (safe from another thread)."""
        self._stop_requested = True

    def apply(self, changes: Mapping[str, object]) -> None:
        """Change the run between two steps, whole or not at all (ValueError naming the bound).

        Knobs: `lr`; `clip` ({"mode", "threshold"}); `tbptt` (None: full BPTT); `optimizer`
        ({"name", "reset_state"}: a new optimizer, or the same one keeping its state). Weights
        (app.core.surgery): `reinit` ({"layer", "scheme", "gain"}, drawn from seed + step);
        `rescale` ({"layer", "radius"}); `forget_bias` (LSTM)."""
        unknown = set(changes) - KNOBS
        if unknown:
            raise ValueError(f"no such knob: {', '.join(sorted(unknown))}")
        update: dict[str, object] = {k: changes[k] for k in ("lr", "tbptt") if k in changes}
        if "clip" in changes:
            clip = cast(Mapping[str, object], changes["clip"])
            update["clip"], update["clip_threshold"] = clip["mode"], clip["threshold"]
        optimizer = cast(Mapping[str, object] | None, changes.get("optimizer"))
        if optimizer is not None:
            update["optimizer"] = optimizer["name"]
            if optimizer["name"] != self.config.optimizer and not optimizer["reset_state"]:
                raise ValueError(
                    f"optimizer.reset_state must be true to switch from {self.config.optimizer} to "
                    f"{optimizer['name']}: one's state means nothing to the other"
                )
        if "forget_bias" in changes and "f" not in GATES[self.config.cell]:
            raise ValueError(
                "forget_bias applies to the cells with a forget gate (lstm, minlstm, slstm), "
                f"not {self.config.cell}"
            )
        config = dataclasses.replace(self.config, **update)  # type: ignore[arg-type]
        reinit = cast(Mapping[str, object] | None, changes.get("reinit"))
        if reinit is not None and not 0 <= cast(int, reinit["layer"]) < config.num_layers:
            raise ValueError(f"reinit.layer must be from 0 to {config.num_layers - 1}")
        if "rescale" in changes:  # checks, then changes: the one step here that may still refuse
            rescale = cast(Mapping[str, int | float], changes["rescale"])
            rescale_recurrent(self.net, int(rescale["layer"]), float(rescale["radius"]))
        if reinit is not None:
            scheme, gain = cast(InitScheme, reinit["scheme"]), float(cast(float, reinit["gain"]))
            reinit_layer(self.net, cast(int, reinit["layer"]), scheme, gain, config.seed + self.step + 1)
        if "forget_bias" in changes:
            set_forget_bias(self.net, float(cast(float, changes["forget_bias"])))
        if optimizer is not None and (optimizer["reset_state"] or config.optimizer != self.config.optimizer):
            self.optimizer = _optimizer(config, self.params)
        self.config = config
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr

    def state(self) -> dict[str, object]:
        """What the run needs to go on from this step: {"step", "net" (its state_dict), "optimizer"
        (its state_dict), "data" (the batch generator's state), "knobs" (STATE_KNOBS as they are now)}.
        Tensors are copies; it saves and loads with torch.save / torch.load(weights_only=True)."""
        return {
            "step": self.step,
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "optimizer": _copied(self.optimizer.state_dict()),
            "data": self.data.get_state(),
            "knobs": {k: getattr(self.config, k) for k in STATE_KNOBS},
        }

    def restore(self, state: Mapping[str, object]) -> None:
        """Go on from a `state()` of a run of the same net and task: its step, knobs, weights,
        optimizer state and data stream, so that the steps after it are those the run trained."""
        knobs = cast(Mapping[str, object], state["knobs"])
        self.config = dataclasses.replace(self.config, **knobs)  # type: ignore[arg-type]
        self.net.load_state_dict(cast(Mapping[str, Tensor], state["net"]))
        self.optimizer = _optimizer(self.config, self.params)
        self.optimizer.load_state_dict(cast(dict[str, object], state["optimizer"]))
        self.data.set_state(cast(Tensor, state["data"]))
        self.step = cast(int, state["step"])

    def events(self, between: Callable[[], None] | None = None) -> Iterator[Event]:
        """The run's events; `between` (if given) is called between two steps, after the probe of
        the step before: the one place a caller may pause the run or change it (it may block)."""
        cfg = self.config
        yield self._timed_probe(self.budget.plan(self.step, force=True))
        while self.step < cfg.steps:
            if between is not None:
                between()
            if self._stop_requested:
                self.status = "stopped"
                yield End("stopped", self.step, "stopped on request")
                return
            metrics = self.train_step()
            if metrics is None:
                self.status = "diverged"
                yield End("diverged", self.step + 1, "loss or gradient became NaN or inf")
                return
            self.budget.spent_training(metrics.seconds)
            yield metrics
            plan = self.budget.plan(self.step, force=self.step == cfg.steps)
            if plan is not None:
                yield self._timed_probe(plan)
        self.status = "completed"
        yield End("completed", self.step)

    def run(
        self,
        on_step: Callable[[StepMetrics], None] | None = None,
        on_probe: Callable[[ProbeFrame], None] | None = None,
    ) -> End:
        for event in self.events():
            if isinstance(event, StepMetrics) and on_step is not None:
                on_step(event)
            elif isinstance(event, ProbeFrame) and on_probe is not None:
                on_probe(event)
            elif isinstance(event, End):
                return event
        raise AssertionError("events() always ends with End")  # pragma: no cover

    # -- one step --------------------------------------------------------------------------

    def train_step(self) -> StepMetrics | None:
        """One optimizer update on a fresh batch; None (and nothing applied) if it diverged."""
        cfg = self.config
        started = self.clock()
        batch = self.task.sample(cfg.batch_size, self.data)
        self.optimizer.zero_grad(set_to_none=False)
        loss, metric = self._forward_backward(batch)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
        grad_norm = float(torch.linalg.vector_norm(norms))
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return None
        clipped_norm, clipped = grad_norm, False
        if cfg.clip == "norm" and grad_norm > cfg.clip_threshold:
            scale = cfg.clip_threshold / (grad_norm + 1e-6)  # as torch.nn.utils.clip_grad_norm_
            torch._foreach_mul_(grads, scale)
            clipped_norm, clipped = grad_norm * scale, True
        elif cfg.clip == "value":
            clipped = any(bool((g.abs() > cfg.clip_threshold).any()) for g in grads)
            if clipped:
                torch.nn.utils.clip_grad_value_(self.params, cfg.clip_threshold)
                clipped_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
        before = [p.detach().clone() for p in self.params]
        self.optimizer.step()
        with torch.no_grad():
            delta = torch.stack(
                [torch.linalg.vector_norm(p - b) for p, b in zip(self.params, before, strict=True)]
            )
            size = torch.stack([torch.linalg.vector_norm(b) for b in before])
            ratio = float(torch.linalg.vector_norm(delta) / torch.linalg.vector_norm(size).clamp_min(1e-12))
        if not math.isfinite(ratio):
            return None
        self.step += 1
        return StepMetrics(
            step=self.step,
            loss=loss,
            metric=metric,
            grad_norm=grad_norm,
            grad_norm_clipped=clipped_norm,
            clipped=clipped,
            param_grad_norms=dict(zip(self.param_names, norms.tolist(), strict=True)),
            update_ratio=ratio,
            lr=float(self.optimizer.param_groups[0]["lr"]),
            seconds=self.clock() - started,
        )

    def _forward_backward(self, batch: Batch) -> tuple[float, float]:
        """Accumulate dL/dtheta; with truncated BPTT, window by window with the state carried."""
        T = batch.inputs.shape[1]
        k = self.config.tbptt or T
        total = batch.mask.sum()
        state: State | None = None
        outputs: list[Tensor] = []
        loss = 0.0
        for a in range(0, T, k):
            window = _window(batch, a, a + k)
            y, state = self.net(window.inputs, state)  # (B, k, O)
            part = self.task.step_losses(y, window).sum() / total
            if part.requires_grad:
                part.backward()
            loss += float(part.detach())
            outputs.append(y.detach())
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        metric = self.task.metric(torch.cat(outputs, dim=1), batch)
        return loss, metric

    # -- probes ----------------------------------------------------------------------------

    def probe(
        self, sample: Batch | None = None, itemize: bool | None = None, spectra: bool = True
    ) -> ProbeFrame:
        """A probe frame of the current weights, on the run's probe sample unless one is given.

        `itemize` None: as the config says; `spectra`: with the W_hh spectra.
        """
        return probe(
            self.net,
            self.task,
            sample if sample is not None else self.probe_sample,
            step=self.step,
            window=self.config.tbptt,
            itemize=self.config.itemize if itemize is None else itemize,
            spectra=spectra,
        )

    def _timed_probe(self, plan: Plan | None) -> ProbeFrame:
        """The planned probe, its cost reported to the budget."""
        assert plan is not None  # forced plans always probe
        started = self.clock()
        frame = self.probe(itemize=plan.itemize, spectra=plan.spectra)
        self.budget.spent_probing(self.clock() - started, plan.itemize)
        return frame


def probe_sample(task: Task, config: TrainConfig) -> Batch:
    """The run's fixed probe input: its probe text, else one sample from the probe's own seeded stream."""
    if config.probe_text is not None:
        return task.encode_text(config.probe_text)
    return task.sample(1, torch.Generator().manual_seed(config.seed + PROBE_SEED_OFFSET))


def _window(batch: Batch, a: int, b: int) -> Batch:
    if a == 0 and b >= batch.inputs.shape[1]:
        return batch
    return Batch(batch.inputs[:, a:b], batch.targets[:, a:b], batch.mask[:, a:b], None)


def _copied(value: object) -> object:
    """A deep copy of a state_dict's tensors (the optimizer changes its own in place)."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def _optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr)

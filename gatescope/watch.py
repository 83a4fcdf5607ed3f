"""`gatescope.watch(model)`: stream a person's own RNN / LSTM / GRU into Gatescope while it trains.

What this is: `watch()` finds every nn.RNN / nn.LSTM / nn.GRU in `model` (or takes `modules=`),
hooks them, and returns a `Watch`; the training loop calls `watch.step()` once per step, after
the update:

- every step, a metrics row (loss if passed, the gradient norm as backward left it and as it
  stands at step(), i.e. before and after clipping, per-parameter norms, ||dtheta||/||theta||, the
  learning rate of `optimizer=`), gatescope._metrics;
- on probe steps (the first, then every `every`-th, or as `probe_budget=` allows), one probe
  frame per watched module: by default of the first sample of that step's own batch, under the
  real batch loss ("live": the hooks of gatescope._capture copy what the forward and backward
  passes of the step saw, and the frame of step k is the k-th step's forward and backward,
  before its update); with `probe=` of that fixed input, run in eval mode at step() ("fixed").
  The frame is computed here, in step(), on the training thread (app.core.attach), and handed
  to the sink, which encodes and sends it in its own thread.

What watching never does: change training. No random number is drawn (a fixed probe runs under
torch.random.fork_rng), no .grad is written (a fixed probe differentiates with
torch.autograd.grad with respect to the module's outputs only), every module's train/eval mode
is restored, and the hooks pass every tensor through unchanged: a run trains to bit-identical
weights with or without a watch. What this is not: a transport (gatescope.sink, .transport,
.runfile) or the probe math (app.core.attach).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

import app
from app.core.attach import MAX_FRAME_T, Layout, layout_of, packed_rows, probe_call
from app.core.budget import Plan, ProbeBudget
from app.core.jacobians import spectra_every
from app.core.probes import WatchSource
from gatescope._capture import ModuleCapture
from gatescope._metrics import StepMeter
from gatescope.sink import Sink, describe

DEFAULT_SERVER = "http://127.0.0.1:8000"  # $GATESCOPE_SERVER, when set, replaces it
MAX_MODULES = 16
MAX_TOKEN_CHARS = 64
WATCHED = (nn.RNN, nn.LSTM, nn.GRU)

Labels = Callable[[Any], Sequence[str]]


def watch(
    model: nn.Module,
    server: str | None = DEFAULT_SERVER,
    every: int = 10,
    name: str | None = None,
    *,
    modules: Sequence[nn.Module] | None = None,
    probe: Any = None,
    probe_loss: Callable[[Any], Tensor] | None = None,
    labels: Labels | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    probe_budget: float | None = None,
    itemize: bool | Literal["auto"] = "auto",
    storage_mb: int | None = None,
    token: str | None = None,
    path: str | os.PathLike[str] | None = None,
    sink: Sink | None = None,
    notebook: bool | None = None,
) -> Watch:
    """Watch `model`'s recurrent modules; call `.step()` once per training step, then `.close()`.

    server     the Gatescope server's URL ($GATESCOPE_SERVER replaces the default), or None to
               record a local run file at `path` (default gatescope-<name>-<UTC time>.gsrun),
               for `python -m app import FILE` later. `sink=` overrides both.
    every      probe at the first step and at every step k with k % every == 0.
    modules    the nn.RNN / LSTM / GRU modules to watch (default: every one inside `model`).
    probe      a fixed probe input: model(*probe) (a tuple, or one tensor) in eval mode on probe
               steps, with `probe_loss(output)` the loss to differentiate (required with it).
    labels     maps the sample's input (sample 0 of the model's first argument, or of probe[0])
               to one display string per timestep, e.g. a vocabulary decode.
    optimizer  for the learning rate in every step's row.
    probe_budget, itemize   a fraction of training time that probing may take (0 < b <= 0.5; the
               budget picks the probe steps, at most one per `every`), and whether probes
               include the itemized matrix (True, False, "auto": as the budget allows).
    storage_mb the MB the server keeps this run's frames within (default: the server's
               GATESCOPE_RUN_STORAGE_MB); sent only when set, so older servers still attach.
    token      the server's token ($GATESCOPE_TOKEN if None).
    notebook   True: show the run live in a widget under the notebook cell (gatescope.notebook),
               no server needed, and record the local run file too (as server=None), or post to
               server= as well when a URL other than the default (or $GATESCOPE_SERVER) is given.
               None (default): the widget when server=None inside a Jupyter kernel. False: never.
    """
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"every must be a whole number >= 1, not {every!r}")
    if probe is not None and probe_loss is None:
        raise ValueError("probe= needs probe_loss=: a function of the model's output that returns the loss")
    if probe is None and probe_loss is not None:
        raise ValueError("probe_loss= is for a fixed probe: pass probe=(inputs...) with it")
    found = _modules(model, modules)
    layouts = [layout_of(m) for _, m in found]  # refuses what a frame cannot show, with a sentence
    costliest = max(
        spectra_every(lay.cell, lay.num_layers, lay.directions, lay.hidden_size) for lay in layouts
    )
    budget = ProbeBudget(
        every=every, fraction=probe_budget, itemize=itemize, first=1, spectra_every=costliest
    )
    if sink is None:
        sink = _notebook_tee(server, token, path, name, notebook)
    elif path is not None:
        raise ValueError("path= names a run file for server=None; with sink= the sink decides")
    elif notebook:
        raise ValueError("notebook=True makes watch's own sinks; with sink= the sink decides")
    body = _attach(model, found, layouts, name, every, probe is not None, probe_budget)
    sink.open(body if storage_mb is None else {**body, "storage_mb": storage_mb})
    fixed = None if probe is None else (tuple(probe) if isinstance(probe, tuple | list) else (probe,))
    return Watch(
        model,
        found,
        layouts,
        sink,
        budget,
        optimizer=optimizer,
        labels=labels,
        probe=fixed,
        probe_loss=probe_loss,
    )


class Watch:
    """A running watch: call `step()` once per training step (after the update), then `close()`
    (or use it as a context manager: an exception inside ends the runs as "failed" with
    "ExcType: message", Ctrl-C as "stopped")."""

    def __init__(
        self,
        model: nn.Module,
        modules: list[tuple[str, nn.Module]],
        layouts: list[Layout],
        sink: Sink,
        budget: ProbeBudget,
        *,
        optimizer: torch.optim.Optimizer | None,
        labels: Labels | None,
        probe: tuple[Any, ...] | None,
        probe_loss: Callable[[Any], Tensor] | None,
    ) -> None:
        self.model = model
        self.paths = [p for p, _ in modules]
        self.layouts = layouts
        self.sink = sink
        self.budget = budget
        self.labels = labels
        self.fixed = probe
        self.probe_loss = probe_loss
        self.captures = [ModuleCapture(m, lay) for (_, m), lay in zip(modules, layouts, strict=True)]
        self.meter = StepMeter(model, optimizer)
        self.steps = 0  # step() calls so far
        self._plan = budget.plan(1)
        self._since = time.perf_counter()
        self._closed = False
        self._warned: set[int] = set()  # modules whose calls were too long for a frame
        self._model_input: Any = None  # sample 0 of the model's first argument, for labels
        hook = self._keep_input
        self._input_hook = model.register_forward_pre_hook(hook, with_kwargs=True) if labels else None
        self._arm()

    # -- the training loop's calls -------------------------------------------------------------

    def step(self, loss: Tensor | float | None = None) -> None:
        """One training step is done (after the update): its metrics, and its frames if probed."""
        if self._closed:
            raise RuntimeError("watch.step() after watch.close()")
        started = time.perf_counter()
        seconds = started - self._since
        self.steps += 1
        k = self.steps
        value = _loss_value(loss)
        self.sink.step(self.meter.row(k, value, seconds))
        captured = sum(c.seconds for c in self.captures)
        self.budget.spent_training(seconds - captured)
        if self._plan is not None:
            probing = time.perf_counter()
            self._probe(k, self._plan, value)
            self.budget.spent_probing(time.perf_counter() - probing + captured, self._plan.itemize)
        self._plan = self.budget.plan(k + 1)
        self._arm()
        self._since = time.perf_counter()

    @property
    def should_stop(self) -> bool:
        """Someone pressed Stop on the dashboard: end the loop, then close() (status "stopped")."""
        return bool(self.sink.stop_requested)

    @property
    def run_ids(self) -> list[str]:
        """The server's runs, one per watched module ([] until attached, and in file mode)."""
        return list(getattr(self.sink, "run_ids", []))

    @property
    def path(self) -> Path | None:
        """The local run file (server=None), for `python -m app import FILE`; None otherwise."""
        path = getattr(self.sink, "path", None)
        return path if isinstance(path, Path) else None

    @property
    def dropped_frames(self) -> int:
        return int(self.sink.dropped_frames)

    @property
    def widget(self) -> Any:
        """The notebook widget (gatescope.notebook.RunWidget) showing this watch, or None."""
        return getattr(self.sink, "widget", None)

    def close(self, status: str | None = None, error: str | None = None) -> None:
        """Remove every hook and end the runs: `status` "completed" (or "stopped" if the dashboard
        asked for it), "stopped" or "failed". A second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for capture in self.captures:
            capture.remove()
        self.meter.remove()
        if self._input_hook is not None:
            self._input_hook.remove()
        self.sink.close(status or ("stopped" if self.should_stop else "completed"), error)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.close("stopped" if isinstance(exc, KeyboardInterrupt) else "failed", describe(exc))

    # -- probing -------------------------------------------------------------------------------

    def _arm(self) -> None:
        live = self._plan is not None and self.fixed is None
        for capture in self.captures:
            capture.arm("live" if live else None)
        self._model_input = None

    def _probe(self, step: int, plan: Plan, loss: float | None) -> None:
        """The frames of this step, one per module that ran, to the sink."""
        source: WatchSource = "live"
        model_input = self._model_input
        if self.fixed is not None:
            source, loss = "fixed", self._run_fixed()
            model_input = _sample0(self.fixed[0], self.layouts[0].batch_first)
        tokens = self._tokens(model_input)
        for i, capture in enumerate(self.captures):
            call = capture.call
            if call is None:
                continue
            notes = list(call.notes)
            if capture.calls > 1:
                notes.append(
                    f"this module ran {capture.calls} times in this step: the frame shows its last call."
                )
            T = call.x.shape[0]
            if T > MAX_FRAME_T:
                self._too_long(i, T)
                continue
            frame_tokens = tokens if tokens is not None and len(tokens) == T else None
            if tokens is not None and frame_tokens is None:
                notes.append(
                    f"labels= gave {len(tokens)} strings for this module's {T} steps: none are shown."
                )
            frame = probe_call(
                capture.layout, call.params, call.x, call.h0, call.c0,
                call.grad_out, call.grad_hn, call.grad_cn,
                step=step, tokens=frame_tokens, itemize=plan.itemize, notes=notes, source=source,
                loss=loss, spectra=plan.spectra,
            )  # fmt: skip
            self.sink.frame(i, frame)
        for capture in self.captures:
            capture.arm(None)

    def _run_fixed(self) -> float | None:
        """model(*probe) in eval mode, captured; gradients with respect to the modules' outputs
        only (never .grad); every module's mode and the random generators as they were."""
        assert self.fixed is not None and self.probe_loss is not None
        modes = [(m, m.training) for m in self.model.modules()]
        for capture in self.captures:
            capture.arm("fixed")
        devices = [p.device for p in self.model.parameters() if p.device.type == "cuda"][:1]
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                self.model.eval()
                loss = self.probe_loss(self.model(*self.fixed))
                wrt = [pair for c in self.captures if c.call is not None for pair in c.call.outputs]
                if wrt and isinstance(loss, Tensor) and loss.requires_grad:
                    grads = torch.autograd.grad(loss, [t for t, _ in wrt], allow_unused=True)
                    for (_, keep), g in zip(wrt, grads, strict=True):
                        if g is not None:
                            keep(g)
        finally:
            for m, mode in modes:
                m.training = mode
        for capture in self.captures:
            if capture.call is not None:
                capture.call.outputs = []  # let the graph go
        return _loss_value(loss)

    def _too_long(self, module: int, T: int) -> None:
        """A call longer than a frame may be: no frame, and a warning (once per module)."""
        if module not in self._warned:
            self._warned.add(module)
            warnings.warn(
                f"gatescope: {self.paths[module] or 'the model'} ran {T} steps, more than a frame "
                f"holds ({MAX_FRAME_T}): its probe steps have no frame",
                stacklevel=3,
            )

    def _tokens(self, model_input: Any) -> list[str] | None:
        if self.labels is None or model_input is None:
            return None
        return [str(s)[:MAX_TOKEN_CHARS] for s in self.labels(model_input)]

    def _keep_input(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._plan is not None and self.fixed is None:
            first = args[0] if args else next(iter(kwargs.values()), None)
            self._model_input = _sample0(first, self.layouts[0].batch_first)


def _modules(model: nn.Module, modules: Sequence[nn.Module] | None) -> list[tuple[str, nn.Module]]:
    """(path in the model, module) of every module to watch."""
    if modules is None:
        found: list[tuple[str, nn.Module]] = [
            (n, m) for n, m in model.named_modules() if isinstance(m, WATCHED)
        ]
        if not found:
            kind = type(model).__name__
            raise ValueError(f"{kind} holds no nn.RNN, nn.LSTM or nn.GRU: gatescope.watch probes those three")
    else:
        paths = {id(m): n for n, m in model.named_modules()}
        found = []
        for i, m in enumerate(modules):
            if id(m) not in paths:
                raise ValueError(f"modules[{i}] ({type(m).__name__}) is not part of the model")
            found.append((paths[id(m)], m))
        if not found:
            raise ValueError("modules= is empty: pass the modules to watch, or leave it out to watch all")
    if len(found) > MAX_MODULES:
        raise ValueError(
            f"{len(found)} modules to watch: at most {MAX_MODULES}; pick some with modules=[...]"
        )
    return found


def _attach(
    model: nn.Module,
    found: list[tuple[str, nn.Module]],
    layouts: list[Layout],
    name: str | None,
    every: int,
    fixed: bool,
    probe_budget: float | None,
) -> dict[str, Any]:
    """The AttachCreate JSON (docs/api.md)."""
    return {
        "name": name,
        "script": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None,
        "every": every,
        "probe": "fixed" if fixed else "live",
        "probe_budget": probe_budget,
        "modules": [{"path": p, **lay.to_json()} for (p, _), lay in zip(found, layouts, strict=True)],
        "parameters": {n: list(p.shape) for n, p in model.named_parameters()},
        "client": {"gatescope": app.__version__, "torch": torch.__version__, "host": socket.gethostname()},
    }


def _notebook_tee(
    server: str | None,
    token: str | None,
    path: str | os.PathLike[str] | None,
    name: str | None,
    notebook: bool | None,
) -> Sink:
    """`_sink`'s sink, and beside it (gatescope.notebook.TeeSink) the notebook widget's when
    `notebook` asks for it (see watch's docstring)."""
    kernel = _in_notebook()
    if notebook and not kernel:
        raise ValueError(
            "notebook=True shows a widget under a notebook cell, and this is not running in a Jupyter "
            "kernel: leave notebook= out here (server=None records a run file that gatescope.show(path) "
            "shows in a notebook)"
        )
    if notebook is None:
        notebook = server is None and kernel and importlib.util.find_spec("anywidget") is not None
    if not notebook:
        return _sink(server, token, path, name)
    try:
        from gatescope.notebook import NotebookSink, TeeSink
    except ImportError as exc:
        raise ImportError(
            f"the notebook widget needs anywidget ({exc}): pip install 'gatescope[notebook]'"
        ) from exc
    if server == DEFAULT_SERVER and not os.environ.get("GATESCOPE_SERVER"):
        server = None  # notebook=True needs no server: the widget and a run file
    return TeeSink(_sink(server, token, path, name), NotebookSink(show=True))


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel), where a widget can show."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def _sink(
    server: str | None, token: str | None, path: str | os.PathLike[str] | None, name: str | None
) -> Sink:
    """HttpSink to `server`, or FileSink to `path` (a default name in the working directory)."""
    if server is None:
        from gatescope.runfile import FileSink

        return FileSink(path if path is not None else default_path(name))
    if path is not None:
        raise ValueError("path= names a local run file: pass server=None with it")
    if server == DEFAULT_SERVER:
        server = os.environ.get("GATESCOPE_SERVER") or server
    from gatescope.transport import HttpSink

    return HttpSink(server, token if token is not None else os.environ.get("GATESCOPE_TOKEN"))


def default_path(name: str | None) -> Path:
    """gatescope-<name or script>-<UTC yyyymmdd-HHMMSS>.gsrun in the working directory."""
    stem = name or (Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "") or "watch"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "watch"
    return Path(f"gatescope-{safe}-{datetime.now(UTC):%Y%m%d-%H%M%S}.gsrun")


def _loss_value(loss: Tensor | float | None) -> float | None:
    if loss is None:
        return None
    if isinstance(loss, Tensor):
        if loss.numel() != 1:
            raise ValueError(f"loss must be one number, not a tensor of shape {tuple(loss.shape)}")
        return float(loss.detach())
    return float(loss)


def _sample0(x: Any, batch_first: bool) -> Any:
    """Sample 0 of a model input, for labels=: index 0 along the batch dimension of a tensor
    (dim 0 if batch_first, else dim 1; a 1-d tensor is one sample), sample 0's own steps of a
    PackedSequence, the first element of a list or tuple; anything else as it is."""
    if isinstance(x, PackedSequence):
        return x.data[packed_rows(x.batch_sizes, x.unsorted_indices).to(x.data.device)].detach().cpu()
    if isinstance(x, Tensor):
        return (x if x.dim() < 2 else x[0] if batch_first else x[:, 0]).detach().cpu().clone()
    if isinstance(x, list | tuple) and x:
        return x[0]
    return x

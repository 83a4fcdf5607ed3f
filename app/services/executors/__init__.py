"""Where runs train: the executor interface and `make_executor(settings)`.

What this is: two Protocols and a factory. An `Executor` starts one `RunWorker` per run (`launch`),
finds one still training from an earlier server (`reattach`), says how many runs fit at once
(`capacity`: MAX_RUNS) and whether it can start runs now (`check`: ExecutorUnavailable with a
sentence if not). A `RunWorker` is what the manager's Handle holds for a running run: the worker's
messages (app.services.worker's tuples, `recv`), its control channel (`control`: pause, resume,
intervene), its stop flag (`stop`), `terminate`, and `reap`, a sentence for how it ended.

Two implementations: `local` (a "spawn" process per run on this machine, the default) and `ray`
(a detached Ray actor per run, app.services.executors.ray_actor), chosen by
GATESCOPE_RAY_ADDRESS. Ray is imported only when that is set.

What this is not: the scheduling (app.services.manager) or the training (app.services.worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from app.settings import Settings

ExecutorName = Literal["local", "ray"]
Start = tuple[bytes, dict[str, Any]]  # a fork's snapshot bytes and changes (worker.Start)


class ExecutorUnavailable(Exception):  # noqa: N818  (it says what the executor is, HTTP 503)
    """The executor cannot start runs now (Ray unreachable); the message is a sentence."""


class RunWorker(Protocol):
    """One run's worker, as the manager and its reader thread drive it."""

    @property
    def where(self) -> tuple[ExecutorName, str | None]:
        """(executor, node) that trains the run; the node may be None until the worker is up."""
        ...

    @property
    def pid(self) -> int | None:
        """The worker's process id (on its node), once known."""
        ...

    def start(self) -> None:
        """Start the worker (or, reattached, start receiving from it). Called once."""
        ...

    def recv(self, timeout: float) -> tuple[Any, ...] | None:
        """The worker's next message, or None after `timeout` s; EOFError once it is gone."""
        ...

    def control(self, message: tuple[Any, ...]) -> None:
        """Send a control message (worker.py); EOFError or OSError if the worker is gone."""
        ...

    def stop(self) -> None:
        """Set the stop flag: the worker stops after the step in progress."""
        ...

    def terminate(self) -> None:
        """End the worker now, whatever it is doing."""
        ...

    def committed(self) -> None:
        """Everything received so far is stored (a worker that buffers may drop it)."""
        ...

    def detach(self) -> None:
        """Stop receiving but leave the worker training (for a later server to reattach)."""
        ...

    def reap(self, timeout: float) -> str:
        """Wait up to `timeout` s for the worker to end (then end it) and free its resources;
        a sentence for how it ended, which the run's error says when it sent no end of its own."""
        ...


class Executor(Protocol):
    """Starts and finds run workers (see the module docstring)."""

    name: ExecutorName
    detaches: bool  # its workers outlive the server (shutdown detaches them instead of stopping)

    def capacity(self) -> int:
        """How many runs may train at once (MAX_RUNS)."""
        ...

    def check(self) -> None:
        """ExecutorUnavailable, with a sentence, if no run can be started now."""
        ...

    def launch(self, run_id: str, config_json: str, start: Start | None) -> RunWorker:
        """A worker for the run, not started yet (RunWorker.start starts it)."""
        ...

    def reattach(self, run_id: str) -> RunWorker | str:
        """The run's worker if it is still training, else a sentence saying why not."""
        ...

    def close(self) -> None:
        """Let go of the executor's resources (detached workers go on)."""
        ...


def make_executor(settings: Settings) -> Executor:
    """The local executor, or the Ray one when GATESCOPE_RAY_ADDRESS is set (which connects now:
    if Ray is unreachable it says so in `check`, and every run it is asked to start is refused)."""
    if not settings.ray_address:
        from app.services.executors.local import LocalExecutor

        return LocalExecutor(settings.max_runs)
    from app.services.executors.ray_actor import RayExecutor

    explicit = "max_runs" in settings.model_fields_set
    return RayExecutor(settings.ray_address, settings.max_runs if explicit else None)

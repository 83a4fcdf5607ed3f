"""The local executor: each run in its own "spawn" process on this machine (the default).

What this is: `LocalExecutor(max_runs)` and its `LocalWorker`, a process running
app.services.worker.main with two pipes (messages child -> parent, control parent -> child) and a
stop Event. A local worker dies with the server, so nothing is ever reattached.

What this is not: the interface (app.services.executors) or the scheduling (app.services.manager).
"""

from __future__ import annotations

import multiprocessing
import socket
from typing import Any

from app.services import worker
from app.services.executors import ExecutorName, RunWorker, Start


class LocalExecutor:
    """Runs as processes of this machine."""

    name: ExecutorName = "local"
    detaches = False

    def __init__(self, max_runs: int) -> None:
        self.max_runs = max_runs
        self._mp = multiprocessing.get_context("spawn")

    def capacity(self) -> int:
        return self.max_runs

    def check(self) -> None:
        """Always able to start runs."""

    def launch(self, run_id: str, config_json: str, start: Start | None) -> RunWorker:
        return LocalWorker(self._mp, run_id, config_json, start)

    def reattach(self, run_id: str) -> RunWorker | str:
        return "its worker process ended with the server"

    def close(self) -> None:
        """Nothing to let go of."""


class LocalWorker:
    """A worker process with its pipes and stop Event."""

    def __init__(self, mp: Any, run_id: str, config_json: str, start: Start | None) -> None:
        self.conn, child_conn = mp.Pipe(duplex=False)
        child_control, self._control = mp.Pipe(duplex=False)
        self._stop = mp.Event()
        self.process = mp.Process(
            target=worker.main,
            args=(run_id, config_json, child_conn, self._stop, child_control, start),
            name=f"gatescope-run-{run_id}",
            daemon=True,
        )
        self._child = [child_conn, child_control]  # closed here once the worker has started
        self._pid: int | None = None

    @property
    def where(self) -> tuple[ExecutorName, str | None]:
        return "local", socket.gethostname()

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        try:
            self.process.start()
            self._pid = self.process.pid
        finally:
            self._close_child()  # so that the worker's death reads as EOF here

    def recv(self, timeout: float) -> tuple[Any, ...] | None:
        try:
            return self.conn.recv() if self.conn.poll(timeout) else None
        except OSError as exc:
            raise EOFError(str(exc)) from exc

    def control(self, message: tuple[Any, ...]) -> None:
        self._control.send(message)

    def stop(self) -> None:
        self._stop.set()

    def terminate(self) -> None:
        if self._pid is not None and self.process.is_alive():
            self.process.terminate()

    def committed(self) -> None:
        """Nothing is buffered on the worker's side."""

    def detach(self) -> None:  # pragma: no cover - LocalExecutor.detaches is False
        """Never called: the manager detaches only an executor's workers that outlive the server,
        and a local worker (a daemon process) ends with it."""
        raise RuntimeError("a local worker cannot outlive the server: LocalExecutor.detaches is False")

    def reap(self, timeout: float) -> str:
        """Join the process (terminate, then kill it after `timeout` s); "worker exited with code N"."""
        self._close_child()
        try:
            if self._pid is None:
                return "the worker never started"
            self.process.join(timeout)
            if self.process.exitcode is None:
                self.process.terminate()
                self.process.join(1.0)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join()
            code = self.process.exitcode
            self.process.close()
            return f"worker exited with code {code}"
        finally:
            self.conn.close()
            self._control.close()

    def _close_child(self) -> None:
        while self._child:
            self._child.pop().close()

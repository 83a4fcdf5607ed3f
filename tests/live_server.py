"""A real Gatescope server for tests and benchmarks: `python -m app` in a subprocess on a free port.

`serve(data_dir)` starts it with GATESCOPE_DATA_DIR and GATESCOPE_PORT set, waits for
/api/health, yields a `LiveServer`, and on exit stops it with SIGTERM (uvicorn shuts down
gracefully: the lifespan stops the workers), killing it only if it hangs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 30.0


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_health(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                code = server.process.returncode
                raise AssertionError(f"the server exited early with code {code}:\n{server.log()}")
            try:
                if http.get(f"{server.url}/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"the server did not answer within {STARTUP_TIMEOUT_S} s:\n{server.log()}")


def stop(server: LiveServer, timeout: float = 20.0) -> int:
    """SIGTERM, wait; SIGKILL if it hangs. The exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@contextmanager
def serve(data_dir: Path, log_path: Path | None = None, **env: str) -> Iterator[LiveServer]:
    port = free_port()
    log_path = log_path or data_dir / f"server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "GATESCOPE_HOST": "127.0.0.1",
        "GATESCOPE_PORT": str(port),
        "GATESCOPE_DATA_DIR": str(data_dir),
        **env,
    }
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        server = LiveServer(f"http://127.0.0.1:{port}", port, process, log_path)
        try:
            _wait_for_health(server)
            yield server
        finally:
            stop(server)

"""The web entry points: health, the index page, and ``python -m app`` really serving."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import __version__
from app.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 20.0


@pytest.mark.anyio
async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "executor": "local",
        "executor_error": None,
    }


@pytest.mark.anyio
async def test_index_is_the_dashboard(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    body = response.text
    assert "<title>Gatescope</title>" in body
    assert 'href="/docs"' in body
    # scripts come from files only (tests/web/test_pages.py checks the pages in detail)
    assert '<script type="module" src="/static/js/dashboard.js"></script>' in body


@pytest.mark.anyio
async def test_static_stylesheet_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_health(url: str, proc: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"python -m app exited early with code {proc.returncode}")
            try:
                return http.get(url)
            except httpx.TransportError:
                time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {STARTUP_TIMEOUT_S} s")


def test_python_m_app_serves(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "GATESCOPE_HOST": "127.0.0.1", "GATESCOPE_PORT": str(port)}
    log_path = tmp_path / "server.log"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as proc,
    ):
        try:
            response = _wait_for_health(f"http://127.0.0.1:{port}/api/health", proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server log ---\n{log_path.read_text()}") from None
        finally:
            proc.terminate()  # SIGTERM: uvicorn shuts down gracefully
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "executor": "local",
        "executor_error": None,
    }
    # uvicorn shuts down gracefully, then re-raises the signal it caught, so the exit status is -SIGTERM.
    log_text = log_path.read_text()
    assert proc.returncode in (0, -signal.SIGTERM), log_text
    assert "Application shutdown complete" in log_text


def test_settings_read_gatescope_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATESCOPE_PORT", "8123")
    monkeypatch.setenv("GATESCOPE_DATA_DIR", "/tmp/gatescope-data")
    monkeypatch.setenv("GATESCOPE_TOKEN", "secret")
    settings = Settings()
    assert settings.port == 8123
    assert settings.data_dir == Path("/tmp/gatescope-data")
    assert settings.token == "secret"
    assert settings.host == "127.0.0.1"


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "DATA_DIR", "MAX_RUNS", "TOKEN"):
        monkeypatch.delenv(f"GATESCOPE_{name}", raising=False)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path("data")
    assert settings.max_runs == (os.cpu_count() or 1)
    assert settings.token is None
    assert get_settings() is get_settings()


def test_the_gatescope_command_writes_a_run_files_report(tmp_path: Path) -> None:
    """`gatescope report FILE -o out.html`: the console script pyproject.toml installs beside the
    interpreter, run as a user runs it (a subprocess, from another directory)."""
    import torch
    from torch import nn

    import gatescope

    command = Path(sys.executable).with_name("gatescope")
    assert command.is_file(), "pip install -e . installs the gatescope command (pyproject [project.scripts])"
    rnn = nn.GRU(3, 4)
    with gatescope.watch(rnn, server=None, path=tmp_path / "run.gsrun", every=2, name="cli") as w:
        for _ in range(4):
            rnn(torch.randn(5, 2, 3))[0].sum().backward()
            w.step(loss=0.25)
    done = subprocess.run(
        [str(command), "report", "run.gsrun", "-o", "out.html", "--budget-mb", "8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "budget_mb" in html and "cli" in html
    assert "out.html" in done.stdout
    usage = subprocess.run([str(command), "report"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage: gatescope report" in usage.stderr

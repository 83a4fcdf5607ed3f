"""The widget in a real JupyterLab: anywidget's own front end loads gatescope.bundle.widget_esm()
(its _esm) and the widget's bytes trait and "add" messages (binary buffers) come over a real kernel's
comm. JupyterLab runs in a subprocess on a free port with its own config, data and settings dirs,
the kernel importing this work tree (PYTHONPATH); Chromium opens a notebook whose first cell shows a
RunWidget of a real run's first half and whose second cell adds the second half. Asserted: the
views draw (heatmap cells painted), the second cell's "add" extends the view in place (not a
redraw from a new snapshot), no request leaves the machine. Screenshot:
test-artifacts/widget-jupyterlab.png."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route

from tests.browser.conftest import painted, poll, screenshot
from tests.browser.test_report import RUN
from tests.browser.test_widget import report_json
from tests.live_server import REPO_ROOT, free_port

TOKEN = "gatescope-widget-test"
FIRST = """import base64, json
from gatescope.notebook import RunWidget

def load(name):
    part = json.load(open(name))
    part["frames"] = {int(s): base64.b64decode(b) for s, b in part["frames"].items()}
    return part

widget = RunWidget("run", [load("early.json")])
widget"""
SECOND = """widget.add(0, **load("late.json"))
widget.finish()
print("sent", widget.seq)"""
WIDGET = "document.querySelector('.gatescope-widget')"
VIEW = f"{WIDGET}.gatescope.views[0]"


def notebook(*cells: str) -> dict[str, Any]:
    code: list[dict[str, Any]] = [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
        for c in cells
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernel}, "cells": code}


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(the URL of a JupyterLab serving tmp_path/nb, that folder); the server ends with the test."""
    folder = tmp_path / "nb"
    folder.mkdir()
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
    }
    env = {**os.environ, **{k: str(tmp_path / v) for k, v in dirs.items()}, "PYTHONPATH": str(REPO_ROOT)}
    port = free_port()
    args = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={folder}",
        "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:
        args.append("--allow-root")
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no "get notified about news?" over the views
    log = (tmp_path / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200:
                    break
            assert proc.poll() is None, (tmp_path / "jupyterlab.log").read_text()
            assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
            time.sleep(0.3)
        yield url, folder
    finally:
        proc.terminate()  # it shuts its kernels down
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def painted_chart(page: Page, chart: str) -> float:
    """The painted share of a chart's heatmap, once scrolled into view (charts draw when seen; the
    notebook scrolls in its own panel, not the window)."""
    selector = f'.gatescope-widget [data-chart="{chart}"]'
    page.locator(selector).scroll_into_view_if_needed()
    return painted(page, selector)


def run_cell(page: Page, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def test_the_widget_in_jupyterlab(page: Page, http: httpx.Client, jupyterlab: tuple[str, Path]) -> None:
    url, folder = jupyterlab
    data = report_json(http, RUN)
    head = {k: data[k] for k in ("run", "task", "catalog")}

    def half(first: bool) -> dict[str, Any]:  # the metrics rows and frames (base64) of one half
        return {
            "metrics": [m for m in data["metrics"] if (m["step"] <= 30) == first],
            "frames": {s: b for s, b in data["frames"].items() if (int(s) <= 30) == first},
        }

    early, late = {**head, **half(True)}, half(False)
    (folder / "early.json").write_text(json.dumps(early))
    (folder / "late.json").write_text(json.dumps(late))
    (folder / "widget.ipynb").write_text(json.dumps(notebook(FIRST, SECOND)))

    outside: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "blob:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    errors: list[str] = []
    page.route("**/*", only_local)
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/lab/tree/widget.ipynb?token={TOKEN}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    idle = "() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar').innerText)"
    poll(page, idle, timeout=90)  # the kernel is up: a cell run before would be dropped
    run_cell(page, 0)
    poll(page, f"() => {WIDGET} && {WIDGET}.gatescope && {VIEW}.state.frame", timeout=90)
    assert page.evaluate(f"() => {VIEW}.source.probeSteps") == [0, 10, 20, 30]
    assert painted_chart(page, "hidden") == 1
    page.evaluate(f"() => {{ {VIEW}.seen = true; }}")
    run_cell(page, 1)
    steps = sorted(int(s) for s in data["frames"])
    poll(page, f"() => {VIEW}.source.probeSteps.length === {len(steps)}", timeout=60)
    assert page.evaluate(f"() => {VIEW}.seen") is True  # extended by the "add", not redrawn anew
    assert page.evaluate(f"() => {VIEW}.state.frame.step") == steps[-1]
    assert page.evaluate(f"() => {VIEW}.source.metrics.length") == len(data["metrics"])
    assert painted_chart(page, "hidden") == 1
    assert painted_chart(page, "gradflow") > 0.5
    page.locator(".gatescope-widget .run-head").scroll_into_view_if_needed()
    screenshot(page, "widget-jupyterlab")
    assert outside == []
    print("console errors:", errors)
    assert [e for e in errors if "gatescope" in e.lower() or "widget" in e.lower()] == []

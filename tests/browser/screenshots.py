"""Regenerate the README's screenshots (docs/screenshots/*.png): `python -m tests.browser.screenshots`
(`... screenshots learn`: only the guided tour's, docs/screenshots/learn-*.png; `... screenshots
diff`: only the diff of a fork with its parent, docs/screenshots/diff.png).

Starts its own server on a temporary data directory, trains a few small runs (a minute or two on
a CPU) and runs examples/char_lstm.py against it (an attached run: a user's own script under
gatescope.watch), and photographs the dashboard, run pages, a comparison and the guided tour at
1280 px in Debian's Chromium. Not a test: the browser tests save their own screenshots to test-artifacts/.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, poll, reveal_all, wait_for_run
from tests.live_server import REPO_ROOT, serve

OUT = REPO_ROOT / "docs" / "screenshots"
VANISHING: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 32,
    "task": {"name": "adding", "seq_len": 60},
    "batch_size": 32,
    "steps": 800,
    "probe_every": 20,
}
HELLO: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "char_lm", "corpus": "hello"},
    "batch_size": 1,
    "optimizer": {"name": "adam", "lr": 0.02},
    "steps": 300,
    "probe_every": 10,
}

NAMED_VANISHING: dict[str, Any] = {"name": "vanishing", "tags": ["adding", "T:60"]}


ATTACHED_STEPS = 240  # examples/char_lstm.py: enough for its loss to fall and its gates to change


def watch_example(http: httpx.Client, url: str) -> str:
    """Run examples/char_lstm.py against the server to its end; its run's id."""
    script = REPO_ROOT / "examples" / "char_lstm.py"
    command = [sys.executable, str(script), "--server", url, "--steps", str(ATTACHED_STEPS), "--every", "10"]
    subprocess.run(command, check=True, capture_output=True, timeout=900)
    runs = http.get("/api/runs", params={"limit": 500}).json()["items"]
    return str(next(r["id"] for r in runs if r["kind"] == "attached"))


def settle(page: Page, selector: str) -> None:
    page.wait_for_selector(selector)
    reveal_all(page)
    if page.locator("#chart-gradflow").count():  # a run page: its live redraws may lag a few seconds
        page.wait_for_selector("#chart-gradflow canvas.gs-heatmap")
    page.wait_for_timeout(500)


LEARN_DEMOS = ("hello", "vanishing", "gates")  # photographed finished, with what their runs showed


def learn(page: Page, url: str) -> None:
    """Run each of LEARN_DEMOS on /learn to its end and photograph its section: learn-<name>.png."""
    for name in LEARN_DEMOS:
        page.goto(f"{url}/learn#{name}")
        page.click(f'[data-demo="{name}"]')
        page.wait_for_selector(f'[data-findings="{name}"]:not(:empty)', timeout=600_000)
        settle(page, f'[data-demo-out="{name}"] canvas.gs-heatmap')
        page.locator(f"#{name}").screenshot(path=str(OUT / f"learn-{name}.png"))


def learn_only() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp), GATESCOPE_MAX_RUNS="3") as server,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        learn(browser.new_page(viewport=VIEWPORT), server.url)
        browser.close()


# the diff view's example: a vanishing tanh RNN, forked half-way with W_hh rescaled to radius 1
DIFF_PARENT: dict[str, Any] = {
    **VANISHING,
    "task": {"name": "adding", "seq_len": 40},
    "steps": 400,
    "name": "tanh RNN",
}
DIFF_FORK: dict[str, Any] = {"step": 200, "changes": {"rescale": {"layer": 0, "radius": 1.0}}}


def diff_only() -> None:
    """docs/screenshots/diff.png: /compare?runs=parent,fork&diff=1 once both runs have ended."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp), GATESCOPE_MAX_RUNS="2") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
        sync_playwright() as pw,
    ):
        parent = http.post("/api/runs", json=DIFF_PARENT).json()["id"]
        wait_for_run(http, parent, timeout=900)
        fork = http.post(f"/api/runs/{parent}/fork", json=DIFF_FORK).json()["id"]
        wait_for_run(http, fork, timeout=900)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{server.url}/compare?runs={parent},{fork}&diff=1")
        poll(page, "() => window.__gatescopeCompare?.diff?.sides.every((x) => x.feed.ended)")
        poll(page, "() => window.__gatescopeCompare.diff.state.frames")
        settle(page, "#chart-diff-ratio canvas.gs-heatmap")
        page.screenshot(path=str(OUT / "diff.png"), full_page=True)
        browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] in (["learn"], ["diff"]):
        (learn_only if sys.argv[1] == "learn" else diff_only)()
        print(f"screenshots in {OUT}")
        return
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), GATESCOPE_MAX_RUNS="3") as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            group = http.post("/api/compare", json={"config": {**VANISHING, **NAMED_VANISHING}}).json()
            ids = [r["id"] for r in group["runs"]]
            hello = http.post("/api/runs", json={**HELLO, "name": "hello", "tags": ["char_lm"]}).json()["id"]
            for run_id in [*ids, hello]:
                wait_for_run(http, run_id, timeout=900)
            attached = watch_example(http, server.url)
            long_gru = {**VANISHING, "cell": "gru", "steps": 100_000, "name": "gru, long"}
            http.post("/api/runs", json=long_gru)  # one running
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{server.url}/?preset=vanishing")
            settle(page, "#runs tbody tr")
            time.sleep(2.5)  # a sparkline refresh for the running run
            page.screenshot(path=str(OUT / "dashboard.png"))

            page.goto(f"{server.url}/compare?runs={','.join(ids)}")
            poll(page, "() => window.__gatescopeCompare?.columns.every((c) => c.feed.ended)")
            settle(page, "canvas.gs-heatmap")
            page.screenshot(path=str(OUT / "compare.png"), full_page=True)

            page.set_viewport_size({"width": 1280, "height": 1800})
            page.goto(f"{server.url}/runs/{ids[0]}?t=30")
            poll(page, "() => window.__gatescopeRun?.feed.ended")
            settle(page, "#chart-gradflow canvas.gs-heatmap")
            page.screenshot(path=str(OUT / "run-rnn-vanishing.png"))

            page.goto(f"{server.url}/runs/{attached}?t=40")
            poll(
                page,
                "() => window.__gatescopeRun?.feed.ended && window.__gatescopeRun.feed.gradflow.steps.length",
            )
            settle(page, "#chart-gate-f canvas.gs-heatmap")
            page.screenshot(path=str(OUT / "run-attached.png"))

            page.set_viewport_size({"width": 1280, "height": 2500})
            page.goto(f"{server.url}/runs/{hello}?t=2")
            poll(page, "() => window.__gatescopeRun?.feed.ended")
            settle(page, "#chart-gate-f canvas.gs-heatmap")
            page.screenshot(path=str(OUT / "run-hello-gates.png"))
            page.set_viewport_size(VIEWPORT)

            with httpx.Client(base_url=server.url, timeout=30) as http:
                for run in http.get("/api/runs?status=running").json()["items"]:
                    http.post(f"/api/runs/{run['id']}/stop")  # the guided tour's runs go first
            learn(page, server.url)
            browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()

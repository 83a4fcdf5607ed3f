"""Real-browser tests: Playwright for Python driving Debian's Chromium against a live server.

`server` (session scope) is `python -m app` in a subprocess on a free port with its own data
directory (tests/live_server.py). `gs_page` is pytest-playwright's `page` at 1280 x 900 that
records every console error, failed request and uncaught exception, and fails the test at
teardown if there were any. Screenshots go to test-artifacts/ (gitignored).

Chromium: /usr/bin/chromium (scripts/dev test installs it), or GATESCOPE_CHROMIUM.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, ViewportSize, expect

from tests.live_server import REPO_ROOT, LiveServer, serve

CHROMIUM = os.environ.get("GATESCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
BROWSER_TESTS = Path(__file__).resolve().parent
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
TIMEOUT_MS = 60_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an asyncio loop running in the main
    thread until the session ends, and an async test after it could not start its own."""
    browser = [item for item in items if Path(str(item.path)).is_relative_to(BROWSER_TESTS)]
    if browser:
        chosen = set(map(id, browser))
        items[:] = [item for item in items if id(item) not in chosen] + browser


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set GATESCOPE_CHROMIUM)")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": dict(VIEWPORT)}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("browser-data")
    with serve(data, GATESCOPE_MAX_RUNS="4") as live:
        yield live


@pytest.fixture(scope="session")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


class Problems:
    """What went wrong in the page: console errors, failed requests, uncaught exceptions."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.allowed: list[str] = []  # substrings of messages a test expects

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.add(f"console error: {message.text} ({message.location.get('url', '')})")

    def failed(self, request: Request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" not in failure:  # navigations cancel in-flight fetches: routine
            self.add(f"request failed: {request.method} {request.url}: {failure}")

    def add(self, text: str) -> None:
        if not any(a in text for a in self.allowed):
            self.items.append(text)


@pytest.fixture
def gs_page(page: Page, server: LiveServer) -> Iterator[Page]:
    problems = Problems()
    page.on("console", problems.console)
    page.on("pageerror", lambda exc: problems.add(f"uncaught: {exc}"))
    page.on("requestfailed", problems.failed)
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    assert not problems.items, "the page reported problems:\n" + "\n".join(problems.items)


@pytest.fixture
def url(server: LiveServer) -> Callable[[str], str]:
    return lambda path: server.url + path


def screenshot(page: Page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def reveal_all(page: Page) -> None:
    """Scroll through the whole page so that every chart (drawn only when on screen) draws."""
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height + VIEWPORT["height"], VIEWPORT["height"] // 2):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def report(name: str, figures: dict[str, Any]) -> None:
    """Keep measured figures in test-artifacts/<name>.json (and print them for -s)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n{name}: {json.dumps(figures)}")


def wait_for_run(http: httpx.Client, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = http.get(f"/api/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout} s"
        time.sleep(0.2)


def heatmap(chart_id: str) -> str:
    """The selector of a Plotly heatmap drawn in the chart with this id."""
    return f"#{chart_id} g.hm image"

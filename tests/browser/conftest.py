"""Real-browser tests: Playwright for Python driving Debian's Chromium against a live server.

`server` (session scope) is `python -m app` in a subprocess on a free port with its own data
directory (tests/live_server.py). `gs_page` is pytest-playwright's `page` at 1280 x 900 that
records every console error, failed request and uncaught exception, and fails the test at
teardown if there were any. Screenshots go to test-artifacts/ (gitignored).

Chromium: /usr/bin/chromium (scripts/dev test installs it), or GATESCOPE_CHROMIUM.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Route, ViewportSize, expect

from tests.live_server import REPO_ROOT, LiveServer, free_port, serve

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


def _pump(source: socket.socket, sink: socket.socket, rewrite: tuple[bytes, bytes] | None = None) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk.replace(*rewrite) if rewrite else chunk)
    except OSError:
        pass  # either side went away
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _relay(client: socket.socket, port: int, rewrite: tuple[bytes, bytes]) -> None:
    with client, socket.create_connection(("127.0.0.1", port)) as upstream:
        ahead = threading.Thread(target=_pump, args=(client, upstream, rewrite), daemon=True)
        ahead.start()
        _pump(upstream, client)
        ahead.join()


@pytest.fixture(scope="session")
def foreign_origin(server: LiveServer) -> Iterator[str]:
    """The server behind a TCP proxy that rewrites the Host header to the server's own (as a
    reverse proxy in front of it might): pages load from the proxy's origin, so the browser's
    Origin names a host the server does not, and the server refuses its websockets with 4403."""
    port = free_port()
    rewrite = (f"Host: 127.0.0.1:{port}".encode(), f"Host: 127.0.0.1:{server.port}".encode())
    listener = socket.create_server(("127.0.0.1", port))

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=_relay, args=(client, server.port, rewrite), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    with listener:
        yield f"http://127.0.0.1:{port}"


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
    """The selector of a heatmap image drawn in the chart with this id (static/js/heatmap.js)."""
    return f"#{chart_id} canvas.gs-heatmap"


# the share of painted (non-transparent) cells of the heatmap canvas under the CSS `selector`
# (one pixel a cell): the run page, the reports and the widget draw every heatmap this way
PAINTED = """(selector) => {
  const c = document.querySelector(`${selector} canvas.gs-heatmap`);
  if (!c || !c.width) return 0;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1;
  return n / (c.width * c.height);
}"""


def painted(page: Page, selector: str) -> float:
    """PAINTED of the chart `selector` finds, once it is painted at all (poll)."""
    return float(poll(page, f"() => ({PAINTED})({json.dumps(selector)})"))


def only_the_file(page: Page, path: Path) -> list[str]:
    """Route every request of `page`: the file at `path` loads, anything else is refused and
    listed in the returned list (a one-file report must make no request)."""
    refused: list[str] = []

    def route(route: Route) -> None:
        if route.request.url == path.as_uri():
            route.continue_()
            return
        refused.append(route.request.url)
        route.abort()

    page.route("**/*", route)
    return refused


def poll(page: Page, expression: str, timeout: float = TIMEOUT_MS / 1000) -> Any:
    """Evaluate `expression` (a JS function's source) until it returns something truthy, and
    return that. Playwright's wait_for_function compiles its argument with `new Function`, which
    the pages' CSP (no eval) forbids; page.evaluate runs through the debugger protocol instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"still falsy after {timeout} s: {expression}"
        time.sleep(0.05)


def scrub(page: Page, i: int) -> None:
    """Move the run page's scrubber to its i-th probe step, as a drag does (an input event)."""
    page.locator("#scrub").evaluate(f"(el) => {{ el.value = {i}; el.dispatchEvent(new Event('input')); }}")


# a 20 ms timer on the page's main thread: window.__lag collects how late each tick fires (ms)
LAG_MONITOR = """() => {
  const lags = [];
  let last = performance.now();
  window.__lag = lags;
  window.__lagTimer = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - last - 20));
    last = now;
  }, 20);
}"""

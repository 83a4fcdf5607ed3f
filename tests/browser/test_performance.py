"""Performance behaviour in headless Chromium; the measured figures go to test-artifacts/*.json.

The assertions are about what the page does, never about wall-clock times (the machine is shared):
- a live gradient-flow update paints only the new row's pixels, in the right colours, and
  repaints the whole image only when the colour range changes;
- with a probe frame every training step the run page keeps drawing the flow by appending rows,
  and a user action is handled while frames stream;
- a long, wide run reaches the page as the server's display frames (pooled once, on the server):
  no websocket message or request carries a full-resolution frame, and the heatmaps paint the
  display matrix as it came.
The speed itself is measured by `python -m scripts.bench_pages` (medians and ratios).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, WebSocket, expect

from tests.browser.conftest import LAG_MONITOR, heatmap, poll, report, screenshot, scrub, wait_for_run

APPEND = """async ({ rows, cols, updates }) => {
  const { Chart } = await import("/static/js/plots.js");
  const { gradflowFigure } = await import("/static/js/views.js");
  const node = document.createElement("div");
  node.id = "bench";
  node.style.cssText = "width: 1200px; height: 360px; position: relative";
  document.querySelector("main").prepend(node);
  const chart = new Chart(node, gradflowFigure, { name: "bench" });
  chart.visible = true;
  // norms between 1e-12 and 1e-2: the range stays [-12, -2] while rows are appended
  const norm = (r, x) => 10 ** (-2 - (10 * ((x + r) % cols)) / cols);
  const row = (r) => Float32Array.from({ length: cols }, (_, x) => norm(r, x));
  const flow = { kind: "last", layer: 0, T: cols, width: 1, t: Array.from({ length: cols }, (_, i) => i),
                 steps: [], rows: [], saturation: {}, lastStep: cols - 1, version: 0, reset: 1 };
  const add = (r) => { flow.rows.push(row(r)); flow.steps.push(10 * r); flow.version += 1; };
  const draw = () => {
    chart.input = { flow, floor: -30, t: null, step: null, frame: null };
    chart.render();
  };
  for (let r = 0; r < rows - 1; r++) add(r);
  draw();
  add(rows - 1);
  draw(); // the first append makes room to grow: from here on every update appends
  const stats = window.__gatescope.heatmaps.bench;
  const before = { ...stats };
  const ms = [];
  for (let k = 0; k < updates; k++) {
    add(rows + k);
    const t0 = performance.now();
    draw();
    ms.push(performance.now() - t0);
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  }
  const after = { ...stats };
  // the pixel of the last row's brightest column (10^-2: the top of Viridis, #fde725)
  const canvas = node.querySelector("canvas.gs-heatmap");
  const last = rows + updates - 1;
  const top = (cols - (last % cols)) % cols;
  const pixel = Array.from(canvas.getContext("2d").getImageData(top, last, 1, 1).data);
  // a brighter row widens the range: the whole image is repainted on the new scale
  flow.rows.push(Float32Array.from({ length: cols }, () => 10));
  flow.steps.push(10 * (last + 1));
  flow.version += 1;
  draw();
  return { before, after, rescaled: { ...stats }, pixel, ms };
}"""


def test_a_live_gradient_flow_update_paints_only_the_new_rows(
    gs_page: Page, url: Callable[[str], str]
) -> None:
    gs_page.goto(url("/learn"))
    poll(gs_page, "() => window.Plotly !== undefined")
    rows, cols, updates = 600, 200, 30
    m = gs_page.evaluate(APPEND, {"rows": rows, "cols": cols, "updates": updates})
    assert m["after"]["append"] - m["before"]["append"] == updates
    assert m["after"]["full"] == m["before"]["full"], "no update repainted the whole image"
    assert m["after"]["rows"] - m["before"]["rows"] == updates, "one row of pixels per update"
    assert m["pixel"] == [0xFD, 0xE7, 0x25, 255]
    assert m["rescaled"]["full"] == m["after"]["full"] + 1
    assert m["rescaled"]["rows"] - m["after"]["rows"] == rows + updates + 1
    report("perf-gradflow-append", {"rows": rows, "cols": cols, "render_ms": summary(m["ms"])})


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "min_ms": round(ordered[0], 1),
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


@pytest.fixture
def quiet_server(http: httpx.Client) -> None:
    """Measure with no other run training on the server (earlier tests may have left some)."""
    for status in ("queued", "running"):
        for run in http.get(f"/api/runs?status={status}&limit=500").json()["items"]:
            http.post(f"/api/runs/{run['id']}/stop")
    for run in http.get("/api/runs?status=running&limit=500").json()["items"]:
        wait_for_run(http, run["id"])


@pytest.mark.usefixtures("quiet_server")
def test_the_run_page_appends_the_flow_and_stays_responsive_with_a_probe_every_step(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    config: dict[str, Any] = {
        "cell": "lstm",
        "hidden_size": 64,
        "task": {"name": "adding", "seq_len": 100},
        "batch_size": 8,
        "steps": 600,
        "probe_every": 1,
    }
    run = http.post("/api/runs", json=config).json()
    page = gs_page
    page.goto(url(f"/runs/{run['id']}"))
    page.locator("#chart-gradflow").scroll_into_view_if_needed()  # charts draw once on screen
    expect(page.locator(heatmap("chart-gradflow"))).to_have_count(1)
    page.evaluate(LAG_MONITOR)
    rows0 = page.evaluate("() => window.__gatescopeRun.feed.gradflow.rows.length")
    start = time.monotonic()
    handled = 0
    while time.monotonic() - start < 8 and http.get(f"/api/runs/{run['id']}").json()["status"] == "running":
        floor = -20 if handled % 2 else -30  # a user action while frames stream: it is handled
        page.locator("#floor").select_option(str(floor))
        poll(page, f"() => window.__gatescopeRun.state.floor === {floor}")
        handled += 1
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    m = page.evaluate(
        """() => { clearInterval(window.__lagTimer); const s = window.__gatescope;
           return { lags: window.__lag, renders: s.renders, flow: s.byChart.gradflow || [],
                    image: s.heatmaps.gradflow, rows: window.__gatescopeRun.feed.gradflow.rows.length }; }"""
    )
    screenshot(page, "run-probe-every-step")
    http.post(f"/api/runs/{run['id']}/stop")
    wait_for_run(http, run["id"])
    report(
        "perf-probe-every-step",
        {
            "seconds_watched": round(elapsed, 1),
            "gradflow_rows_added": m["rows"] - rows0,
            "gradflow_image": m["image"],
            "chart_renders": m["renders"],
            "gradflow_render": summary(m["flow"]) if m["flow"] else None,
            "main_thread_lag": summary(m["lags"]),
            "floor_changes_handled": handled,
        },
    )
    assert m["rows"] > rows0, "frames kept arriving"
    assert m["image"]["append"] > 0, "live rows were appended, not the image repainted"
    assert handled > 0


LONG_RUN: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 300,
    "task": {"name": "adding", "seq_len": 600},
    "batch_size": 2,
    "steps": 10,
    "probe_every": 5,
    "itemize": False,
}


def test_a_long_wide_run_reaches_the_page_as_display_frames_only(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run = http.post("/api/runs", json=LONG_RUN).json()
    assert wait_for_run(http, run["id"])["status"] == "completed"
    full = len(http.get(f"/api/runs/{run['id']}/probes/10").content)
    page = gs_page
    received: list[int] = []
    frames_asked: list[str] = []

    def on_message(payload: bytes | str) -> None:
        if isinstance(payload, bytes):  # frames; text messages are the snapshot, steps, status
            received.append(len(payload))

    def on_socket(ws: WebSocket) -> None:
        ws.on("framereceived", on_message)

    def on_request(request: Request) -> None:
        if "/probes/" in request.url or "/inspect" in request.url:
            frames_asked.append(request.url)

    page.on("websocket", on_socket)
    page.on("request", on_request)
    page.goto(url(f"/runs/{run['id']}"))
    page.locator("#chart-gradflow").scroll_into_view_if_needed()  # charts draw once on screen
    expect(page.locator(heatmap("chart-gradflow"))).to_have_count(1)
    page.locator("#chart-hidden").scroll_into_view_if_needed()
    expect(page.locator(heatmap("chart-hidden"))).to_have_count(1)
    frame = page.evaluate(
        """() => { const f = window.__gatescopeRun.state.frame;
           return { T: f.T, U: f.U, fullT: f.fullT, fullU: f.fullU, t1: f.tIndex[1], pool: f.pool }; }"""
    )
    assert frame == {
        "T": 300,
        "U": 150,
        "fullT": 600,
        "fullU": 300,
        "t1": 2,
        "pool": {"T": 600, "units": 300, "tWidth": 2, "unitWidth": 2},
    }
    flow = page.evaluate(
        "() => { const g = window.__gatescopeRun.feed.gradflow; return [g.steps, g.width, g.t.length]; }"
    )
    assert flow == [[0, 5, 10], 2, 300]
    # the heatmaps paint the display matrix as it came: one pixel per shown cell
    canvas = page.evaluate(
        """() => { const c = document.querySelector("#chart-hidden canvas.gs-heatmap");
           return [c.width, c.height]; }"""
    )
    assert canvas == [300, 150]
    scrub(page, 0)
    poll(page, "() => window.__gatescopeRun.state.frame.step === 0")
    assert received and max(received) < full / 2, (received, full)
    assert frames_asked and all("resolution=display" in u for u in frames_asked), frames_asked
    report("perf-long-run", {"T": 600, "H": 300, "websocket_frame_bytes": received, "full_frame_bytes": full})

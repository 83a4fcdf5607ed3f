"""Performance in headless Chromium, measured and kept in test-artifacts/*.json:

- Plotly.react of a 128 x 200 heatmap (the gradient-flow view's figure) must take under 50 ms;
- with a probe frame every training step the page stays responsive (renders are coalesced per
  animation frame, only on-screen charts draw, and a frame's rendering is budgeted);
- a long, wide run (T > 500, H > 256) is pooled on the server for display, keeping step 0.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import heatmap, report, screenshot, wait_for_run

BENCH = """async ({rows, cols, updates}) => {
  const { Chart } = await import("/static/js/plots.js");
  const { gradflowFigure } = await import("/static/js/views.js");
  const node = document.createElement("div");
  node.style.cssText = "width: 1200px; height: 360px";
  document.querySelector("main").prepend(node);
  const chart = new Chart(node, gradflowFigure, { name: "bench" });
  chart.visible = true;
  const steps = Array.from({ length: rows }, (_, i) => i * 10);
  const t = Array.from({ length: cols }, (_, i) => i);
  const full = [];
  for (let k = 0; k < updates; k++) {
    // a fresh matrix each time, values spanning 1e-30 .. 1 as a vanishing gradient does
    const z = steps.map((_, r) => t.map((x) => Math.random() * 10 ** (-(cols - x) * (r % 7) / 40)));
    chart.input = { flow: { steps, t, z, version: k }, kind: "last", floor: -30 };
    const t0 = performance.now();
    chart.render();
    full.push(performance.now() - t0);
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  }
  return { react: window.__gatescope.byChart.bench, full };
}"""


@pytest.fixture(autouse=True)
def quiet_server(http: httpx.Client) -> None:
    """Measure with no other run training on the server (earlier tests may have left some)."""
    for status in ("queued", "running"):
        for run in http.get(f"/api/runs?status={status}&limit=500").json()["items"]:
            http.post(f"/api/runs/{run['id']}/stop")
    for run in http.get("/api/runs?status=running&limit=500").json()["items"]:
        wait_for_run(http, run["id"])


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "min_ms": round(ordered[0], 1),
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def test_plotly_react_of_a_128_by_200_heatmap_is_under_50_ms(
    gs_page: Page, url: Callable[[str], str]
) -> None:
    gs_page.goto(url("/learn"))
    gs_page.wait_for_function("() => window.Plotly !== undefined")
    measured = gs_page.evaluate(BENCH, {"rows": 128, "cols": 200, "updates": 40})
    react = summary(measured["react"][5:])  # after warm-up
    full = summary(measured["full"][5:])
    report("perf-heatmap-128x200", {"plotly_react": react, "figure_plus_react": full})
    # the CPU is shared with other processes: hold the typical update, not every outlier, to 50 ms
    assert react["median_ms"] < 50, react
    assert full["median_ms"] < 80, full


MONITOR = """() => {
  const lags = [];
  let last = performance.now();
  window.__lag = lags;
  window.__lagTimer = setInterval(() => {
    const now = performance.now();
    lags.push(now - last - 20);
    last = now;
  }, 20);
}"""


def test_the_run_page_stays_responsive_with_a_probe_every_step(
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
    expect(page.locator(heatmap("chart-gradflow"))).to_have_count(1)
    page.evaluate(MONITOR)
    frames0 = page.evaluate("() => window.__gatescopeRun.feed.gradflow.steps.length")
    start = time.monotonic()
    clicks: list[float] = []
    while time.monotonic() - start < 8 and http.get(f"/api/runs/{run['id']}").json()["status"] == "running":
        # input stays prompt: a click on the layer select is handled while frames stream
        t0 = time.monotonic()
        page.locator("#floor").select_option(str(-20 if len(clicks) % 2 else -30))
        page.wait_for_function(
            "(v) => window.__gatescopeRun.state.floor === v", arg=-20 if len(clicks) % 2 else -30
        )
        clicks.append((time.monotonic() - t0) * 1000)
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    figures = page.evaluate(
        """() => { clearInterval(window.__lagTimer); const s = window.__gatescope;
           return { lags: window.__lag, renders: s.renders, flow: s.byChart.gradflow || [],
                    rows: window.__gatescopeRun.feed.gradflow.steps.length,
                    probes: window.__gatescopeRun.feed.probeSteps.length }; }"""
    )
    lags = summary([max(0.0, v) for v in figures["lags"]])
    result = {
        "seconds_watched": round(elapsed, 1),
        "probe_frames_drawn_in_gradflow": figures["rows"] - frames0,
        "frames_per_second": round((figures["rows"] - frames0) / elapsed, 1),
        "chart_renders": figures["renders"],
        "gradflow_react": summary(figures["flow"]) if figures["flow"] else None,
        "main_thread_lag": lags,
        "select_roundtrip": summary(clicks) if clicks else None,
    }
    report("perf-probe-every-step", result)
    screenshot(page, "run-probe-every-step")
    http.post(f"/api/runs/{run['id']}/stop")
    wait_for_run(http, run["id"])
    assert figures["rows"] > frames0, "frames kept arriving"
    # a shared CI machine: hold the page to "never locks up", the figures above say how well it does
    assert lags["median_ms"] < 50 and lags["p90_ms"] < 250, lags
    if clicks:
        assert statistics.median(clicks) < 1000, clicks  # includes Playwright's own round trips


def test_long_and_wide_runs_are_pooled_for_display(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    config: dict[str, Any] = {
        "cell": "rnn_tanh",
        "hidden_size": 300,
        "task": {"name": "adding", "seq_len": 600},
        "batch_size": 2,
        "steps": 10,
        "probe_every": 5,
        "itemize": False,
    }
    run = http.post("/api/runs", json=config).json()
    assert wait_for_run(http, run["id"])["status"] == "completed"
    page = gs_page
    t0 = time.monotonic()
    page.goto(url(f"/runs/{run['id']}"))
    expect(page.locator(heatmap("chart-gradflow"))).to_have_count(1)
    page.locator("#chart-hidden").scroll_into_view_if_needed()
    expect(page.locator(heatmap("chart-hidden"))).to_have_count(1)
    loaded = time.monotonic() - t0
    frame = page.evaluate(
        """() => { const f = window.__gatescopeRun.state.frame;
           return { T: f.T, U: f.U, fullT: f.fullT, fullU: f.fullU, t1: f.tIndex[1] }; }"""
    )
    assert frame == {"T": 300, "U": 150, "fullT": 600, "fullU": 300, "t1": 2}
    flow = page.evaluate(
        "() => { const g = window.__gatescopeRun.feed.gradflow; return [g.steps, g.width]; }"
    )
    assert flow == [[0, 5, 10], 2]
    expect(page.locator("#scrub-label")).to_contain_text("pooled")
    hidden = page.evaluate("() => window.__gatescope.byChart.hidden")
    report(
        "perf-long-run",
        {
            "T": 600,
            "H": 300,
            "page_to_heatmaps_s": round(loaded, 2),
            "hidden_react_ms": [round(x, 1) for x in hidden],
        },
    )

"""Page benchmarks in headless Chromium against a real server: medians and ratios, never pass/fail.

    .venv/bin/python -m scripts.bench_pages              # all four
    .venv/bin/python -m scripts.bench_pages --only a,c   # some of them

  a  gradient flow, 2,000 probe rows x 500 timesteps: the draw time of a live update (one row
     appended) with the image heatmap (Chart + gradflowFigure + heatmap.js) and with the old path
     (Plotly.react of a heatmap trace of the whole matrix, as views.js drew it before), both in
     one page; median and p95 of each and their ratio. "draw" is the synchronous time of the
     render call; "to frame" adds the wait until the next animation frame has run.
  b  an LSTM with T = 2,000 x H = 512 (display frames pooled to 500 x 256 by the server): the run
     page from navigation until every view on it has drawn, and the websocket bytes per frame
     (Playwright's websocket events, binary messages only).
  c  a run with 10,000 probe steps (a tiny net, probe_every = 1): scrubbing on the run page from
     the first to the last probe step in 99 moves (each a frame not fetched yet), then 39 moves
     of one step (the neighbours prefetched); the time per move from the scrubber's input event
     until the hidden-state heatmap has drawn that step's frame.
  d  while a run with a probe every step streams to the run page (once its gradient flow holds
     1,500 rows): the lateness of a 20 ms timer on the page's main thread over 20 s, p95 and max.

Each part starts from a fresh page; (b)-(d) train real runs on a real server (tests.live_server)
with its own temporary data directory. The goals (issue 8) are printed next to the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, WebSocket, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LAG_MONITOR, VIEWPORT
from tests.live_server import LiveServer, serve

Figures = dict[str, Any]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> Figures:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 2),
        "p95_ms": round(percentile(values, 0.95), 2),
        "max_ms": round(max(values), 2),
    }


def poll(page: Page, script: str, timeout: float = 60.0, arg: Any = None) -> Any:
    """Evaluate `script` until it returns something truthy (the CSP forbids wait_for_function)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {script}")
        time.sleep(0.05)


def wait_for_run(http: httpx.Client, run_id: str, timeout: float = 600.0) -> Figures:
    deadline = time.monotonic() + timeout
    while True:
        run: Figures = http.get(f"/api/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run['status']} after {timeout} s")
        time.sleep(0.5)


@contextmanager
def browser_page() -> Iterator[Page]:
    """A fresh Chromium page that keeps its page errors in `page.errors`."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(120_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.errors = errors  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


# -- (a) gradient flow: image heatmap vs Plotly.react ------------------------------------------

FLOW_BENCH = """async ({ rows, cols, updates, floor }) => {
  const { Chart, CONFIG, baseLayout } = await import("/static/js/plots.js");
  const { gradflowFigure } = await import("/static/js/views.js");
  const nextFrame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const box = () => {
    const node = document.createElement("div");
    node.style.cssText = "width: 1200px; height: 360px; position: relative";
    return node;
  };
  // a vanishing gradient: row r decays over t at its own rate, with noise
  const decay = (r, x) => Math.random() * 10 ** (-(cols - x) * (r % 7) / 40);
  const makeRow = (r) => Float32Array.from({ length: cols }, (_, x) => decay(r, x));
  const flow = {
    kind: "last", layer: 0, T: cols, width: 1, t: Array.from({ length: cols }, (_, i) => i),
    steps: [], rows: [], saturation: {}, lastStep: cols - 1, version: 0, reset: 1,
  };
  const append = () => {
    const r = flow.rows.length;
    flow.rows.push(makeRow(r));
    flow.steps.push(r * 10);
    flow.version += 1;
  };
  for (let r = 0; r < rows - updates; r++) append();
  const base = flow.rows.length;

  // the old path, as views.js drew it: the whole matrix as log10 rows into one heatmap trace
  const logged = (v) => (v > 1e-300 ? Math.max(Math.log10(v), floor) : floor);
  const oldFigure = () => {
    const z = flow.rows.map((r) => Array.from(r, logged));
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of z) for (const v of r) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [{
      type: "heatmap", x: flow.t, y: flow.steps, z, customdata: flow.rows.map((r) => Array.from(r)),
      zmin: Math.floor(lo), zmax: Math.ceil(hi), colorscale: "Viridis", showscale: false,
      hovertemplate: "t %{x}, step %{y}<br>%{customdata:.3e}<extra></extra>", hoverongaps: false,
    }];
  };
  const oldNode = box();
  const newNode = box();
  const chart = new Chart(newNode, gradflowFigure, { name: "bench-flow" });
  chart.visible = true;
  const draws = {
    image: () => {
      chart.input = { flow, floor, t: null, step: flow.steps.at(-1), frame: null };
      chart.render();
    },
    react: () => Plotly.react(oldNode, oldFigure(), { ...baseLayout(), datarevision: flow.version }, CONFIG),
  };
  const out = { image: [], imageFrame: [], react: [], reactFrame: [] };
  // one path after the other, each alone on the page, over the same appended rows
  for (const path of ["image", "react"]) {
    flow.rows.length = base;
    flow.steps.length = base;
    flow.reset += 1;
    const node = path === "image" ? newNode : oldNode;
    document.body.prepend(node);
    draws[path](); // the first, full draw
    await nextFrame();
    for (let k = 0; k < updates; k++) {
      append();
      const t0 = performance.now();
      draws[path]();
      out[path].push(performance.now() - t0);
      await nextFrame();
      out[path + "Frame"].push(performance.now() - t0);
    }
    node.remove();
  }
  out.heatmap = window.__gatescope.heatmaps["bench-flow"];
  const canvas = newNode.querySelector("canvas.gs-heatmap");
  out.canvas = [canvas.width, canvas.height];
  return out;
}"""


def bench_flow(page: Page, server: LiveServer, http: httpx.Client) -> Figures:
    rows, cols, updates = 2000, 500, 40
    page.goto(server.url + "/learn")  # any page with plotly.js: the benchmark makes its own charts
    poll(page, "() => window.Plotly !== undefined")
    m = page.evaluate(FLOW_BENCH, {"rows": rows, "cols": cols, "updates": updates, "floor": -30})
    skip = 3  # warm-up
    image, react = summary(m["image"][skip:]), summary(m["react"][skip:])
    return {
        "matrix": f"{rows} rows x {cols} t, one row appended per update",
        "image_draw": image,
        "image_to_next_frame": summary(m["imageFrame"][skip:]),
        "plotly_react_draw (figure + react)": react,
        "plotly_react_to_next_frame": summary(m["reactFrame"][skip:]),
        "ratio_of_medians (react / image)": round(react["median_ms"] / image["median_ms"], 1),
        "image_paints": m["heatmap"],
        "canvas_size": m["canvas"],
        "goal": "a live update draws in < 30 ms median",
    }


# -- (b)-(d): the run page of real runs --------------------------------------------------------

# every chart of the run page (not the inspect tool's) has drawn, or shows its "nothing" message
ALL_DRAWN = """() => {
  const charts = [...document.querySelectorAll("main .chart")]
    .filter((n) => n.__chart && !n.closest("[hidden]") && !n.closest("#view-inspect"));
  const done = (c) => c.plotted || (c.input !== null && c.node.classList.contains("empty"));
  return charts.length > 0 && charts.every((n) => done(n.__chart)) && charts.map((n) => n.id);
}"""


def start_run(http: httpx.Client, config: Figures) -> str:
    answer = http.post("/api/runs", json=config)
    if answer.status_code != 201:
        raise RuntimeError(f"POST /api/runs answered {answer.status_code}: {answer.text}")
    run_id: str = answer.json()["id"]
    return run_id


BIG: Figures = {
    "cell": "lstm",
    "hidden_size": 512,
    "task": {"name": "adding", "seq_len": 2000},
    "batch_size": 2,
    "steps": 2,
    "probe_every": 1,
    "itemize": False,
}


def bench_big_frame(page: Page, server: LiveServer, http: httpx.Client) -> Figures:
    run_id = start_run(http, BIG)
    t0 = time.monotonic()
    wait_for_run(http, run_id, timeout=1800)
    trained = time.monotonic() - t0
    steps = http.get(f"/api/runs/{run_id}/probes").json()
    full = len(http.get(f"/api/runs/{run_id}/probes/{steps[-1]}").content)
    display = len(http.get(f"/api/runs/{run_id}/probes/{steps[-1]}?resolution=display").content)
    sizes: list[int] = []

    def on_message(payload: bytes | str) -> None:
        if isinstance(payload, bytes):  # frames; text messages are the snapshot, steps, status
            sizes.append(len(payload))

    def on_socket(ws: WebSocket) -> None:
        ws.on("framereceived", on_message)

    page.on("websocket", on_socket)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 6000})  # every view on screen
    loads = []
    for _ in range(3):  # a cold load (nothing cached), then two reloads (plotly.js cached)
        t0 = time.monotonic()
        page.goto(f"{server.url}/runs/{run_id}")
        charts = poll(page, ALL_DRAWN, timeout=120)
        loads.append(round(time.monotonic() - t0, 2))
    ready = page.evaluate("() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    shown = page.evaluate(
        """() => { const f = window.__gatescopeRun.state.frame;
           return { T: f.T, U: f.U, fullT: f.fullT, fullU: f.fullU }; }"""
    )
    drawing = page.evaluate(
        "() => Object.values(window.__gatescope.byChart).flat().reduce((a, b) => a + b, 0)"
    )
    return {
        "run": f"LSTM H = 512, adding T = 2,000 ({len(steps)} probe frames, trained in {trained:.0f} s)",
        "frame_on_the_page": shown,
        "navigation_to_every_view_drawn_s (cold, reload, reload)": loads,
        "of the last: scripts ready (DOMContentLoaded) at s": round(ready / 1000, 2),
        "of the last: drawing all charts took s": round(drawing / 1000, 2),
        "views": len(charts),
        "websocket_binary_messages": len(sizes),
        "websocket_bytes_per_frame": sizes,
        "display_frame_bytes": display,
        "full_frame_bytes": full,
        "goal": "every view within 2 s of load; no full-resolution frame sent",
        "page_errors": page.errors,  # type: ignore[attr-defined]
    }


# one scrubber move: the input event, then wait until the hidden state shows that step's frame
SCRUB = """async ({ positions }) => {
  const run = window.__gatescopeRun;
  const steps = run.feed.probeSteps;
  const scrub = document.getElementById("scrub");
  const hidden = run.charts.hidden;
  const shows = (step) => run.state.frame && run.state.frame.step === step
    && hidden.key !== null && String(hidden.key).startsWith(`${run.state.frame.id}|`);
  const times = [];
  const drawing = [];
  const stats = window.__gatescope;
  for (const i of positions) {
    const t0 = performance.now();
    const spent = stats.totalMs;
    scrub.value = String(i);
    scrub.dispatchEvent(new Event("input"));
    while (!shows(steps[i])) {
      if (performance.now() - t0 > 20000) throw new Error(`step ${steps[i]} never showed`);
      await new Promise((r) => requestAnimationFrame(r));
    }
    times.push(performance.now() - t0);
    drawing.push(stats.totalMs - spent);
  }
  const byChart = Object.fromEntries(Object.entries(stats.byChart).map(([k, v]) => [k, v.at(-1)]));
  return { times, drawing, byChart };
}"""

SCRUB_RUN: Figures = {
    "cell": "rnn_tanh",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 20},
    "batch_size": 4,
    "steps": 9_999,  # steps 0 .. 9,999: 10,000 probe frames
    "probe_every": 1,
}


def bench_scrub(page: Page, server: LiveServer, http: httpx.Client) -> Figures:
    run_id = start_run(http, SCRUB_RUN)
    t0 = time.monotonic()
    wait_for_run(http, run_id, timeout=3600)
    trained = time.monotonic() - t0
    t0 = time.monotonic()
    page.goto(f"{server.url}/runs/{run_id}")
    poll(page, "() => window.__gatescopeRun && window.__gatescopeRun.feed.probeSteps.length >= 10000", 120)
    page.locator("#chart-hidden").scroll_into_view_if_needed()
    poll(page, "() => window.__gatescopeRun.charts.hidden.plotted", 120)
    opened = time.monotonic() - t0
    count = page.evaluate("() => window.__gatescopeRun.feed.probeSteps.length")
    sweep = [round(k * (count - 1) / 99) for k in range(100)]  # first to last in 99 moves
    jumps = page.evaluate(SCRUB, {"positions": sweep})
    steps = page.evaluate(SCRUB, {"positions": list(range(count - 40, count))})  # one step at a time
    return {
        "run": f"tanh RNN H = 8, adding T = 20, probe_every 1 (trained in {trained:.0f} s)",
        "probe_steps_on_the_page": count,
        "open_to_hidden_state_drawn_s": round(opened, 2),
        "sweep_first_to_last (99 moves, each a new frame)": summary(jumps["times"][1:]),
        "of which drawing the charts": summary(jumps["drawing"][1:]),
        "one_step_moves (neighbours prefetched)": summary(steps["times"][1:]),
        "of which drawing the charts ": summary(steps["drawing"][1:]),
        "the last move's render per chart (ms)": {k: round(v, 1) for k, v in steps["byChart"].items()},
        "goal": "< 100 ms per move",
        "page_errors": page.errors,  # type: ignore[attr-defined]
    }


LAG_READ = """() => {
  clearInterval(window.__lagTimer);
  const s = window.__gatescope;
  return { lags: window.__lag, rows: window.__gatescopeRun.feed.gradflow.rows.length,
           flow: s.byChart.gradflow || [], paints: s.heatmaps.gradflow };
}"""

STREAM_RUN: Figures = {
    "cell": "lstm",
    "hidden_size": 32,
    "task": {"name": "adding", "seq_len": 100},
    "batch_size": 8,
    "steps": 100_000,  # stopped by the benchmark
    "probe_every": 1,
}


def bench_main_thread(page: Page, server: LiveServer, http: httpx.Client, seconds: float = 20.0) -> Figures:
    run_id = start_run(http, STREAM_RUN)
    page.goto(f"{server.url}/runs/{run_id}")
    poll(page, "() => window.__gatescopeRun && window.__gatescopeRun.charts.gradflow.plotted", 120)
    rows = "() => window.__gatescopeRun.feed.gradflow.rows.length"
    poll(page, f"() => ({rows})() >= 1500", 600)  # as long a history as the issue measured
    rows0 = page.evaluate(rows)
    page.evaluate(LAG_MONITOR)
    time.sleep(seconds)
    m = page.evaluate(LAG_READ)
    # the same timer in a blank page of the same browser while the run still trains: what the
    # machine's load alone costs (the CPU is shared with the worker, the server and more)
    blank = page.context.new_page()
    blank.goto(f"{server.url}/static/favicon.svg")
    blank.evaluate(LAG_MONITOR)
    time.sleep(seconds / 2)
    idle = blank.evaluate("() => { clearInterval(window.__lagTimer); return window.__lag; }")
    blank.close()
    http.post(f"/api/runs/{run_id}/stop")
    wait_for_run(http, run_id)
    return {
        "run": "LSTM H = 32, adding T = 100, probe_every 1, streaming to the run page",
        "seconds_measured": seconds,
        "gradflow_rows": f"{rows0} -> {m['rows']}",
        "gradflow_render": summary(m["flow"]) if m["flow"] else None,
        "gradflow_paints": m["paints"],
        "timer_ticks": len(m["lags"]),
        "timer_lateness_p95_ms": round(percentile(m["lags"], 0.95), 1),
        "timer_lateness_max_ms": round(max(m["lags"]), 1),
        "baseline: a blank page meanwhile, p95 / max ms": [
            round(percentile(idle, 0.95), 1),
            round(max(idle), 1),
        ],
        "goal": "a 20 ms timer late by < 50 ms at p95, < 200 ms at worst",
        "page_errors": page.errors,  # type: ignore[attr-defined]
    }


PARTS: dict[str, tuple[str, Callable[[Page, LiveServer, httpx.Client], Figures]]] = {
    "a": ("gradient flow 2,000 x 500: image vs Plotly.react", bench_flow),
    "b": ("LSTM T = 2,000 x H = 512: the run page's load and websocket bytes", bench_big_frame),
    "c": ("10,000 probe steps: scrubbing", bench_scrub),
    "d": ("the main thread while a run streams", bench_main_thread),
}


def show(figures: Figures) -> None:
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"  {key}: {value}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated parts (a, b, c, d)")
    chosen = [p.strip() for p in parser.parse_args().only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}: choose from {sorted(PARTS)}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp,
        serve(Path(tmp)) as server,
        httpx.Client(base_url=server.url, timeout=120.0) as http,
    ):
        for part in chosen:
            title, bench = PARTS[part]
            print(f"({part}) {title}", flush=True)
            with browser_page() as page:
                show(bench(page, server, http))


if __name__ == "__main__":
    main()

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
  c  a run with 10,000 probe steps (a tiny net, probe_every = 1): scrubbing from the first to the
     last probe step on the run page; the time per move from the scrubber's input event until
     the hidden-state heatmap shows that step's frame.
  d  while a run with a probe every step streams to the run page: the lateness of a 20 ms timer
     on the page's main thread, p95 and max.

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

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
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


# -- (a) gradient flow: image heatmap vs Plotly.react ------------------------------------------

FLOW_BENCH = """async ({rows, cols, updates, floor}) => {
  const { Chart, CONFIG, baseLayout } = await import("/static/js/plots.js");
  const { gradflowFigure } = await import("/static/js/views.js");
  const nextFrame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const box = () => {
    const node = document.createElement("div");
    node.style.cssText = "width: 1200px; height: 360px; position: relative";
    document.body.prepend(node);
    return node;
  };
  // a vanishing gradient: row r decays over t at its own rate, with noise
  const makeRow = (r) => Float32Array.from({ length: cols }, (_, x) => Math.random() * 10 ** (-(cols - x) * (r % 7) / 40));
  const flow = { kind: "last", layer: 0, T: cols, width: 1, t: Array.from({ length: cols }, (_, i) => i),
                 steps: [], rows: [], saturation: {}, lastStep: cols - 1, version: 0, reset: 1 };
  for (let r = 0; r < rows - updates; r++) { flow.rows.push(makeRow(r)); flow.steps.push(r * 10); }
  const append = () => { const r = flow.rows.length; flow.rows.push(makeRow(r)); flow.steps.push(r * 10); flow.version += 1; };

  // the old path, as views.js drew it: the whole matrix as log10 rows into one heatmap trace
  const oldNode = box();
  oldNode.remove();
  const oldFigure = () => {
    const z = flow.rows.map((r) => Array.from(r, (v) => (v > 1e-300 ? Math.max(Math.log10(v), floor) : floor)));
    let lo = Infinity, hi = -Infinity;
    for (const r of z) for (const v of r) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return [{ type: "heatmap", x: flow.t, y: flow.steps, z, customdata: flow.rows.map((r) => Array.from(r)),
              zmin: Math.floor(lo), zmax: Math.ceil(hi), colorscale: "Viridis", showscale: false,
              hovertemplate: "t %{x}, step %{y}<br>%{customdata:.3e}<extra></extra>", hoverongaps: false }];
  };
  const newNode = box();
  const chart = new Chart(newNode, gradflowFigure, { name: "bench-flow" });
  chart.visible = true;
  const out = { image: [], imageFrame: [], react: [], reactFrame: [] };
  const base = flow.rows.length;
  // one path after the other, each alone on the page, over the same appended rows
  for (const path of ["image", "react"]) {
    flow.rows.length = flow.steps.length = base;
    flow.reset += 1;
    const node = path === "image" ? newNode : oldNode;
    document.body.prepend(node);
    const draw = path === "image"
      ? (k) => { chart.input = { flow, floor, t: null, step: flow.steps.at(-1), frame: null }; chart.render(); }
      : (k) => Plotly.react(oldNode, oldFigure(), { ...baseLayout(), datarevision: k }, CONFIG);
    draw(-1); // the first, full draw
    await nextFrame();
    for (let k = 0; k < updates; k++) {
      append();
      const t0 = performance.now();
      draw(k);
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


def bench_flow(page: Page, server: LiveServer, rows: int = 2000, cols: int = 500, updates: int = 40) -> Figures:
    page.goto(server.url + "/learn")  # any page with plotly.js: the benchmark makes its own charts
    poll(page, "() => window.Plotly !== undefined")
    m = page.evaluate(FLOW_BENCH, {"rows": rows, "cols": cols, "updates": updates, "floor": -30})
    skip = 3  # warm-up
    image, react = summary(m["image"][skip:]), summary(m["react"][skip:])
    return {
        "matrix": f"{rows} rows x {cols} t",
        "image_draw": image,
        "image_to_frame": summary(m["imageFrame"][skip:]),
        "plotly_react_draw": react,
        "plotly_react_to_frame": summary(m["reactFrame"][skip:]),
        "ratio_median_draw_react_over_image": round(react["median_ms"] / image["median_ms"], 1),
        "image_redraws": m["heatmap"],
        "canvas": m["canvas"],
        "goal": "live update < 30 ms median",
    }


# -- (b)-(d): the run page of real runs --------------------------------------------------------

@contextmanager
def browser_page() -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(120_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.errors = errors  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


CHARTS_DRAWN = """(ids) => ids.every((id) => {
  const node = document.getElementById(id);
  return node && (node.dataset.heatmap === "drawn" || node.querySelector(".main-svg .plot path, .main-svg .plot .trace"));
})"""

RUN_PAGE_VIEWS = ["chart-loss", "chart-gradflow", "chart-gradlines", "chart-hidden", "chart-connectivity"]


def bench_big_frame(page: Page, server: LiveServer, http: httpx.Client) -> Figures:
    config = {
        "cell": "lstm",
        "hidden_size": 512,
        "task": {"name": "adding", "seq_len": 2000},
        "batch_size": 2,
        "steps": 4,
        "probe_every": 2,
        "itemize": False,
    }
    run = http.post("/api/runs", json=config)
    run.raise_for_status()
    run_id = run.json()["id"]
    wait_for_run(http, run_id)
    sizes: list[int] = []

    def on_socket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: isinstance(payload, bytes) and sizes.append(len(payload)))

    page.on("websocket", on_socket)
    t0 = time.monotonic()
    page.goto(f"{server.url}/runs/{run_id}")
    poll(page, CHARTS_DRAWN, arg=["chart-loss", "chart-gradflow"])
    first = time.monotonic() - t0
    # every view: scroll through the page (charts draw when on screen)
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height + VIEWPORT["height"], VIEWPORT["height"] // 2):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    poll(page, CHARTS_DRAWN, arg=RUN_PAGE_VIEWS)
    every = time.monotonic() - t0
    full = http.get(f"/api/runs/{run_id}/probes/{4}").content
    shown = page.evaluate(
        "() => { const f = window.__gatescopeRun.state.frame; return {T: f.T, U: f.U, fullT: f.fullT, fullU: f.fullU}; }"
    )
    return {
        "run": "LSTM, H = 512, adding T = 2,000",
        "frame_shown": shown,
        "load_to_first_views_s": round(first, 2),
        "load_to_every_view_s (scrolled through)": round(every, 2),
        "websocket_binary_messages": len(sizes),
        "websocket_bytes_per_frame": sizes,
        "full_frame_bytes": len(full),
        "goal": "every view within 2 s; no full-resolution frame sent",
        "page_errors": page.errors,  # type: ignore[attr-defined]
    }


SCRUB = """async ({moves}) => {
  const run = window.__gatescopeRun;
  const steps = run.feed.probeSteps;
  const scrub = document.getElementById("scrub");
  const picks = Array.from({ length: moves }, (_, k) => Math.round((k * (steps.length - 1)) / (moves - 1)));
  const times = [];
  for (const i of picks) {
    const t0 = performance.now();
    scrub.value = String(i);
    scrub.dispatchEvent(new Event("input"));
    const deadline = t0 + 10000;
    while (!(run.state.frame && run.state.frame.step === steps[i] && document.getElementById("chart-hidden").__chart.key !== null
             && !document.getElementById("chart-hidden").__chart.input?.frame !== undefined
             && performance.now() < deadline)) {
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      if (run.state.frame && run.state.frame.step === steps[i]) break;
    }
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))); // its charts drawn
    times.push(performance.now() - t0);
  }
  return { steps: steps.length, first: steps[0], last: steps.at(-1), times };
}"""


def bench_scrub(page: Page, server: LiveServer, http: httpx.Client, steps: int = 10_000) -> Figures:
    config = {
        "cell": "rnn_tanh",
        "hidden_size": 8,
        "task": {"name": "adding", "seq_len": 20},
        "batch_size": 4,
        "steps": steps,
        "probe_every": 1,
    }
    run = http.post("/api/runs", json=config)
    run.raise_for_status()
    run_id = run.json()["id"]
    t0 = time.monotonic()
    wait_for_run(http, run_id, timeout=1800)
    trained = time.monotonic() - t0
    t0 = time.monotonic()
    page.goto(f"{server.url}/runs/{run_id}")
    poll(page, "() => window.__gatescopeRun && window.__gatescopeRun.feed.probeSteps.length", timeout=120)
    poll(page, CHARTS_DRAWN, arg=["chart-gradflow", "chart-hidden"], timeout=120)
    opened = time.monotonic() - t0
    m = page.evaluate(SCRUB, {"moves": 60})
    return {
        "run": f"tanh RNN H = 8, adding T = 20, {steps} steps, probe_every 1 (trained in {trained:.0f} s)",
        "probe_steps_on_page": m["steps"],
        "open_to_views_s": round(opened, 2),
        "scrub_move": summary(m["times"][1:]),
        "goal": "< 100 ms per move",
        "page_errors": page.errors,  # type: ignore[attr-defined]
    }


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


def bench_main_thread(page: Page, server: LiveServer, http: httpx.Client, seconds: float = 20.0) -> Figures:
    config = {
        "cell": "lstm",
        "hidden_size": 64,
        "task": {"name": "adding", "seq_len": 100},
        "batch_size": 8,
        "steps": 100_000,
        "probe_every": 1,
    }
    run = http.post("/api/runs", json=config)
    run.raise_for_status()
    run_id = run.json()["id"]
    page.goto(f"{server.url}/runs/{run_id}")
    poll(page, CHARTS_DRAWN, arg=["chart-gradflow"], timeout=120)
    rows0 = page.evaluate("() => window.__gatescopeRun.feed.gradflow.rows.length")
    page.evaluate(LAG_MONITOR)
    time.sleep(seconds)
    m = page.evaluate(
        """() => { clearInterval(window.__lagTimer);
           return { lags: window.__lag, rows: window.__gatescopeRun.feed.gradflow.rows.length,
                    flow: window.__gatescope.byChart.gradflow || [], heatmap: window.__gatescope.heatmaps.gradflow }; }"""
    )
    http.post(f"/api/runs/{run_id}/stop")
    wait_for_run(http, run_id)
    return {
        "run": "LSTM H = 64, adding T = 100, probe_every 1, streaming",
        "seconds": seconds,
        "gradflow_rows_added": m["rows"] - rows0,
        "gradflow_rows_now": m["rows"],
        "gradflow_render": summary(m["flow"]) if m["flow"] else None,
        "gradflow_image": m["heatmap"],
        "timer_lateness_p95_ms": round(percentile(m["lags"], 0.95), 1),
        "timer_lateness_max_ms": round(max(m["lags"]), 1),
        "timer_ticks": len(m["lags"]),
        "goal": "p95 < 50 ms, max < 200 ms",
        "page_errors": page.errors,  # type: ignore[attr-defined]
    }


PARTS: dict[str, tuple[str, Callable[..., Figures]]] = {
    "a": ("gradient flow 2,000 x 500: image vs Plotly.react", bench_flow),
    "b": ("LSTM T = 2,000 x H = 512: page load and websocket bytes", bench_big_frame),
    "c": ("10,000 probe steps: scrubbing", bench_scrub),
    "d": ("main thread while a run streams", bench_main_thread),
}


def show(name: str, figures: Figures, indent: str = "  ") -> None:
    for key, value in figures.items():
        if isinstance(value, dict):
            print(f"{indent}{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            print(f"{indent}{key}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated parts (a, b, c, d)")
    chosen = [p.strip() for p in parser.parse_args().only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}: choose from {sorted(PARTS)}")
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp, serve(Path(tmp)) as server:
        with httpx.Client(base_url=server.url, timeout=60.0) as http:
            for part in chosen:
                title, bench = PARTS[part]
                print(f"({part}) {title}", flush=True)
                with browser_page() as page:
                    figures = bench(page, server) if part == "a" else bench(page, server, http)
                show(part, figures)


if __name__ == "__main__":
    main()

"""The figure functions (static/js/views.js, curves.js) and the image heatmap (static/js/heatmap.js)
on real frames of real runs, in Chromium: colour ranges per layer; every time axis labelled t, with
the input at each t in a row under it (characters, or adding's values as bars) and in every hover;
the task's marks and spans on every time axis; the columns after the last loss term hatched as "no
loss here"; a heatmap's hover readout and clicks; empty views that say why; tick labels inside
their chart and titles off their ticks. Each test draws charts into the page itself (modules
imported in page.evaluate), so it reads the pixels and SVG that the run page would show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import wait_for_run

# Load one probe frame (display resolution) of a run, and a Chart maker that records clicks.
SETUP = """async ({ runId, step }) => {
  const { decodeFrame } = await import("/static/js/frame.js");
  const plots = await import("/static/js/plots.js");
  const views = await import("/static/js/views.js");
  const figures = { ...views, ...(await import("/static/js/curves.js")) };
  const cat = await (await fetch("/api/catalog")).json();
  const task = await (await fetch(`/api/runs/${runId}/task`)).json();
  const steps = await (await fetch(`/api/runs/${runId}/probes`)).json();
  const at = step ?? steps.at(-1);
  const bytes = await (await fetch(`/api/runs/${runId}/probes/${at}?resolution=display`)).arrayBuffer();
  const frame = decodeFrame(bytes);
  window.__clicks = [];
  const lstm = cat.cells.find((c) => c.name === "lstm");
  const gateKinds = Object.fromEntries(Object.entries(lstm.views).map(([n, v]) => [n, v.kind]));
  window.__t = { frame, cat, task, views, figures, plots, gateKinds, charts: {},
    draw(id, figure, input, height = 240) {
      const node = document.createElement("div");
      node.id = id;
      node.style.cssText = `width: 640px; height: ${height}px; position: relative; background: #fff`;
      const legendNode = document.createElement("div");
      document.body.prepend(node, legendNode);
      const onClick = (p) => window.__clicks.push(p);
      const chart = new plots.Chart(node, figures[figure], { name: id, legend: legendNode, onClick });
      chart.visible = true;
      chart.input = input;
      chart.render();
      this.charts[id] = { chart, legendNode };
      return chart;
    },
  };
  const { T, L, U, marks, lastStep } = frame;
  return { T, L, U, marks, lastStep, floor: cat.display.floor };
}"""

# the RGBA of a cell of a drawn heatmap, read back from its canvas (row i, column j of the matrix)
PIXEL = """([id, i, j]) => {
  const canvas = document.querySelector(`#${id} canvas.gs-heatmap`);
  return Array.from(canvas.getContext("2d").getImageData(j, i, 1, 1).data);
}"""


def trained(http: httpx.Client, config: dict[str, Any]) -> str:
    run = http.post("/api/runs", json=config)
    assert run.status_code == 201, run.text
    assert wait_for_run(http, run.json()["id"])["status"] == "completed"
    run_id: str = run.json()["id"]
    return run_id


def setup(page: Page, url: Callable[[str], str], run_id: str) -> dict[str, Any]:
    page.goto(url("/learn"))
    info: dict[str, Any] = page.evaluate(SETUP, {"runId": run_id, "step": None})
    return info


@pytest.fixture(scope="module")
def lstm_2_layers(http: httpx.Client) -> str:
    return trained(
        http,
        {
            "cell": "lstm",
            "hidden_size": 16,
            "num_layers": 2,
            "task": {"name": "adding", "seq_len": 40},
            "batch_size": 8,
            "steps": 40,
            "probe_every": 20,
        },
    )


def test_cell_state_and_relu_h_colour_ranges_are_per_layer(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client, lstm_2_layers: str
) -> None:
    page = gs_page
    assert setup(page, url, lstm_2_layers)["L"] == 2
    ranges = page.evaluate(
        """() => { const { frame, views } = window.__t;
           return [0, 1].map((layer) => {
             const n = frame.T * frame.U;
             const block = frame.arrays.c.data.subarray(layer * n, (layer + 1) * n);
             const own = block.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
             const fig = views.stateFigure({ frame, name: "c", layer });
             return { own, legend: [fig.legend.min, fig.legend.max] };
           }); }"""
    )
    for r in ranges:
        assert r["legend"] == pytest.approx([-r["own"], r["own"]], rel=1e-6)
    assert ranges[0]["own"] != pytest.approx(ranges[1]["own"], rel=1e-3), "two layers, two ranges"
    # the cell of layer 0 with the largest |c| is drawn at an end of RdBu, not in the middle
    cell = page.evaluate(
        """() => { const { frame } = window.__t;
           const n = frame.T * frame.U;
           let best = 0;
           const c = frame.arrays.c.data;
           for (let k = 0; k < n; k++) if (Math.abs(c[k]) > Math.abs(c[best])) best = k;
           window.__t.draw("c0", "stateFigure", { frame, name: "c", layer: 0 });
           return { unit: best % frame.U, t: Math.floor(best / frame.U), positive: c[best] > 0 }; }"""
    )
    rgba = page.evaluate(PIXEL, ["c0", cell["unit"], cell["t"]])
    assert rgba == ([0x67, 0x00, 0x1F, 255] if cell["positive"] else [0x05, 0x30, 0x61, 255])

    relu = trained(
        http,
        {
            "cell": "rnn_relu",
            "hidden_size": 16,
            "num_layers": 2,
            "init": {"scheme": "identity", "gain": 1},
            "task": {"name": "adding", "seq_len": 20},
            "batch_size": 4,
            "steps": 20,
            "probe_every": 10,
        },
    )
    setup(page, url, relu)
    legends = page.evaluate(
        """() => { const { frame, views } = window.__t;
           const n = frame.T * frame.U;
           const biggest = (a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
           return [0, 1].map((layer) => [
             biggest(frame.arrays.h.data.subarray(layer * n, (layer + 1) * n)),
             views.stateFigure({ frame, name: "h", layer, relu: true }).legend.max,
           ]); }"""
    )
    for own, shown in legends:
        assert shown == pytest.approx(own)
    assert legends[0][0] != pytest.approx(legends[1][0], rel=1e-3)


# Draw every time-axis view of the loaded frame (with the run's task) and read back what each
# shows: its x tick labels, the input row (characters, or the bars' pixels), the marked bands and
# pink spans as timesteps, the legend's note, and the hover words at every column.
TIME_VIEWS = """async () => { const t = window.__t; const { frame, cat, task } = t;
  const floor = cat.display.floor;
  const g = await (await fetch(`/api/runs/${frame.runId}/gradflow?kind=last&layer=0`)).json();
  const flow = { kind: g.kind, layer: g.layer, T: g.T, width: g.width, t: g.t, steps: g.steps,
                 rows: g.z.map((r) => Float32Array.from(r)), saturation: g.saturation,
                 lastStep: g.last_step, version: 1, reset: 1 };
  const gate = frame.gates[0];
  const views = {
    gradflow: ["gradflowFigure", { flow, floor, frame, task }],
    hidden: ["stateFigure", { frame, name: "h", task }],
    gate: ["stateFigure", { frame, name: `gates.${gate}`, gateKinds: t.gateKinds, task }],
    connectivity: ["connectivityFigure", { frame, floor, task }],
    lines: ["gradLinesFigure", { frame, floor, which: ["grad_h_last", "grad_h"], task }],
    itemized: ["itemizedFigure", { frame, floor, task }],
  };
  const out = {};
  for (const [id, [figure, input]] of Object.entries(views)) {
    const chart = t.draw(id, figure, input);
    const node = document.getElementById(id);
    if (!chart.plotted) continue; // itemized of a many-to-one task: a sentence (tested elsewhere)
    const labels = [...node.querySelectorAll(".xtick text")];
    const boxes = labels.map((n) => n.getBoundingClientRect()).sort((a, b) => a.left - b.left);
    const overlaps = boxes.slice(1).filter((b, k) => b.left < boxes[k].right).length;
    const vermilion = (n) => n.innerHTML.includes("213, 94, 0") || n.innerHTML.includes("#D55E00");
    const box = node.getBoundingClientRect();
    const size = node._fullLayout._size;
    const { l, w } = size;
    const [r0, r1] = node._fullLayout.xaxis.range;
    const at = (x) => r0 + ((x - box.left - l) / w) * (r1 - r0); // a page x -> the axis value
    const ends = (r) => [Math.round(at(r.left) + 0.5), Math.round(at(r.right) - 0.5)];
    const rects = (sel) => [...node.querySelectorAll(sel)].map((b) => b.getBoundingClientRect());
    const shown = (sel) => rects(sel).filter((r) => r.width >= 2);
    const mid = (r) => Math.round(at((r.left + r.right) / 2));
    const row = node.querySelector(".gs-inputs");
    const text = [...node.querySelectorAll(".gs-input-text span")].map((s) => ({
      t: Number(s.dataset.t), text: s.textContent, centre: mid(s.getBoundingClientRect()),
    }));
    const bars = node.querySelector(".gs-input-bars");
    const hovers = chart.layer.spec
      ? Array.from({ length: frame.T }, (_, j) => chart.layer.spec.hover(0, j))
      : node.data[0].customdata.map((c, j) => `t ${j}${c}`);
    out[id] = {
      ticks: labels.map((n) => n.textContent), overlaps,
      marked: labels.filter(vermilion).map((n) => n.textContent),
      bands: shown(".gs-band").map(mid),
      spans: shown(".gs-span").map(ends),
      rowShown: !!row && !row.hidden,
      rowBelowPlot: row ? Math.round(row.getBoundingClientRect().top - box.top - size.t - size.h) : null,
      text, bars: bars && !bars.hidden ? [bars.width, bars.height] : null,
      note: t.charts[id].legendNode.textContent, hovers,
    };
  }
  return out;
}"""

# the bars of a drawn input row: per column, how many pixels are painted and in which colour
BARS = """(id) => {
  const canvas = document.querySelector(`#${id} canvas.gs-input-bars`);
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  return Array.from({ length: canvas.width }, (_, j) => {
    let painted = 0; let colour = null;
    for (let i = 0; i < canvas.height; i++) {
      const k = (i * canvas.width + j) * 4;
      if (d[k + 3]) { painted += 1; colour = [d[k], d[k + 1], d[k + 2]]; }
    }
    return { painted, colour };
  });
}"""


def is_t_axis(ticks: list[str], T: int) -> bool:
    """Tick labels that are timesteps: integers below T, ascending."""
    values = [int(t) for t in ticks if t.isdigit()]
    return len(values) == len(ticks) and values == sorted(values) and all(0 <= v < T for v in values)


def test_adding_time_axes_label_t_show_the_values_as_bars_and_mark_the_marked_steps(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = trained(
        http,
        {
            "cell": "gru",
            "hidden_size": 16,
            "task": {"name": "adding", "seq_len": 200},
            "batch_size": 4,
            "steps": 20,
            "probe_every": 10,
        },
    )
    page = gs_page
    info = setup(page, url, run_id)
    marks = info["marks"]
    assert len(marks) == 2
    drawn = page.evaluate(TIME_VIEWS)
    tokens = page.evaluate("() => window.__t.frame.tokens")
    values = page.evaluate(
        "() => Array.from(window.__t.frame.arrays.inputs.data.filter((_, k) => k % 2 === 0))"
    )
    assert set(drawn) == {"gradflow", "hidden", "gate", "connectivity", "lines"}  # itemized: one loss step
    for view, figure in drawn.items():
        assert is_t_axis(figure["ticks"], info["T"]) and len(figure["ticks"]) >= 5, (view, figure["ticks"])
        assert figure["overlaps"] == 0, (view, figure)
        assert figure["marked"] == [str(t) for t in marks], (view, figure)  # the marked t, in vermilion
        assert figure["bands"] == marks, (view, figure)
        assert figure["rowShown"] and figure["bars"] == [info["T"], 14] and figure["text"] == [], (
            view,
            figure,
        )
        assert 0 <= figure["rowBelowPlot"] <= 2, (view, figure)  # right under the plot area
        assert f"marked (t = {marks[0]}, {marks[1]})" in figure["note"] or view == "lines", (view, figure)
        for t in range(info["T"]):  # every hover names the input at its t, and the marked ones say so
            assert f"t {t} · input {tokens[t]}" in figure["hovers"][t], (view, t, figure["hovers"][t])
            assert ("· marked" in figure["hovers"][t]) == (t in marks), (view, t)
        bars = page.evaluate(BARS, view)
        for t, bar in enumerate(bars):  # one bar per t, as tall as its value, vermilion at the marks
            assert bar["painted"] == max(1, round(values[t] * 14)), (view, t, bar, values[t])
            assert bar["colour"] == ([213, 94, 0] if t in marks else [138, 144, 153]), (view, t, bar)


def test_char_lm_and_copy_time_axes_show_the_characters_under_t_and_the_tasks_spans(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    hello = trained(
        http,
        {
            "cell": "lstm",
            "hidden_size": 8,
            "task": {"name": "char_lm", "corpus": "hello"},
            "probe_text": "hellohello",
            "batch_size": 1,
            "steps": 10,
            "probe_every": 10,
        },
    )
    page = gs_page
    info = setup(page, url, hello)
    drawn = page.evaluate(TIME_VIEWS)
    tokens = list("hellohello")
    assert set(drawn) == {"gradflow", "hidden", "gate", "connectivity", "lines", "itemized"}
    for view, figure in drawn.items():
        assert figure["ticks"] == [str(t) for t in range(10)], (view, figure["ticks"])
        # each character under its own t, and named by every hover at that t
        assert figure["text"] == [{"t": t, "text": c, "centre": t} for t, c in enumerate(tokens)], (
            view,
            figure,
        )
        assert figure["bars"] is None and figure["spans"] == [] and figure["bands"] == []
        for t, c in enumerate(tokens):
            assert f"{t} · input ‘{c}’" in figure["hovers"][t], (view, t, figure["hovers"][t])
    # the row itself reads out its input on hover
    page.locator("#hidden").scroll_into_view_if_needed()
    box = page.locator("#hidden .gs-input-text span[data-t='4']").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.evaluate(
        "() => { const n = document.querySelector('#hidden .gs-tip'); return !n.hidden && n.textContent; }"
    )
    assert tip == "t 4 · input ‘o’"
    assert info["T"] == 10

    copy = trained(
        http,
        {
            "cell": "gru",
            "hidden_size": 8,
            "task": {"name": "copy", "seq_len": 6, "n_symbols": 3},
            "batch_size": 4,
            "steps": 10,
            "probe_every": 10,
        },
    )
    info = setup(page, url, copy)
    assert info["T"] == 12 and info["marks"] == [8]  # K + delay - 1: the delimiter
    drawn = page.evaluate(TIME_VIEWS)
    tokens = page.evaluate("() => window.__t.frame.tokens")
    for view, figure in drawn.items():
        assert is_t_axis(figure["ticks"], 12) and figure["marked"] == ["8"], (view, figure["ticks"])
        assert figure["spans"] == [[0, 2], [9, 11]], (view, figure)  # the symbols, the recall window
        assert figure["bands"] == [8], (view, figure)
        assert [x["text"] for x in figure["text"]] == tokens, (view, figure)
        assert "pink: symbols to copy (t = 0–2)" in figure["note"] or view == "lines", (view, figure)
        assert "pink: recall window (t = 9–11)" in figure["note"] or view == "lines", (view, figure)
        hovers = figure["hovers"]
        assert "symbols to copy" in hovers[2] and "symbols to copy" not in hovers[3], (view, hovers)
        assert "· delimiter" in hovers[8] and "recall window" in hovers[9] and "recall window" in hovers[11]


def test_columns_after_the_last_loss_term_are_hatched_no_loss_not_a_vanished_gradient(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = trained(
        http,
        {
            "cell": "lstm",
            "hidden_size": 8,
            "task": {"name": "char_lm", "corpus": "hello"},
            "probe_text": "hellohello",
            "batch_size": 1,
            "steps": 20,
            "probe_every": 10,
        },
    )
    page = gs_page
    info = setup(page, url, run_id)
    assert info["T"] == 10 and info["lastStep"] == 8  # the last character predicts nothing
    found = page.evaluate(
        """() => { const t = window.__t; const { frame, cat } = t; const floor = cat.display.floor;
           t.draw("conn", "connectivityFigure", { frame, floor }, 120);
           t.draw("lines", "gradLinesFigure", { frame, floor, which: ["grad_h_last", "grad_h"] });
           const lines = document.getElementById("lines");
           const fig = t.views.connectivityFigure({ frame, floor });
           const hatch = document.querySelector("#conn .gs-noloss");
           const canvas = document.querySelector("#conn canvas.gs-heatmap").getBoundingClientRect();
           const h = hatch.getBoundingClientRect();
           return { noLossFrom: fig.image.noLossFrom, hover: fig.image.hover(0, 9),
                    before: fig.image.hover(0, 8), note: t.charts.conn.legendNode.textContent,
                    hatchShown: !hatch.hidden, hatchFraction: h.width / canvas.width,
                    hatchRight: Math.round(h.right - canvas.right),
                    lineLast: lines.data.map((d) => d.y.at(-1)),
                    lineBefore: lines.data.map((d) => d.y.at(-2)) }; }"""
    )
    assert found["noLossFrom"] == 9
    assert "no loss here" in found["hover"] and "no loss here" not in found["before"]
    assert "hatched: no loss at t ≥ 9" in found["note"]
    assert found["hatchShown"] and found["hatchFraction"] == pytest.approx(0.1, abs=0.01)
    assert found["hatchRight"] == 0
    assert page.evaluate(PIXEL, ["conn", 0, 9])[3] == 0  # no colour under the hatch
    assert page.evaluate(PIXEL, ["conn", 0, 8])[3] == 255
    assert found["lineLast"] == [None, None] and None not in found["lineBefore"]
    # the line chart greys the same columns, and says why on hover
    hatch = page.locator("#lines .gs-noloss").bounding_box()
    assert hatch is not None and hatch["width"] > 10
    page.mouse.move(hatch["x"] + hatch["width"] / 2, hatch["y"] + hatch["height"] / 2)
    tip = page.evaluate(
        "() => { const n = document.querySelector('#lines .gs-tip'); return !n.hidden && n.textContent; }"
    )
    assert tip and "no loss here" in tip


def test_a_heatmap_cell_hovers_its_value_and_clicks_its_timestep_and_unit(
    gs_page: Page, url: Callable[[str], str], lstm_2_layers: str
) -> None:
    page = gs_page
    info = setup(page, url, lstm_2_layers)
    size = page.evaluate(
        """() => { const { frame } = window.__t;
           window.__t.draw("h1", "stateFigure", { frame, name: "h", layer: 1 });
           return document.getElementById("h1")._fullLayout._size; }"""
    )
    box = page.locator("#h1").bounding_box()
    assert box is not None
    t, unit = 7, 3  # the centre of that cell
    x = box["x"] + size["l"] + size["w"] * (t + 0.5) / info["T"]
    y = box["y"] + size["t"] + size["h"] * (1 - (unit + 0.5) / info["U"])
    page.mouse.move(x, y)
    tip = page.evaluate(
        "() => { const n = document.querySelector('#h1 .gs-tip'); return n.hidden ? null : n.textContent; }"
    )
    value = page.evaluate(
        f"() => {{ const f = window.__t.frame; return f.arrays.h.data[f.T * f.U + {t} * f.U + {unit}]; }}"
    )
    assert tip is not None and tip.startswith(f"t {t} ") and f"unit {unit}\n" in tip
    assert tip.endswith(f"h = {value:.4f}")
    page.mouse.click(x, y)
    assert page.evaluate("() => window.__clicks") == [{"x": t, "y": unit}]
    page.mouse.move(box["x"] + 2, box["y"] + 2)  # outside the plot area: no readout
    assert page.evaluate("() => document.querySelector('#h1 .gs-tip').hidden")


# Charts whose labels were clipped or overlapped: a loss of 1.5e36 (an exploding run), gradient
# norms down to 1e-16 on a log axis titled "norm", the loss with its baseline; each chart's tick
# labels, axis titles and the baseline's label, as boxes relative to the chart.
AXIS_BOXES = """() => { const t = window.__t; const { frame, cat } = t; const floor = cat.display.floor;
  const n = 40;
  const steps = Array.from({ length: n }, (_, i) => i + 1);
  const metrics = { version: 1, step: steps, loss: steps.map((s) => 1.5e36 / s),
    metric: steps.map(() => null), gradNorm: steps.map((s) => 10 ** (s % 7)),
    gradNormClipped: steps.map(() => 1), clipped: steps.map((s) => s % 2 === 0),
    params: {}, updateRatio: steps.map(() => null), lr: steps.map(() => null) };
  const probe = Object.assign(document.createElement("div"), { className: "chart strip" });
  document.body.append(probe);
  const stripHeight = probe.getBoundingClientRect().height; // as style.css makes it
  probe.remove();
  const calm = { ...metrics, loss: steps.map((s) => 0.2 + 0.5 / s + 0.02 * Math.sin(s)) };
  const charts = {
    huge: ["lossFigure", { metrics }],
    norm: ["gradLinesFigure", { frame, floor, which: ["grad_h_last", "grad_h"] }],
    gradnorm: ["gradNormFigure", { metrics, clip: { mode: "norm", threshold: 1 } }],
    baseline: ["lossFigure", { metrics: calm, baseline: 0.25 }],
    strip: ["connectivityFigure", { frame, floor, task: t.task }, stripHeight], // the run page's strip
  };
  const out = {};
  for (const [id, [figure, input, height]] of Object.entries(charts)) {
    t.draw(id, figure, input, height);
    const node = document.getElementById(id);
    const box = node.getBoundingClientRect();
    const rel = (r) => ({ left: r.left - box.left, right: r.right - box.left,
                          top: r.top - box.top, bottom: r.bottom - box.top });
    const all = (sel) => [...node.querySelectorAll(sel)].map((e) => rel(e.getBoundingClientRect()));
    const size = node._fullLayout._size;
    out[id] = { width: box.width, height: box.height, xticks: all(".xtick text"), yticks: all(".ytick text"),
      xtitle: all(".g-xtitle text")[0], ytitle: all(".g-ytitle text")[0],
      ytickText: [...node.querySelectorAll(".ytick text")].map((e) => e.textContent),
      annotations: all(".annotation"),
      annotationText: [...node.querySelectorAll(".annotation")].map((e) => e.textContent),
      plot: { top: size.t, left: size.l, right: size.l + size.w, bottom: size.t + size.h } };
  }
  return out;
}"""


def test_tick_labels_fit_their_chart_titles_keep_off_them_and_the_baseline_label_off_the_curve(
    gs_page: Page, url: Callable[[str], str], lstm_2_layers: str
) -> None:
    page = gs_page
    setup(page, url, lstm_2_layers)
    charts = page.evaluate(AXIS_BOXES)
    assert any("10" in t and "36" in t for t in charts["huge"]["ytickText"]), charts["huge"]["ytickText"]
    for name, c in charts.items():
        for label in c["xticks"] + c["yticks"]:  # every tick label inside the chart: none clipped
            assert label["left"] >= -0.5 and label["right"] <= c["width"] + 0.5, (name, label)
            assert label["top"] >= -0.5 and label["bottom"] <= c["height"] + 0.5, (name, label)
        if c["yticks"]:  # "norm" off its ticks
            left_of_ticks = min(label["left"] for label in c["yticks"])
            assert c["ytitle"]["right"] <= left_of_ticks, (name, c["ytitle"], left_of_ticks)
        below_ticks = max(label["bottom"] for label in c["xticks"])
        assert c["xtitle"]["top"] >= below_ticks, (name, c["xtitle"], below_ticks)
    baseline = charts["baseline"]
    assert baseline["annotationText"] == ["- - baseline 0.25"]
    assert (
        baseline["annotations"][0]["bottom"] <= baseline["plot"]["top"] + 0.5
    )  # above the plot area: off the curve


# Figures with nothing to draw, in a chart: the sentence each shows, and whether axes were drawn.
EMPTY_VIEWS = """() => { const t = window.__t; const { frame, cat } = t; const floor = cat.display.floor;
  const running = { status: "running", step: 0, config: { probe_every: 10 } };
  const queued = { status: "queued", step: 0, queue_position: 2, config: { probe_every: 10 } };
  const diverged = { status: "diverged", step: 0, error: "loss or gradient became NaN or inf at step 1" };
  const none = { kind: "last", layer: 0, T: 0, width: 1, t: [], steps: [], rows: [], saturation: {},
                 lastStep: null, version: 0, reset: 0 };
  const flat = { ...none, t: [0, 1], steps: [0], rows: [Float32Array.from([1, 1])], version: 1 };
  const metrics = { version: 0, step: [], loss: [], metric: [], gradNorm: [], gradNormClipped: [],
                   clipped: [], params: {}, updateRatio: [], lr: [] };
  const kept = Object.entries(frame.arrays).filter(([k]) => !k.startsWith("gates."));
  const vanilla = { ...frame, id: -1, arrays: Object.fromEntries(kept) };
  const shown = (node) => ({ empty: node.classList.contains("empty"), axes: !!node.querySelector(".main-svg"),
                              note: node.querySelector(".chart-note")?.textContent ?? null });
  const cases = {
    waiting: ["gradflowFigure", { flow: none, floor, run: running }],
    queued: ["gradflowFigure", { flow: none, floor, run: queued }],
    noframe: ["gradLinesFigure", { frame: null, floor, run: running }],
    loss: ["lossFigure", { metrics, run: diverged }],
    gradnorm: ["gradNormFigure", { metrics, run: diverged }],
    gates: ["stateFigure", { frame: vanilla, name: "gates.f", gateKinds: t.gateKinds }],
    saturation: ["saturationFigure", { flow: flat, run: running }],
  };
  const out = {};
  for (const [id, [figure, input]] of Object.entries(cases)) {
    t.draw(id, figure, input);
    const node = document.getElementById(id);
    out[id] = shown(node);
  }
  // the same chart with something to draw: the sentence goes, the axes come
  const chart = t.charts.gates.chart;
  chart.input = { frame, name: "gates.f", gateKinds: t.gateKinds };
  chart.render();
  const node = document.getElementById("gates");
  out.filled = shown(node);
  return out;
}"""


def test_empty_views_show_a_sentence_instead_of_empty_axes(
    gs_page: Page, url: Callable[[str], str], lstm_2_layers: str
) -> None:
    page = gs_page
    setup(page, url, lstm_2_layers)
    views = page.evaluate(EMPTY_VIEWS)
    expected = {
        "waiting": "Waiting for the first probe frame (one every 10 steps)…",
        "queued": "Queued (2 ahead): the run has not started, so it has no probe frame yet.",
        "noframe": "Waiting for the first probe frame (one every 10 steps)…",
        "loss": "The run diverged at step 1: its loss or gradient was not finite (NaN or ∞) there, "
        "so there is no loss to draw.",
        "gradnorm": "The run diverged at step 1: its loss or gradient was not finite",
        "gates": "A vanilla RNN has no gates: its only path through time is W_hh",
        "saturation": "A vanilla RNN has no gates",
    }
    for name, start in expected.items():
        view = views[name]
        assert view["empty"] and not view["axes"], (name, view)
        assert view["note"] and view["note"].startswith(start), (name, view)
    assert views["filled"] == {"empty": False, "note": None, "axes": True}

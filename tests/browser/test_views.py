"""The figure functions (static/js/views.js) and the image heatmap (static/js/heatmap.js) on real
frames of real runs, in Chromium: colour ranges per layer, the task's marks on every time axis,
token labels that never overlap, the columns after the last loss term hatched as "no loss here",
and a heatmap's hover readout and clicks. Each test draws charts into the page itself (modules
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
  const cat = await (await fetch("/api/catalog")).json();
  const steps = await (await fetch(`/api/runs/${runId}/probes`)).json();
  const at = step ?? steps.at(-1);
  const bytes = await (await fetch(`/api/runs/${runId}/probes/${at}?resolution=display`)).arrayBuffer();
  const frame = decodeFrame(bytes);
  window.__clicks = [];
  window.__t = { frame, cat, views, plots, charts: {},
    draw(id, figure, input, height = 240) {
      const node = document.createElement("div");
      node.id = id;
      node.style.cssText = `width: 640px; height: ${height}px; position: relative; background: #fff`;
      const legendNode = document.createElement("div");
      document.body.prepend(node, legendNode);
      const onClick = (p) => window.__clicks.push(p);
      const chart = new plots.Chart(node, views[figure], { name: id, legend: legendNode, onClick });
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


def test_the_marked_timesteps_are_marked_on_every_time_axis_and_labels_never_overlap(
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
    assert len(info["marks"]) == 2
    drawn = page.evaluate(
        """async () => { const t = window.__t; const { frame, cat } = t;
           const floor = cat.display.floor;
           const g = await (await fetch(`/api/runs/${frame.runId}/gradflow?kind=last&layer=0`)).json();
           const flow = { kind: g.kind, layer: g.layer, T: g.T, width: g.width, t: g.t, steps: g.steps,
                          rows: g.z.map((r) => Float32Array.from(r)), saturation: g.saturation,
                          lastStep: g.last_step, version: 1, reset: 1 };
           const views = {
             gradflow: ["gradflowFigure", { flow, floor, frame }],
             hidden: ["stateFigure", { frame, name: "h" }],
             gate: ["stateFigure", { frame, name: "gates.z", gateKinds: cat.display.gate_kinds }],
             connectivity: ["connectivityFigure", { frame, floor }],
             lines: ["gradLinesFigure", { frame, floor, which: ["grad_h_last", "grad_h"] }],
           };
           const out = {};
           for (const [id, [figure, input]] of Object.entries(views)) {
             t.draw(id, figure, input);
             const node = document.getElementById(id);
             const labels = [...node.querySelectorAll(".xtick text")];
             const boxes = labels.map((n) => n.getBoundingClientRect()).sort((a, b) => a.left - b.left);
             const overlaps = boxes.slice(1).filter((b, k) => b.left < boxes[k].right).length;
             const vermilion = (n) => n.innerHTML.includes("213, 94, 0") || n.innerHTML.includes("#D55E00");
             const marked = labels.filter(vermilion).map((n) => n.textContent);
             // the bands as drawn: their centres, read back into timesteps through the x axis
             const box = node.getBoundingClientRect();
             const { l, w } = node._fullLayout._size;
             const [r0, r1] = node._fullLayout.xaxis.range;
             const centre = (r) => r0 + (((r.left + r.right) / 2 - box.left - l) / w) * (r1 - r0);
             const bands = [...node.querySelectorAll(".gs-band")]
               .map((b) => b.getBoundingClientRect())
               .filter((r) => r.width >= 2)
               .map((r) => Math.round(centre(r)));
             const note = t.charts[id].legendNode.textContent;
             out[id] = { labels: labels.length, overlaps, marked, bands, note };
           }
           return out; }"""
    )
    tokens = page.evaluate("() => window.__t.frame.marks.map((t) => window.__t.frame.tokens[t])")
    for view, figure in drawn.items():
        assert figure["overlaps"] == 0, (view, figure)
        assert figure["labels"] >= 5, (view, figure)
        assert figure["bands"] == info["marks"], (view, figure)
        assert figure["marked"] == tokens, (view, figure)
        if view != "lines":
            assert f"marked (t = {info['marks'][0]}, {info['marks'][1]})" in figure["note"], (view, figure)


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

// Training-curve figures: a Metrics store (feed.js) -> {key, data, layout} of the loss (against
// the task's baseline), the metric, the global gradient norm before and after clipping, each
// parameter's gradient norm, the update ratio ||dtheta||/||theta|| with the learning rate, and
// (from the gradient-flow history) gate saturation. `key` is the store's version, so a chart
// is redrawn only when rows came in. With nothing to draw a figure says why ({empty}, reasons.js):
// the run is queued, diverged at its first step, has no gates, ...
// What this is not: frame or gradient-flow heatmaps (views.js) or a renderer (plots.js).

import { line, LINES, logAxis, stepAxis, thin } from "./plots.js";
import { NO_GATES, noFrame, noSteps } from "./reasons.js";

const some = (values) => values.some((v) => v !== null && v !== undefined);

// loss against the task's baseline (dashed), the baseline named above the plot area where no
// curve runs; a sentence while no step has one (queued, diverged at step 1, a script that passes
// no loss to watch.step)
export function lossFigure({ metrics: m, baseline, yRange, xRange, field = "loss", title = "loss", run }) {
  if (!some(m[field])) return { empty: noSteps(run, title) };
  const [x, y] = thin(m.step, m[field]);
  const shapes = [];
  const annotations = [];
  if (baseline !== null && baseline !== undefined) {
    shapes.push({
      type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: baseline, y1: baseline,
      line: { color: "#555", width: 1.5, dash: "dash" },
    });
    annotations.push({
      xref: "paper", x: 1, xanchor: "right", yref: "paper", y: 1, yanchor: "bottom",
      text: `- - baseline ${+baseline.toPrecision(3)}`, showarrow: false, font: { size: 10, color: "#555" },
    });
  }
  return {
    key: `${m.version}|${baseline}|${yRange}|${xRange}|${field}`,
    data: [line(x, y, title, LINES[0])],
    layout: {
      xaxis: stepAxis(xRange), yaxis: { title: { text: title, standoff: 4 }, ...(yRange ? { range: yRange } : {}) },
      shapes, annotations, margin: { l: 48, r: 12, t: shapes.length ? 20 : 8, b: 36 },
    },
  };
}

// global gradient norm before and after clipping, log axis; clip events marked
export function gradNormFigure({ metrics: m, clip, yRange, run }) {
  if (!some(m.gradNorm)) return { empty: noSteps(run, "gradient norm") };
  const [x, before] = thin(m.step, m.gradNorm);
  const [, after] = thin(m.step, m.gradNormClipped);
  const cx = [];
  const cy = [];
  for (let i = 0; i < m.step.length; i++) {
    if (m.clipped[i]) {
      cx.push(m.step[i]);
      cy.push(m.gradNorm[i]);
    }
  }
  const [ex, ey] = thin(cx, cy, 600);
  const shapes = [];
  if (clip && clip.mode === "norm") {
    shapes.push({
      type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: clip.threshold, y1: clip.threshold,
      line: { color: "#555", width: 1, dash: "dash" },
    });
  }
  return {
    key: `${m.version}|${yRange}`,
    data: [
      line(x, before, "before clipping", LINES[0]),
      line(x, after, "after clipping", LINES[1], { line: { dash: "dot" } }),
      {
        type: "scatter", mode: "markers", x: ex, y: ey, name: "clipped",
        marker: { symbol: "x-thin", size: 7, line: { width: 1.5, color: LINES[5] } },
        hovertemplate: "clipped at step %{x}: %{y:.3g}<extra></extra>",
      },
    ],
    layout: {
      xaxis: stepAxis(), yaxis: logAxis("‖g‖", yRange), shapes, showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  };
}

// one line per parameter tensor, log axis
export function paramNormsFigure({ metrics: m, run }) {
  if (!Object.keys(m.params).length) return { empty: noSteps(run, "per-parameter gradient norm") };
  const data = Object.entries(m.params).map(([name, s], i) => {
    const [x, y] = thin(s.step, s.value, 1500);
    return line(x, y, name.replace(/^rnn\./, ""), LINES[i % LINES.length]);
  });
  return {
    key: `${m.version}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: logAxis("‖∂L/∂θ‖"), showlegend: true,
      legend: { font: { size: 10 }, x: 1.02, xanchor: "left", y: 1 },
      margin: { l: 48, r: 110, t: 8, b: 36 },
    },
  };
}

// gate saturation over training: fraction > 0.9 (solid) and < 0.1 (dashed) per gate
export function saturationFigure({ flow, run, probes }) {
  if (!flow.steps.length) return { empty: noFrame(run, probes) };
  if (!Object.keys(flow.saturation || {}).length) return { empty: NO_GATES };
  const data = [];
  Object.entries(flow.saturation || {}).forEach(([gate, s], i) => {
    const color = LINES[i % LINES.length];
    data.push(line(flow.steps, s.high, `${gate} > 0.9`, color));
    data.push(line(flow.steps, s.low, `${gate} < 0.1`, color, { line: { dash: "dash" } }));
  });
  return {
    key: `${flow.reset}|${flow.version}|${flow.steps.length}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: { title: { text: "fraction of values", standoff: 4 }, range: [0, 1] },
      showlegend: true, legend: { font: { size: 10 }, x: 1.02, xanchor: "left", y: 1 },
      margin: { l: 48, r: 90, t: 8, b: 36 },
    },
  };
}

// the update ratio ||theta_k - theta_(k-1)|| / ||theta_(k-1)|| (solid) and the learning rate (dotted)
export function updateFigure({ metrics: m, run }) {
  if (!some(m.updateRatio)) return { empty: noSteps(run, "update ratio") };
  const [x, ratio] = thin(m.step, m.updateRatio);
  const [, lr] = thin(m.step, m.lr);
  const data = [line(x, ratio, "‖Δθ‖/‖θ‖", LINES[0])];
  if (lr.some((v) => v !== null)) data.push(line(x, lr, "learning rate", LINES[1], { line: { dash: "dot" } }));
  return {
    key: `${m.version}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: logAxis(""), showlegend: true, // the legend names the lines
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  };
}

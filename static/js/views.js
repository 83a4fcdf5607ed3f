// Figure functions: input -> {data, layout, key}. Shared by the run, compare and learn pages.
// Inputs are plain objects (a Metrics store, a frame, a gradflow history, view options); `key`
// names exactly what the figure depends on, so an unchanged view is never re-rendered.

import { matrix, row, unitsByTime } from "./probe.js";
import {
  DIVERGING, LINES, RDBU, SEQUENTIAL, VIRIDIS, heatmap, line, logRange, logRows, thin, tMarker,
  tokenAxis, yMarker,
} from "./plots.js";

export const SIGMOID = new Set(["i", "f", "o", "r", "z"]);

// what to look for in each gate's heatmap (run page captions)
export const GATE_CAPTIONS = {
  f: "Forget gate f (0..1). A forget gate near 1 (saturated) keeps the cell state, and the gradient, alive; near 0 it wipes the memory.",
  i: "Input gate i (0..1): how much of the candidate g is written into the cell at each step. Look for it opening at the inputs that matter.",
  o: "Output gate o (0..1): how much of the cell state is shown as h_t.",
  g: "Candidate g (tanh, −1..1): the value the input gate may write into the cell.",
  c: "Cell state c_t, the LSTM's memory, on a symmetric scale (±max|c|). Rows that stay steady across t are memories being kept.",
  r: "Reset gate r (0..1): how much of h_(t−1) the candidate n may read. Near 0 the unit forgets its past when proposing n.",
  z: "Update gate z (0..1): near 1 keeps the old state (and passes its gradient back unchanged), near 0 overwrites it with n.",
  n: "Candidate n (tanh, −1..1): the new value the update gate may mix in.",
};

export const FLOOR = -30; // log10 of the smallest norm drawn: anything below shows at the floor colour

const logAxis = (title, range) => ({
  type: "log", title: { text: title, standoff: 4 }, exponentformat: "power", minorloglabels: "none",
  ...(range ? { range } : {}),
});
const stepAxis = (range) => ({
  title: { text: "training step", standoff: 4 }, zeroline: false, ...(range ? { range } : {}),
});

// loss against the task's baseline (dashed)
export function lossFigure({ metrics: m, baseline, yRange, xRange, field = "loss", title = "loss" }) {
  const [x, y] = thin(m.step, m[field]);
  const shapes = [];
  const annotations = [];
  if (baseline !== null && baseline !== undefined) {
    shapes.push({
      type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: baseline, y1: baseline,
      line: { color: "#555", width: 1.5, dash: "dash" },
    });
    annotations.push({
      xref: "paper", x: 1, xanchor: "right", yref: "y", y: baseline, yanchor: "bottom",
      text: "baseline", showarrow: false, font: { size: 10, color: "#555" },
    });
  }
  return {
    key: `${m.version}|${baseline}|${yRange}|${xRange}|${field}`,
    data: [line(x, y, title, LINES[0])],
    layout: {
      xaxis: stepAxis(xRange), yaxis: { title: { text: title, standoff: 4 }, ...(yRange ? { range: yRange } : {}) },
      shapes, annotations,
    },
  };
}

// global gradient norm before and after clipping, log axis; clip events marked
export function gradNormFigure({ metrics: m, clip, yRange }) {
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
export function paramNormsFigure({ metrics: m }) {
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

// GRADIENT FLOW: x = timestep, y = training step, colour = log10 of the norm
// the input characters at the flow's columns (the probe input is the same in every frame)
function flowTokens(flow, frame) {
  if (!frame || !frame.tokens) return null;
  const at = new Map(frame.tIndex.map((t, i) => [t, frame.tokens[i]]));
  return flow.t.map((t) => at.get(t) ?? "");
}

export function gradflowFigure({ flow, kind, floor = FLOOR, range, t, step, frame }) {
  const [zmin, zmax] = range || logRange(flow.z, floor);
  const label = kind === "last" ? "‖∂ℓ_T/∂h_t‖" : "‖∂L/∂h_t‖";
  return {
    key: `${flow.version}|${flow.steps.length}|${kind}|${floor}|${zmin}|${zmax}|${t}|${step}|${!!frame}`,
    data: [
      heatmap({
        x: flow.t, y: flow.steps, z: logRows(flow.z, floor), customdata: flow.z, zmin, zmax,
        colors: SEQUENTIAL,
        hover: `t %{x}, step %{y}<br>${label} = %{customdata:.3e}<br>log10 %{z:.2f}<extra></extra>`,
      }),
    ],
    layout: {
      xaxis: tokenAxis(flow.t, flowTokens(flow, frame)),
      yaxis: {
        title: { text: "training step", standoff: 4 }, zeroline: false, tickformat: "d",
        ...(flow.steps.length === 1 ? { tickmode: "array", tickvals: flow.steps } : {}),
      },
      shapes: [...tMarker(t), ...yMarker(step)],
    },
    range: [zmin, zmax],
  };
}

// units x time heatmap of one quantity of one layer; fixed colour range
export function stateFigure({ frame, name, layer = 0, t, zrange, units, mask = false }) {
  const z = unitsByTime(frame, name, layer);
  if (!z) return null;
  const gate = name.startsWith("gates.") ? name.slice(6) : null;
  const sigmoid = gate && SIGMOID.has(gate);
  const [zmin, zmax] = zrange || (sigmoid ? [0, 1] : [-1, 1]);
  const shapes = [...tMarker(t)];
  if (units && units.directions === 2) {
    const split = frame.unitIndex.findIndex((u) => u >= units.hidden);
    if (split > 0) {
      shapes.push({
        type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: split - 0.5, y1: split - 0.5,
        line: { color: "#000", width: 1, dash: "dot" },
      });
    }
  }
  const data = [
    heatmap({
      x: frame.tIndex, y: frame.unitIndex.map((_, i) => i), z, zmin, zmax,
      colors: sigmoid ? SEQUENTIAL : DIVERGING,
      hover: `t %{x}, unit %{y}<br>${gate || name} = %{z:.4f}<extra></extra>`,
    }),
  ];
  if (mask) {
    const m = row(frame, "mask");
    const xs = frame.tIndex.filter((_, i) => m[i] > 0);
    data.push({
      type: "scatter", mode: "markers", x: xs, y: xs.map(() => z.length), cliponaxis: false,
      marker: { symbol: "triangle-down", size: 8, color: "#000" }, hovertemplate: "loss at t %{x}<extra></extra>",
    });
  }
  return {
    key: `${frame.step}|${frame.T}|${name}|${layer}|${t}|${zmin}|${zmax}`,
    data,
    layout: {
      xaxis: tokenAxis(frame.tIndex, frame.tokens),
      yaxis: { title: { text: "unit", standoff: 4 }, zeroline: false },
      shapes,
    },
  };
}

// the largest |value| of a signed quantity, for a symmetric colour range (c and ReLU h)
export function absMax(frame, name) {
  const a = frame.arrays[name];
  let m = 0;
  if (a) for (const v of a.data) m = Math.max(m, Math.abs(v));
  return m > 0 ? m : 1;
}

// itemized ||dl_s/dh_t||: rows s (loss steps), columns t
export function itemizedFigure({ frame, floor = FLOOR, t, bidirectional }) {
  const rows = matrix(frame, "itemized");
  if (!rows) return null;
  const mask = row(frame, "mask");
  if (mask.filter((m) => m > 0).length < 2) return null; // one loss step: the gradient flow says it all
  const masked = rows.map((r, s) => r.map((v, j) => (mask[s] > 0 && (bidirectional || j <= s) ? v : null)));
  const values = masked.map((r) => r.filter((v) => v !== null));
  const [zmin, zmax] = logRange(values.filter((r) => r.length), floor);
  const z = masked.map((r) => r.map((v) => (v === null ? null : v > 1e-300 ? Math.max(Math.log10(v), floor) : floor)));
  return {
    key: `${frame.step}|${floor}|${t}`,
    range: [zmin, zmax],
    data: [
      heatmap({
        x: frame.tIndex, y: frame.tIndex, z, customdata: masked, zmin, zmax, colors: SEQUENTIAL,
        hover: "loss at s=%{y}, state t=%{x}<br>‖∂ℓ_s/∂h_t‖ = %{customdata:.3e}<extra></extra>",
      }),
    ],
    layout: {
      xaxis: tokenAxis(frame.tIndex, frame.tokens, "timestep t of the state"),
      yaxis: { title: { text: "loss step s", standoff: 4 }, autorange: "reversed", zeroline: false },
      shapes: tMarker(t),
    },
  };
}

// input connectivity: one strip over the input characters
export function connectivityFigure({ frame, kind = "last", floor = FLOOR, t }) {
  const values = row(frame, kind === "last" ? "connectivity" : "connectivity_total");
  if (!values) return null;
  const [zmin, zmax] = logRange([values], floor);
  return {
    key: `${frame.step}|${kind}|${floor}|${t}`,
    range: [zmin, zmax],
    data: [
      heatmap({
        x: frame.tIndex, y: [0], z: logRows([values], floor), customdata: [values], zmin, zmax,
        colors: SEQUENTIAL, hover: "t %{x}<br>‖∂ℓ/∂x_t‖ = %{customdata:.3e}<extra></extra>",
      }),
    ],
    layout: {
      xaxis: tokenAxis(frame.tIndex, frame.tokens), yaxis: { visible: false },
      shapes: tMarker(t), margin: { l: 12, r: 12, t: 4, b: 36 },
    },
  };
}

// gradient norms over t of one frame as lines (log axis): grad_h_last, grad_h, grad_c
export function gradLinesFigure({ frame, layer = 0, t, yRange, which = ["grad_h_last", "grad_h", "grad_c"] }) {
  const names = { grad_h_last: "‖∂ℓ_T/∂h_t‖", grad_h: "‖∂L/∂h_t‖", grad_c: "‖∂L/∂c_t‖" };
  const data = which
    .map((name, i) => {
      const y = row(frame, name, layer);
      return y && line(frame.tIndex, y.map((v) => (v > 1e-30 ? v : 1e-30)), names[name], LINES[i]);
    })
    .filter(Boolean);
  data.forEach((d) => (d.hovertemplate = `${d.name}<br>t %{x}: %{y:.3e}<extra></extra>`));
  return {
    key: `${frame.step}|${layer}|${t}|${yRange}|${which}`,
    data,
    layout: {
      xaxis: tokenAxis(frame.tIndex, frame.tokens), yaxis: logAxis("norm", yRange), shapes: tMarker(t),
      showlegend: data.length > 1, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: data.length > 1 ? 22 : 8, b: 36 },
    },
  };
}

// gate saturation over training: fraction > 0.9 (solid) and < 0.1 (dashed) per gate
export function saturationFigure({ flow }) {
  const data = [];
  Object.entries(flow.saturation || {}).forEach(([gate, s], i) => {
    const color = LINES[i % LINES.length];
    data.push(line(flow.steps, s.high, `${gate} > 0.9`, color));
    data.push(line(flow.steps, s.low, `${gate} < 0.1`, color, { line: { dash: "dash" } }));
  });
  return {
    key: `${flow.version}|${flow.steps.length}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: { title: { text: "fraction of values", standoff: 4 }, range: [0, 1] },
      showlegend: true, legend: { font: { size: 10 }, x: 1.02, xanchor: "left", y: 1 },
      margin: { l: 48, r: 90, t: 8, b: 36 },
    },
  };
}

export const LEGEND_COLORS = { sequential: VIRIDIS, diverging: RDBU };

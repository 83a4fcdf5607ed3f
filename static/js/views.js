// Figure functions of frames and of the gradient flow: input -> {key, data, layout, image?,
// legend?}, or {empty: sentence} when there is nothing to draw (reasons.js says why); the
// training curves are in curves.js. Shared by the run, compare and learn pages. Inputs are plain
// objects: a decoded frame (frame.js, or null before the first), the Feed's gradient-flow
// history, view options, the run (RunPublic: for the empty views' sentences) and its task (GET
// .../task: how its input is drawn at each t), and the catalog's constants (`floor`,
// `gateKinds`) which the pages pass in. `key` names exactly what a figure depends on
// (frames by `frame.id`, flows by `reset`/`version`), so an unchanged view is never redrawn.
// Heatmaps return `image` (drawn by heatmap.js) with per-layer colour ranges; every time-axis
// view returns `overlay`: the task's marked timesteps and spans, the columns after the last loss
// term ("no loss here"), the input row and the highlighted t, drawn by heatmap.js too and moved
// without a Plotly call (the highlighted t and step are not in the key). Every time axis is
// labelled t, and every hover names the input at its t.
// What this is not: a decoder (frame.js), a renderer (plots.js, heatmap.js) or a pooler.

import { layerBlock, layerRow, squareMatrix } from "./frame.js";
import { RDBU, VIRIDIS } from "./heatmap.js";
import {
  flowColumns, frameColumns, inputsAt, inputText, lossEnd, NO_LOSS, notes, overlay, stepAxisByRow, stepPosition, timeAxis, tText,
} from "./axes.js";
import { marked } from "./curves.js";
import { decades, line, LINES, logAxis, logRange, renderSize } from "./plots.js";
import { NO_CELL_STATE, NO_FINITE_GRADIENT, NO_GATES, noFrame } from "./reasons.js";

const NORMS = { last: "‖∂ℓ_T/∂h_t‖", total: "‖∂L/∂h_t‖" };
const sci = (v) => (Number.isFinite(v) ? v.toExponential(2) : String(v));

function needFloor(floor) {
  if (typeof floor !== "number") throw new Error("a gradient view needs `floor` (the catalog's display.floor)");
}

// -- gradient flow: x = timestep, y = training step (one row per probe frame), log10 colour ----

const flowRanges = new WeakMap(); // flow -> the log10 extremes of its rows so far

/** The flow's colour range [lo, hi] in whole decades, updated with the new rows only. */
export function flowRange(flow, floor, noLossFrom = null) {
  const c = flowExtremes(flow, noLossFrom);
  return decades(Math.max(c.lo, floor), Math.max(c.hi, floor), floor);
}

// the log10 extremes of the flow's rows (hi = -Infinity: every value is 0)
function flowExtremes(flow, noLossFrom) {
  let c = flowRanges.get(flow);
  if (!c || c.reset !== flow.reset || c.cut !== noLossFrom || c.rows > flow.rows.length) {
    c = { reset: flow.reset, cut: noLossFrom, rows: 0, lo: Infinity, hi: -Infinity };
    flowRanges.set(flow, c);
  }
  for (; c.rows < flow.rows.length; c.rows++) {
    const r = flow.rows[c.rows];
    const end = noLossFrom ?? r.length;
    for (let j = 0; j < end; j++) {
      const x = r[j] > 0 ? Math.log10(r[j]) : -Infinity;
      if (x < c.lo) c.lo = x;
      if (x > c.hi) c.hi = x;
    }
  }
  return c;
}

// a frame whose loss was not finite: its gradient norms came out 0 (values: the norms shown)
const noFiniteGradient = (frame, values) => frame.loss === null && values.every((v) => v === 0);

// the probe input is the same in every frame of a run: the frame's inputs label the flow's columns
// (and the run's interventions across it, at their training steps: curves.js `marked`)
export function gradflowFigure({ flow, floor, range, t, step, frame, task, run, probes, bidirectional = false, interventions }) {
  needFloor(floor);
  const n = flow ? flow.rows.length : 0;
  if (!n) return { empty: noFrame(run, probes) };
  const cols = flowColumns(flow);
  const noLossFrom = bidirectional ? null : lossEnd(flow.lastStep, cols);
  if (frame && frame.loss === null && flowExtremes(flow, noLossFrom).hi === -Infinity) return { empty: NO_FINITE_GRADIENT };
  const [min, max] = range || flowRange(flow, floor, noLossFrom);
  const label = NORMS[flow.kind] || NORMS.last;
  const inputs = inputsAt(frame, task, cols);
  const image = {
    source: `flow|${flow.kind}|${flow.layer}|${flow.reset}`,
    rows: n, cols: cols.n, row: (i) => flow.rows[i],
    x0: -cols.width / 2, dx: cols.width, y0: -0.5, dy: 1,
    colors: "viridis", min, max, log: true, floor, noLossFrom,
    hover: (i, j) => `t ${tText(cols, j)}${inputText(inputs, j)} · step ${flow.steps[i]}\n${
      noLossFrom !== null && j >= noLossFrom ? NO_LOSS : `${label} = ${sci(flow.rows[i][j])}`}`,
    click: (i, j) => ({ x: cols.t[j], y: flow.steps[i] }),
  };
  const { width, height } = renderSize();
  return marked({
    key: `${flow.reset}|${flow.version}|${n}|${floor}|${min}|${max}|${frame ? frame.id : null}|${!!task}|${width}x${height}`,
    overlay: overlay(cols, inputs, noLossFrom, {
      x: t, y: step === null || step === undefined ? null : stepPosition(flow.steps, step),
    }),
    data: [],
    image,
    layout: {
      xaxis: timeAxis(cols, inputs),
      yaxis: stepAxisByRow(flow.steps),
    },
    range: [min, max],
    legend: { colors: VIRIDIS, min, max, log: true, floor, label, note: notes(inputs, cols, noLossFrom) },
  }, interventions, flow.steps);
}

// -- one frame: states, gates, itemized gradients, connectivity, gradient lines -------------

/** The largest |value| of one layer of a quantity (a symmetric colour range for c and ReLU h). */
export function absMax(frame, name, layer = 0) {
  const block = layerBlock(frame, name, layer);
  let m = 0;
  if (block) for (const v of block.data) if (Math.abs(v) > m) m = Math.abs(v);
  return m > 0 ? m : 1;
}

// units x time of one layer: row u = unit, column = timestep (the block is stored t-major)
function unitRows(block) {
  const { T, U, data } = block;
  return (u) => {
    const out = new Float32Array(T);
    for (let t = 0; t < T; t++) out[t] = data[t * U + u];
    return out;
  };
}

// the colour scale of a state: explicit, a sigmoid gate's [0, 1], this layer's ±max|x|, or ±1
function stateScale({ frame, name, layer, zrange, gateKinds, relu }) {
  const gate = name.startsWith("gates.") ? name.slice(6) : null;
  if (gate && !gateKinds) throw new Error("a gate view needs `gateKinds` (the kinds of the catalog cell's views)");
  const sigmoid = !!gate && gateKinds[gate] === "sigmoid";
  const value = !!gate && gateKinds[gate] === "value"; // any real number: h~, sLSTM's n and m
  const what = gate || name;
  if (zrange) return { sigmoid, range: zrange, label: `${what} (shared scale)` };
  if (sigmoid) return { sigmoid, range: [0, 1], label: `${what} (fixed scale)` };
  if (name === "c" || value || (name === "h" && relu)) {
    const m = absMax(frame, name, layer);
    return { sigmoid, range: [-m, m], label: `${what} (±max|${what}| of layer ${layer})` };
  }
  return { sigmoid, range: [-1, 1], label: `${what} (fixed scale)` };
}

// the shapes of a units axis: a dotted line between the two directions of a bidirectional net
function directionSplit(frame, units, unitWidth) {
  if (!units || units.directions !== 2) return [];
  const k = Array.prototype.findIndex.call(frame.unitIndex, (u) => u >= units.hidden);
  if (k <= 0) return [];
  const y = k * unitWidth - unitWidth / 2;
  return [{ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: y, y1: y, line: { color: "#000", width: 1, dash: "dot" } }];
}

// loss marks above a states heatmap: a triangle at each t with a loss term
function maskMarkers(frame, top) {
  const mask = layerRow(frame, "mask");
  if (!mask) return [];
  const xs = Array.from(frame.tIndex).filter((_, i) => mask[i] > 0);
  return [{
    type: "scatter", mode: "markers", x: xs, y: xs.map(() => top), cliponaxis: false,
    marker: { symbol: "triangle-down", size: 8, color: "#000" }, hovertemplate: "loss at t %{x}<extra></extra>",
  }];
}

// units x time heatmap of one quantity ("h", "c", "gates.<g>") of one layer
export function stateFigure({ frame, name, layer = 0, t, zrange, units, mask = false, gateKinds, relu = false, task, run, probes }) {
  if (!frame) return { empty: noFrame(run, probes) };
  const block = layerBlock(frame, name, layer);
  if (!block) return { empty: name.startsWith("gates.") ? NO_GATES : name === "c" ? NO_CELL_STATE : `This frame has no ${name}.` };
  const scale = stateScale({ frame, name, layer, zrange, gateKinds, relu });
  const [min, max] = scale.range;
  const cols = frameColumns(frame);
  const uw = frame.pool ? frame.pool.unitWidth : 1;
  const top = block.U * uw - uw / 2;
  const what = name.startsWith("gates.") ? name.slice(6) : name;
  const unitText = (i) => (uw > 1 ? `units ${frame.unitIndex[i]}–${frame.unitIndex[i] + uw - 1}` : `unit ${frame.unitIndex[i]}`);
  const rowOf = unitRows(block);
  const inputs = inputsAt(frame, task, cols);
  const image = {
    source: `state|${frame.id}|${name}|${layer}`,
    rows: block.U, cols: block.T, row: rowOf,
    x0: -cols.width / 2, dx: cols.width, y0: -uw / 2, dy: uw,
    colors: scale.sigmoid ? "viridis" : "rdbu", min, max, log: false, noLossFrom: null,
    hover: (i, j) => `t ${tText(cols, j)}${inputText(inputs, j)} · ${unitText(i)}\n${what} = ${block.data[j * block.U + i].toFixed(4)}`,
    click: (i, j) => ({ x: cols.t[j], y: frame.unitIndex[i] }),
  };
  const { width } = renderSize();
  return {
    key: `${frame.id}|${name}|${layer}|${min}|${max}|${mask}|${units ? units.directions : 1}|${!!task}|${width}`,
    overlay: overlay(cols, inputs, null, { x: t }),
    data: mask ? maskMarkers(frame, top) : [],
    image,
    layout: {
      xaxis: timeAxis(cols, inputs),
      yaxis: { title: { text: "unit", standoff: 4 }, zeroline: false, autorange: false, range: [-uw / 2, top] },
      shapes: directionSplit(frame, units, uw),
    },
    range: [min, max],
    legend: { colors: scale.sigmoid ? VIRIDIS : RDBU, min, max, label: scale.label, note: notes(inputs, cols, null) },
  };
}

// itemized ||dl_s/dh_t||: rows s (loss steps), columns t; a causal net's upper half left blank
export function itemizedFigure({ frame, floor, t, bidirectional = false, layer = 0, task, run, probes }) {
  needFloor(floor);
  if (!frame) return { empty: noFrame(run, probes) };
  const m = squareMatrix(frame, "itemized", layer);
  const mask = layerRow(frame, "mask");
  if (!m || !mask) {
    return { empty: "No itemized gradients in this frame: the sequence is too long for them, itemize is off, or the probe budget left them out." };
  }
  let losses = 0;
  for (const v of mask) if (v > 0) losses += 1;
  if (losses < 2) return { empty: "Nothing to itemize: this task has a single loss step (many-to-one), so the gradient flow shows all of it." };
  if (noFiniteGradient(frame, m.data)) return { empty: NO_FINITE_GRADIENT };
  const cols = frameColumns(frame);
  const inputs = inputsAt(frame, task, cols);
  const row = (i) => (mask[i] > 0 ? m.data.subarray(i * m.T, (i + 1) * m.T) : null);
  const until = (i) => (bidirectional ? m.T : i + 1);
  const drawn = [];
  for (let i = 0; i < m.S; i++) if (row(i)) drawn.push(row(i).subarray(0, until(i)));
  const [min, max] = logRange(drawn, floor);
  const w = cols.width;
  const image = {
    source: `itemized|${frame.id}|${layer}|${bidirectional}`,
    rows: m.S, cols: m.T, row, until,
    x0: -w / 2, dx: w, y0: -w / 2, dy: w,
    colors: "viridis", min, max, log: true, floor, noLossFrom: null,
    hover: (i, j) => `loss at s = ${tText(cols, i)} · state t = ${tText(cols, j)}${inputText(inputs, j)}\n${
      !row(i) ? "no loss at this s" : j >= until(i) ? "zero: a state after s cannot affect ℓ_s" : `‖∂ℓ_s/∂h_t‖ = ${sci(m.data[i * m.T + j])}`}`,
    click: (i, j) => ({ x: cols.t[j], y: cols.t[i] }),
  };
  const { width } = renderSize();
  return {
    key: `${frame.id}|${layer}|${floor}|${bidirectional}|${!!task}|${width}`,
    overlay: overlay(cols, inputs, null, { x: t }),
    data: [],
    image,
    range: [min, max],
    layout: {
      xaxis: timeAxis(cols, inputs, "timestep t of the state"),
      yaxis: { title: { text: "loss step s", standoff: 4 }, zeroline: false, autorange: false, range: [m.S * w - w / 2, -w / 2] },
    },
    legend: { colors: VIRIDIS, min, max, log: true, floor, label: "‖∂ℓ_s/∂h_t‖", note: notes(inputs, cols, null) },
  };
}

// input connectivity: one strip over the input tokens
export function connectivityFigure({ frame, kind = "last", floor, t, bidirectional = false, task, run, probes }) {
  needFloor(floor);
  if (!frame) return { empty: noFrame(run, probes) };
  const values = layerRow(frame, kind === "last" ? "connectivity" : "connectivity_total");
  if (!values) return { empty: "No input connectivity in this frame." };
  if (noFiniteGradient(frame, values)) return { empty: NO_FINITE_GRADIENT };
  const cols = frameColumns(frame);
  const inputs = inputsAt(frame, task, cols);
  const noLossFrom = bidirectional ? null : lossEnd(frame.lastStep, cols);
  const [min, max] = logRange([values.subarray(0, noLossFrom ?? values.length)], floor);
  const label = kind === "last" ? "‖∂ℓ_T/∂x_t‖" : "‖∂L/∂x_t‖";
  const image = {
    source: `connectivity|${frame.id}|${kind}`,
    rows: 1, cols: values.length, row: () => values,
    x0: -cols.width / 2, dx: cols.width, y0: -0.5, dy: 1,
    colors: "viridis", min, max, log: true, floor, noLossFrom,
    hover: (i, j) => `t ${tText(cols, j)}${inputText(inputs, j)}\n${noLossFrom !== null && j >= noLossFrom ? NO_LOSS : `${label} = ${sci(values[j])}`}`,
    click: (i, j) => ({ x: cols.t[j], y: 0 }),
  };
  const { width } = renderSize();
  return {
    key: `${frame.id}|${kind}|${floor}|${bidirectional}|${!!task}|${width}`,
    overlay: overlay(cols, inputs, noLossFrom, { x: t }),
    data: [],
    image,
    range: [min, max],
    layout: {
      xaxis: timeAxis(cols, inputs), yaxis: { visible: false, range: [-0.5, 0.5], autorange: false },
      margin: { l: 12, r: 12, t: 4, b: 36 },
    },
    legend: { colors: VIRIDIS, min, max, log: true, floor, label, note: notes(inputs, cols, noLossFrom) },
  };
}

const LINE_NAMES = { grad_h_last: NORMS.last, grad_h: NORMS.total, grad_c: "‖∂L/∂c_t‖" };

// gradient norms over t of one frame as lines (log axis): grad_h_last, grad_h, grad_c
export function gradLinesFigure({ frame, layer = 0, t, yRange, floor, bidirectional = false, which = ["grad_h_last", "grad_h", "grad_c"], task, run, probes }) {
  needFloor(floor);
  if (!frame) return { empty: noFrame(run, probes) };
  const cols = frameColumns(frame);
  const noLossFrom = bidirectional ? null : lossEnd(frame.lastStep, cols);
  const lowest = 10 ** floor;
  const xs = Array.from(cols.t);
  const inputs = inputsAt(frame, task, cols);
  const customdata = xs.map((_, j) => inputText(inputs, j));
  const rows = which.map((name) => [name, layerRow(frame, name, layer)]).filter(([, values]) => values);
  if (!rows.length) return { empty: "No gradient norms in this frame." };
  if (rows.every(([, values]) => noFiniteGradient(frame, values))) return { empty: NO_FINITE_GRADIENT };
  const data = rows.map(([name, values], i) => {
    const ys = Array.from(values, (v, j) => (noLossFrom !== null && j >= noLossFrom ? null : Math.max(v, lowest)));
    const trace = line(xs, ys, LINE_NAMES[name], LINES[i], { customdata });
    trace.hovertemplate = `${trace.name}<br>t %{x}%{customdata}: %{y:.3e}<extra></extra>`;
    return trace;
  });
  const { width } = renderSize();
  return {
    key: `${frame.id}|${layer}|${yRange}|${floor}|${which}|${bidirectional}|${!!task}|${width}`,
    data,
    overlay: overlay(cols, inputs, noLossFrom, { x: t }),
    layout: {
      xaxis: timeAxis(cols, inputs), yaxis: logAxis("norm", yRange),
      showlegend: data.length > 1, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: data.length > 1 ? 22 : 8, b: 36 },
    },
  };
}

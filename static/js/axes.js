// Axes of the figures: time axes (columns of a frame or a flow, labelled t, the input at each t,
// the task's marked timesteps and spans, the columns after the last loss term), the
// training-step axis of the gradient flow (one row per probe frame), and what the layer under a
// chart draws over the time axis (heatmap.js): marked timesteps, spans, the no-loss columns, the
// highlighted t and the input row.
// The input at each t is described by the server: the frame's tokens and marks, and the run's
// task (GET /api/runs/{id}/task: `input_value`, the channel drawn as a bar; `spans`); nothing here
// knows a task by name.
// What this is not: a figure (views.js) or a renderer (plots.js, heatmap.js).

import { INPUT_ROW_PX, nice } from "./heatmap.js";
import { MARK, renderSize } from "./plots.js";

export const NO_LOSS = "no loss here: no loss term at or after this t";

// the columns of a frame or a flow: n shown columns of `width` timesteps, column j at x = t[j]
export const frameColumns = (frame) => ({ n: frame.T, width: frame.pool ? frame.pool.tWidth : 1, t: frame.tIndex });
export const flowColumns = (flow) => ({ n: flow.t.length, width: flow.width, t: flow.t });

// the first column after the last loss term (t > lastStep), or null when every column has one
export function lossEnd(lastStep, cols) {
  if (lastStep === null || lastStep === undefined) return null;
  const j = Math.floor(lastStep / cols.width) + 1;
  return j < cols.n ? j : null;
}

const markColumns = (marks, cols) => [...new Set((marks || []).map((t) => Math.floor(t / cols.width)))].filter((j) => j < cols.n);

export const tText = (cols, j) => (cols.width > 1 ? `${cols.t[j]}–${cols.t[j] + cols.width - 1}` : `${cols.t[j]}`);

// the frame's column of each column of `cols` (a flow's columns are the frame's, matched by t)
function frameIndex(frame, cols) {
  if (cols.t === frame.tIndex) return (j) => j;
  const at = new Map(Array.from(frame.tIndex, (t, i) => [t, i]));
  return (j) => at.get(cols.t[j]) ?? null;
}

/**
 * The input at each of `cols`' columns, as the server describes it: `labels` (the frame's tokens),
 * `values` (the channel the task's `input_value` names, drawn as a bar) or neither, the marked
 * columns, the task's spans as columns, and `text(j)`: the words a hover shows for column j.
 */
export function inputsAt(frame, task, cols) {
  const none = { labels: null, values: null, low: 0, high: 1, marked: [], markLabel: null, spans: [], text: () => "" };
  if (!frame) return none;
  const k = frameIndex(frame, cols);
  const labels = frame.tokens ? Array.from({ length: cols.n }, (_, j) => (k(j) === null ? "" : String(frame.tokens[k(j)] ?? ""))) : null;
  const iv = task?.input_value ?? null;
  const x = frame.arrays.inputs;
  let values = null;
  if (iv && x && iv.channel < x.shape[x.shape.length - 1]) {
    const I = x.shape[x.shape.length - 1];
    values = Float32Array.from({ length: cols.n }, (_, j) => (k(j) === null ? NaN : x.data[k(j) * I + iv.channel]));
  }
  const spans = (task?.spans ?? []).map((s) => ({
    ...s, j0: Math.floor(s.start / cols.width), j1: Math.min(cols.n, Math.ceil(s.stop / cols.width)),
  })).filter((s) => s.j0 < s.j1);
  const marked = markColumns(frame.marks, cols);
  const markLabel = frame.markLabel || "marked";
  const text = (j) => {
    const parts = [];
    if (labels && labels[j] !== "") parts.push(values ? `input ${labels[j]}` : `input ‘${labels[j]}’`);
    if (marked.includes(j)) parts.push(markLabel);
    for (const s of spans) if (j >= s.j0 && j < s.j1) parts.push(s.label);
    return parts.join(" · ");
  };
  return { labels, values, low: iv ? iv.low : 0, high: iv ? iv.high : 1, marked, markLabel, spans, text };
}

/** " · <the input at column j>" for a hover line, or "" when nothing is known about it. */
export const inputText = (inputs, j) => {
  const s = inputs.text(j);
  return s ? ` · ${s}` : "";
};

const hasRow = (inputs) => !!(inputs.labels || inputs.values);

/**
 * An x axis over timesteps, labelled t: round numbers spaced so that they never overlap, marked
 * columns labelled in bold vermilion; the tick labels stand off below the input row (heatmap.js
 * draws it between the plot area and the labels).
 */
export function timeAxis(cols, inputs, title = "timestep t") {
  const axis = {
    title: { text: title, standoff: 4 }, zeroline: false, autorange: false,
    range: [-cols.width / 2, cols.n * cols.width - cols.width / 2],
    tickmode: "array", tickangle: 0, ticklabelstandoff: hasRow(inputs) ? INPUT_ROW_PX + 2 : 0,
  };
  const marked = inputs.marked;
  const labelPx = String(cols.t[cols.n - 1] ?? 0).length * 6.5 + 12;
  const colPx = Math.max(1, renderSize().width - 70) / cols.n;
  const every = nice(Math.ceil(labelPx / colPx));
  const near = (j) => marked.some((m) => Math.abs(j - m) * colPx < labelPx);
  const regular = [];
  for (let j = 0; j < cols.n; j += every) if (!near(j)) regular.push(j);
  const ticks = [...regular, ...marked].sort((a, b) => a - b);
  const text = (j) => (marked.includes(j) ? `<span style="color:${MARK}"><b>${cols.t[j]}</b></span>` : String(cols.t[j]));
  return { ...axis, tickvals: ticks.map((j) => cols.t[j]), ticktext: ticks.map(text) };
}

/**
 * What the layer under a time-axis chart draws (heatmap.js `fig.overlay`): the marked columns as
 * bands, the task's spans tinted, the columns after the last loss term as a hatch, the
 * highlighted t / row lines, and the input row.
 */
export function overlay(cols, inputs, noLossFrom, markers) {
  const edge = (j) => cols.t[j] - cols.width / 2;
  const end = cols.n * cols.width - cols.width / 2;
  return {
    bands: inputs.marked.map((j) => [edge(j), edge(j) + cols.width]),
    spans: inputs.spans.map((s) => ({ x: [edge(s.j0), s.j1 < cols.n ? edge(s.j1) : end], label: s.label })),
    hatch: noLossFrom === null ? null : [edge(noLossFrom), end],
    hatchText: NO_LOSS,
    markers,
    row: hasRow(inputs) ? {
      labels: inputs.values ? null : inputs.labels, values: inputs.values, low: inputs.low, high: inputs.high,
      marked: inputs.marked, x0: -cols.width / 2, dx: cols.width, n: cols.n,
      text: (j) => `t ${tText(cols, j)}${inputText(inputs, j)}`,
    } : null,
  };
}

// the legend's words for marks, spans and the hatched columns
export function notes(inputs, cols, noLossFrom) {
  const out = [];
  if (inputs.marked.length) out.push(`dotted vermilion: ${inputs.markLabel} (t = ${inputs.marked.map((j) => cols.t[j]).join(", ")})`);
  for (const s of inputs.spans) out.push(`pink: ${s.label} (t = ${s.stop - s.start > 1 ? `${s.start}–${s.stop - 1}` : s.start})`);
  if (noLossFrom !== null) out.push(`hatched: no loss at t ≥ ${cols.t[noLossFrom]}`);
  return out.join(" · ");
}

// the row position of a training step (between rows when it has none)
export function stepPosition(steps, step) {
  let lo = 0;
  let hi = steps.length - 1;
  if (step <= steps[0]) return 0;
  if (step >= steps[hi]) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) lo = mid;
    else hi = mid;
  }
  return lo + (step - steps[lo]) / (steps[hi] - steps[lo]);
}

// y ticks of training steps on a row axis: round numbers, about one per 40 px
export function stepAxisByRow(steps) {
  const n = steps.length;
  const axis = {
    title: { text: "training step", standoff: 4 }, zeroline: false, autorange: false, range: [-0.5, n - 0.5],
    tickmode: "array",
  };
  const first = steps[0];
  const last = steps[n - 1];
  if (n === 1 || last === first) return { ...axis, tickvals: [0], ticktext: [String(first)] };
  const count = Math.max(2, Math.floor((renderSize().height - 44) / 40));
  const every = nice((last - first) / count);
  const vals = [];
  for (let s = Math.ceil(first / every) * every; s <= last; s += every) vals.push(s);
  return { ...axis, tickvals: vals.map((s) => stepPosition(steps, s)), ticktext: vals.map(String) };
}

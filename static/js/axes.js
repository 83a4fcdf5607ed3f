// Axes of the figures: time axes (columns of a frame or a flow, token labels that never overlap,
// the task's marked timesteps, the columns after the last loss term), the training-step axis of
// the gradient flow (one row per probe frame), and what the layer under a chart draws over the
// time axis (heatmap.js): marked timesteps, the no-loss columns, the highlighted t.
// What this is not: a figure (views.js) or a renderer (plots.js, heatmap.js).

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

// a token as a tick label: visible whitespace, at most 6 characters, no markup
function tokenText(s) {
  const shown = String(s ?? "").replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
  const short = shown.length > 6 ? `${shown.slice(0, 5)}…` : shown;
  return short.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// 1, 2, 5, 10, 20, 50, ... : the smallest at least x
function nice(x) {
  const p = 10 ** Math.floor(Math.log10(Math.max(x, 1e-12)));
  return [1, 2, 5, 10].map((k) => k * p).find((v) => v >= x - 1e-9);
}

/**
 * An x axis over timesteps: tokens (characters, digits, "0.48") as labels spaced so that they never
 * overlap, marked columns labelled in bold vermilion; numbers chosen by Plotly when there are no
 * tokens and no marks.
 */
export function timeAxis(cols, tokens, marks, title = "timestep t (input)") {
  const axis = {
    title: { text: title, standoff: 4 }, zeroline: false, autorange: false,
    range: [-cols.width / 2, cols.n * cols.width - cols.width / 2],
  };
  const marked = markColumns(marks, cols);
  if (!tokens && !marked.length) return cols.n <= 30 ? { ...axis, tick0: 0, dtick: cols.width } : axis;
  const labels = tokens ? tokens.map(tokenText) : Array.from(cols.t, String);
  const longest = labels.reduce((m, s) => Math.max(m, s.replace(/&\w+;/g, "x").length), 1);
  const labelPx = longest * 6.5 + 8;
  const colPx = Math.max(1, renderSize().width - 70) / cols.n;
  const every = nice(Math.ceil(labelPx / colPx));
  const near = (j) => marked.some((m) => Math.abs(j - m) * colPx < labelPx);
  const regular = [];
  for (let j = 0; j < cols.n; j += every) if (!near(j)) regular.push(j);
  const ticks = [...regular, ...marked].sort((a, b) => a - b);
  const text = (j) => (marked.includes(j) ? `<span style="color:${MARK}"><b>${labels[j]}</b></span>` : labels[j]);
  return { ...axis, tickmode: "array", tickvals: ticks.map((j) => cols.t[j]), ticktext: ticks.map(text), tickangle: 0 };
}

/**
 * What the layer under a time-axis chart draws (heatmap.js `fig.overlay`): the marked columns as
 * bands, the columns after the last loss term as a hatch, and the highlighted t / row lines.
 */
export function overlay(cols, marks, noLossFrom, markers) {
  const edge = (j) => cols.t[j] - cols.width / 2;
  return {
    bands: markColumns(marks, cols).map((j) => [edge(j), edge(j) + cols.width]),
    hatch: noLossFrom === null ? null : [edge(noLossFrom), cols.n * cols.width - cols.width / 2],
    hatchText: NO_LOSS,
    markers,
  };
}

// the legend's words for marks and the hatched columns
export function notes(frame, cols, noLossFrom) {
  const out = [];
  const marked = frame ? markColumns(frame.marks, cols) : [];
  if (marked.length) {
    const at = marked.map((j) => cols.t[j]).join(", ");
    out.push(`dotted vermilion: ${frame.markLabel || "marked"} (t = ${at})`);
  }
  if (noLossFrom !== null) out.push(`hatched: no loss at t ≥ ${cols.t[noLossFrom]}`);
  return out.join(" · ");
}

export const tokenAt = (tokens, j) => (tokens && tokens[j] !== undefined ? ` ‘${String(tokens[j]).replace(/\n/g, "\\n")}’` : "");

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

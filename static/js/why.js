// "Why": the intro's argument on screen, with the run's own numbers. Back through time the
// gradient is multiplied, step by step, by the step Jacobian J_t = ∂h_t/∂h_{t−1} (LSTM: of the
// state (h, c)), so ‖∂ℓ_T/∂h_t‖ ≤ ‖∂ℓ_T/∂h_T‖ · Π_{k=t+1..T} ‖J_k‖: a factor below 1 makes it
// vanish, above 1 lets it explode. A `WhyPanel` draws, for the frame shown and one layer:
// - the measured ‖∂ℓ_T/∂h_t‖ (the frame's grad_h_last) and that running product (the bound,
//   started at the measured value at the last loss step T), on one log axis over t;
// - the factors themselves: ‖J_t‖ of each direction (jacobian_norm) and, for an LSTM, the cell
//   path ∂c_t/∂c_{t−1} = f_t (cell_path_mean / cell_path_max), with a line at 1;
// - a caption in the intro's words with the frame's numbers (0.86 → 0.53 → 0.36 → …), saying how
//   far the bound is from the measured gradient;
// - W_hh's spectral radius and top singular values over training (GET /api/runs/{id}/spectra).
// The bound holds for the top layer (any cell, either direction: the reverse direction adds to
// ‖∂ℓ_T/∂h_T‖ only); a lower layer's gradient also comes down through the layers above, so its
// own product is drawn dotted and called no bound. On a display frame pooled in t, each column
// is a bin of timesteps: the bound then counts every step of a bin at the bin's largest norm.
// Used by the run page (run.js) and the /learn chapters on BPTT and vanishing (learn.js).
// What this is not: the Jacobians' computation (app/core/jacobians.py) or a decoder (frame.js).

import { api, el, fmt } from "./api.js";
import { frameColumns, inputsAt, inputText, overlay, timeAxis } from "./axes.js";
import { marked } from "./curves.js";
import { layerRow } from "./frame.js";
import { Chart, line, LINES, logAxis, stepAxis } from "./plots.js";
import { NO_FINITE_GRADIENT, noFrame, noSpectra, noTheory } from "./reasons.js";

const REFRESH_MS = 3000; // a live run's spectra are asked for at most this often ...
const SPECTRA_ROWS = 400; // ... at most this many probe steps of them (thinned evenly by the server)
const MEASURED = "measured ‖∂ℓ_T/∂h_t‖";
const sci = (v) => (v === 0 ? "0" : v >= 1e-3 && v < 1e3 ? fmt(v, 2) : v.toExponential(0).replace("e+", "e"));
const STATE = { lstm: "(h,c)", slstm: "(h,c,n)" }; // the recurrent state where it is more than h
const stateJacobian = (cell) => `‖∂${STATE[cell] ?? "h"}_t/∂${STATE[cell] ?? "h"}_{t−1}‖`;
// what multiplies the gradient along the cell path alone: LSTM's f_t, minGRU's 1 − z_t, minLSTM's f′_t, sLSTM's f′_t
const PATH = { lstm: "f_t", mingru: "1 − z_t", minlstm: "f′_t", slstm: "f′_t" };
const cellPath = (cell) => PATH[cell] ?? "f_t";

// a line trace (plots.js) with its own dash and width; `extra`: more trace fields
function styled(x, y, name, color, style = {}, extra = {}) {
  const trace = line(x, y, name, color, extra);
  trace.line = { color, width: 1.5, ...style };
  return trace;
}

// one layer and direction of an (L, D, T) array, or null
function directionRow(frame, name, layer, d) {
  const a = frame.arrays[name];
  if (!a) return null;
  const [L, D, T] = a.shape;
  if (d >= D) return null;
  const k = Math.min(layer, L - 1) * D + d;
  return a.data.subarray(k * T, (k + 1) * T);
}

/**
 * The bound of one layer of a frame: {cols, last (the column of the last loss step), measured,
 * norms (the forward direction's ‖J_t‖ by column), log10 (the bound by column, 0..last)}, or null
 * without grad_h_last or jacobian_norm. Column i covers `w` timesteps from t = i·w; the bound at
 * i counts every step k in (t, T] at the largest norm of k's column (exact when w = 1).
 */
export function boundOf(frame, layer) {
  const measured = layerRow(frame, "grad_h_last", layer);
  const norms = directionRow(frame, "jacobian_norm", layer, 0);
  if (!measured || !norms) return null;
  const cols = frameColumns(frame);
  const w = cols.width;
  const T = frame.lastStep;
  const last = Math.floor(T / w);
  const size = (i) => Math.min(w, frame.fullT - i * w); // timesteps in column i
  const start = Math.log10(measured[last]);
  const log10 = new Float64Array(last + 1);
  let product = 0; // log10 of the whole columns' factors between column i and the last loss
  for (let i = last; i >= 0; i--) {
    if (i < last) product += (i + 1 === last ? T - last * w + 1 : size(i + 1)) * Math.log10(norms[i + 1]);
    const own = (i === last ? T - last * w : size(i) - 1) * Math.log10(Math.max(1, norms[i]));
    log10[i] = start + product + own;
  }
  return { cols, last, measured, norms, log10 };
}

/** The bound's figure: measured ‖∂ℓ_T/∂h_t‖ and the running product, log axis over t. */
export function boundFigure({ frame, layer = 0, numLayers = 1, t, floor, task, run, probes }) {
  if (!frame) return { empty: noFrame(run, probes) };
  const measured = layerRow(frame, "grad_h_last", layer);
  if (!measured) return { empty: "No gradient norms in this frame." };
  if (frame.loss === null && measured.every((v) => v === 0)) return { empty: NO_FINITE_GRADIENT };
  const b = boundOf(frame, layer);
  if (!b) return { empty: noTheory(frame) };
  if (!(b.measured[b.last] > 0)) return { empty: `The last loss's gradient at t = ${frame.lastStep} is 0, so there is nothing to bound.` };
  const { cols, last } = b;
  const lowest = 10 ** floor;
  const xs = Array.from(cols.t).slice(0, last + 1);
  const inputs = inputsAt(frame, task, cols);
  const customdata = xs.map((_, j) => inputText(inputs, j));
  const top = layer >= numLayers - 1;
  const boundName = top ? "bound: ‖∂ℓ_T/∂h_T‖ · Π‖J_k‖" : `product of layer ${layer}'s ‖J_k‖ (no bound below the top layer)`;
  const traces = [
    styled(xs, xs.map((_, j) => Math.max(b.measured[j], lowest)), MEASURED, LINES[0], { width: 2 }, { customdata }),
    styled(xs, Array.from(b.log10, (x) => Math.max(10 ** x, lowest)), boundName, LINES[5], { dash: top ? "dash" : "dot", width: 2 }, { customdata }),
  ];
  for (const trace of traces) trace.hovertemplate = `${trace.name}<br>t %{x}%{customdata}: %{y:.3e}<extra></extra>`;
  const noLossFrom = last + 1 < cols.n ? last + 1 : null;
  return {
    key: `${frame.id}|${layer}|${numLayers}|${floor}|${!!task}`,
    data: traces,
    overlay: overlay(cols, inputs, noLossFrom, { x: t }),
    layout: {
      xaxis: timeAxis(cols, inputs), yaxis: logAxis("norm"), showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  };
}

/** The factors: ‖J_t‖ of each direction and, for an LSTM, f_t's mean and max; a line at 1. */
export function factorsFigure({ frame, layer = 0, cell, t, task, run, probes }) {
  if (!frame) return { empty: noFrame(run, probes) };
  if (!frame.arrays.jacobian_norm && !frame.arrays.cell_path_mean) return { empty: noTheory(frame) };
  const cols = frameColumns(frame);
  const xs = Array.from(cols.t);
  const inputs = inputsAt(frame, task, cols);
  const customdata = xs.map((_, j) => inputText(inputs, j));
  const dirs = frame.arrays.jacobian_norm ? frame.arrays.jacobian_norm.shape[1] : 1;
  const data = [];
  for (let d = 0; d < dirs; d++) {
    const side = dirs > 1 ? (d === 0 ? " forward" : " reverse") : "";
    const norms = directionRow(frame, "jacobian_norm", layer, d);
    if (norms) data.push(styled(xs, Array.from(norms), `${stateJacobian(cell)}${side}`, LINES[2 + 2 * d], {}, { customdata }));
    const fMean = directionRow(frame, "cell_path_mean", layer, d);
    const fMax = directionRow(frame, "cell_path_max", layer, d);
    if (fMean) data.push(styled(xs, Array.from(fMean), `${cellPath(cell)} mean${side}`, LINES[3], { dash: d ? "dashdot" : "solid" }, { customdata }));
    if (fMax) data.push(styled(xs, Array.from(fMax), `${cellPath(cell)} max${side}`, LINES[3], { dash: "dot" }, { customdata }));
  }
  for (const trace of data) trace.hovertemplate = `${trace.name}<br>t %{x}%{customdata}: %{y:.3f}<extra></extra>`;
  let high = 1;
  for (const trace of data) for (const y of trace.y) if (y > high) high = y;
  return {
    key: `${frame.id}|${layer}|${cell}|${!!task}`,
    data,
    overlay: overlay(cols, inputs, null, { x: t }),
    layout: {
      xaxis: timeAxis(cols, inputs),
      yaxis: { title: { text: "factor per step", standoff: 4 }, range: [0, high * 1.08], zeroline: false },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1, line: { color: "#000", width: 1, dash: "dot" } }],
      showlegend: true, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  };
}

/**
 * W_hh's spectral radius (solid) and singular values (σ_1 dotted, the rest faint) over training,
 * the run's interventions marked (curves.js `marked`: a rescale of W_hh shows as a jump after it).
 */
export function spectraFigure({ spectra, layer = 0, step, finished, interventions }) {
  if (!spectra || !spectra.steps.length) {
    return { empty: spectra && spectra.notes.length ? spectra.notes.join(" ") : noSpectra(finished && !!spectra) };
  }
  const xs = spectra.steps;
  const L = spectra.radius[0].length;
  const l = Math.min(layer, L - 1);
  const D = spectra.radius[0][l].length;
  const data = [];
  for (let d = 0; d < D; d++) {
    const side = D > 1 ? (d === 0 ? " fwd" : " rev") : "";
    spectra.blocks.forEach((block, g) => {
      const color = LINES[g % LINES.length];
      const K = spectra.blocks.length > 1 ? 1 : spectra.singular[0][l][d][g].length; // a gated cell's: σ_1 of each block
      data.push(styled(xs, xs.map((_, i) => spectra.radius[i][l][d][g]), `radius ${block}${side}`, color, { dash: d ? "dashdot" : "solid", width: d ? 1 : 1.5 }));
      for (let k = 0; k < K; k++) {
        const name = `σ_${k + 1} ${block}${side}`;
        const style = k === 0 ? { dash: "dot", width: 1.5 } : { dash: "dot", width: 0.7 };
        data.push(styled(xs, xs.map((_, i) => spectra.singular[i][l][d][g][k]), name, color, style, { showlegend: k === 0, opacity: k === 0 ? 1 : 0.45 }));
      }
    });
  }
  const mark = (x, y, dash) => ({ type: "line", line: { color: "#000", width: 1, dash }, ...(x === null ? { xref: "paper", x0: 0, x1: 1, y0: y, y1: y } : { yref: "paper", y0: 0, y1: 1, x0: x, x1: x }) });
  return marked({
    key: `${xs.length}|${xs.at(-1)}|${l}|${step}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: { title: { text: "W_hh", standoff: 4 }, rangemode: "tozero", zeroline: false },
      shapes: [mark(null, 1, "dot"), ...(step === null || step === undefined ? [] : [mark(step, null, "solid")])],
      showlegend: true, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  }, interventions);
}

// the median of some numbers
function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
}

/** The caption: the intro's sentence with this frame's numbers, or "" without a bound to tell. */
export function whyCaption({ frame, layer = 0, numLayers = 1, cell, run }) {
  const b = frame && boundOf(frame, layer);
  if (!b || !(b.measured[b.last] > 0)) return "";
  const { measured, norms, last, log10, cols } = b;
  const T = frame.lastStep;
  const first = [last, last - 1, last - 2, last - 3].filter((i) => i >= 0).map((i) => measured[i]);
  const change = first.at(-1) / first[0];
  const way = first.length < 2 || (change > 0.9 && change < 1.1) ? "holds steady," : change > 1 ? "grows" : "falls";
  const factors = Array.from(norms.subarray(1, last + 1));
  const parts = [`Back from t = ${T} the gradient ‖∂ℓ_T/∂h_t‖ of layer ${layer} ${way} ${first.map((v) => fmt(v, 2)).join(" → ")}${last > 3 ? " → …" : ""}`];
  if (factors.length) {
    const J = stateJacobian(cell).slice(1, -1);
    const forward = frame.arrays.jacobian_norm.shape[1] > 1 ? ` of the forward direction (the reverse one carries ℓ_T no further back than t = ${T})` : "";
    parts.push(`: each step back multiplies it by the Jacobian ${J}${forward}, whose norm is at most ${fmt(Math.max(...factors), 3)} here (median ${fmt(median(factors), 3)})`);
  }
  const fMean = directionRow(frame, "cell_path_mean", layer, 0);
  const fMax = directionRow(frame, "cell_path_max", layer, 0);
  if (fMean && fMax && last > 0) {
    const mean = fMean.subarray(1, last + 1).reduce((a, v) => a + v, 0) / last;
    parts.push(`; along the cell path alone the factor is ${cellPath(cell)}: ${fmt(mean, 2)} on average, at most ${fmt(Math.max(...fMax.subarray(1, last + 1)), 2)}`);
  }
  parts.push(". ");
  const ratio = measured[0] / measured[last];
  const back = `After ${T} steps, at t = 0,`;
  if (ratio > 0) parts.push(`${back} it is ${sci(ratio)} of its size at t = ${T} (${fmt(ratio ** (1 / T), 3)} a step on average)`);
  else {
    const k = run && run.config ? run.config.tbptt : null;
    parts.push(`${back} it is exactly 0: ${k && k < T ? `truncated BPTT (k = ${k}) stops it ${k} steps back` : "it underflowed below float32's smallest number"}`);
  }
  const top = layer >= numLayers - 1;
  if (top && ratio > 0) {
    const allowed = 10 ** (log10[0] - log10[last]);
    const gap = log10[0] - Math.log10(measured[0]);
    parts.push(`; the product of the norms allows ${sci(allowed)}, `);
    parts.push(gap >= 1
      ? `so here the bound is loose by ${Math.round(gap)} orders of magnitude: a spectral norm is the stretch of the worst direction, and the gradient does not keep to that direction from step to step.`
      : `so here the bound is tight (within a factor of ${fmt(10 ** gap, 2)}): the gradient keeps to the most stretched direction.`);
  } else parts.push(".");
  if (!top) parts.push(` Layer ${layer} is not the top layer: its gradient also comes down through the layers above, so the product of its own step norms (dotted) is no bound for it.`);
  if (cols.width > 1) parts.push(` Pooled for display: each point is the largest of ${cols.width} timesteps, and the bound counts every step at its bin's largest norm, so it is looser still.`);
  return parts.join("");
}

const CAPTIONS = {
  bound: "The measured gradient of the last loss (solid) and the running product of the step Jacobians' spectral norms back from the last loss step (dashed), started at the measured value there. The measured line can never rise above the dashed one in the top layer; how far below it runs shows how loose the worst case is.",
  factors: "The factor of each step back: the spectral norm of the step Jacobian (exact), and for a gated cell the factor that alone multiplies the gradient along its cell path (LSTM: the forget gate f_t; minGRU: 1 − z_t; minLSTM and sLSTM: the normalised or stabilised forget gate f′_t). Below the dotted line at 1 the gradient shrinks at that step; above it, it may grow.",
  spectra: "Each recurrent matrix block over training: its spectral radius (solid, the growth of repeated multiplication in the long run) and its largest singular values (dotted: σ_1, the most any one step can stretch, and for a vanilla RNN the next ones, faint; GET /api/runs/{id}/spectra has the top 8 of every block). The vertical line is the probe step shown.",
};

/**
 * The Why view of one run in `node`: the caption, the bound, the factors and W_hh's spectra, each
 * chart with its caption (`captions: false`: without them, where the page's text explains).
 */
export class WhyPanel {
  constructor(node, runId, { name = "why", onClick, captions = true } = {}) {
    this.runId = runId;
    this.spectra = null;
    this.asked = -Infinity; // the frame step the spectra were last asked for
    this.fetching = false;
    this.timer = null;
    this.last = 0; // when they were last asked for (ms)
    this.input = null;
    const chart = (cls, id) => el("div", { class: `chart ${cls}`, "data-why": id });
    const nodes = { bound: chart("", "bound"), factors: chart("short", "factors"), spectra: chart("", "spectra") };
    this.caption = el("p", { class: "why-caption", "data-why": "caption", "aria-live": "polite" });
    const below = (k) => (captions ? [el("p", { class: "caption", text: CAPTIONS[k] })] : []);
    node.replaceChildren(this.caption, ...Object.entries(nodes).flatMap(([k, n]) => [n, ...below(k)]));
    this.charts = {
      bound: new Chart(nodes.bound, boundFigure, { name: `${name}-bound`, onClick }),
      factors: new Chart(nodes.factors, factorsFigure, { name: `${name}-factors`, onClick }),
      spectra: new Chart(nodes.spectra, spectraFigure, { name: `${name}-spectra` }),
    };
  }

  /** {frame, layer, numLayers, cell, t, floor, task, run, probes, finished, interventions}: redraw (on screen only). */
  update(input) {
    this.input = input;
    this.caption.textContent = whyCaption(input);
    this.charts.bound.update(input);
    this.charts.factors.update(input);
    this.drawSpectra();
    const step = input.frame ? input.frame.step : -Infinity;
    if (step > this.asked || (input.finished && !this.final)) this.askSpectra(input.finished);
  }

  drawSpectra() {
    const { layer, frame, finished, interventions } = this.input;
    this.charts.spectra.update({ spectra: this.spectra, layer, step: frame ? frame.step : null, finished, interventions });
  }

  // ask for the spectra now, or once REFRESH_MS have passed since the last time (one request at a time)
  askSpectra(finished) {
    clearTimeout(this.timer);
    const wait = this.last + REFRESH_MS - performance.now();
    if (this.fetching || (wait > 0 && !finished)) {
      this.timer = setTimeout(() => this.askSpectra(finished), Math.max(wait, 200));
      return;
    }
    this.fetching = true;
    this.last = performance.now();
    this.asked = this.input.frame ? this.input.frame.step : this.asked;
    if (finished) this.final = true;
    api(`/api/runs/${this.runId}/spectra?max_rows=${SPECTRA_ROWS}`)
      .then((body) => {
        this.spectra = body;
        this.drawSpectra();
      })
      .catch((err) => this.charts.spectra.empty(`The spectra of W_hh did not load: ${err.message || err}`))
      .finally(() => {
        this.fetching = false;
      });
  }
}

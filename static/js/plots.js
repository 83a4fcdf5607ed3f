// Charts: a small object per Plotly view. `chart.update(input)` only records the input; one
// requestAnimationFrame callback then renders every dirty chart that is on screen (charts off
// screen stay dirty until they scroll in). A figure function returns {data, layout, key} and
// optionally `image` and `overlay` (drawn by heatmap.js under the plot: a heatmap's pixels, the
// marked timesteps, the no-loss columns, the highlighted t, the input row) and `legend` (an HTML
// colour bar); or `{empty: sentence}` when it has nothing to draw: the chart then shows that
// sentence instead of empty axes (Chart.empty), as it does for a null input (the node's
// data-empty, or a generic sentence). An unchanged key skips the render; only the overlay's
// markers may still move. Every axis grows its margin to fit its tick labels and title
// (automargin), so no label is clipped and no title sits on its labels. Line colours: Okabe-Ito,
// safe for the common colour-vision deficiencies; heatmap colour scales live in heatmap.js.

/* global Plotly */

import { heatmapStats, Layer } from "./heatmap.js";

export const LINES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
export const MARK = "#D55E00"; // the task's marked timesteps (vermilion: apart from the highlighted t)

export const CONFIG = { displayModeBar: false, responsive: true, doubleClick: "reset" };
const NOTHING_YET = "Nothing to show yet.";

export const stats = { renders: 0, totalMs: 0, times: [], byChart: {}, heatmaps: heatmapStats };

window.__gatescope = stats; // read by the browser tests

let renderWidth = 600; // the width of the chart being rendered, for tick density
let renderHeight = 240;

/** The size of the chart being rendered (figure functions space their ticks with it). */
export const renderSize = () => ({ width: renderWidth, height: renderHeight });
const dirty = new Set();
let frameRequested = false;

const FRAME_BUDGET_MS = 8; // render until this much of a frame is spent; the rest waits a frame

function flush() {
  frameRequested = false;
  const start = performance.now();
  for (const chart of [...dirty]) {
    if (!chart.visible) continue;
    if (performance.now() - start > FRAME_BUDGET_MS) {
      frameRequested = true;
      requestAnimationFrame(flush);
      return;
    }
    dirty.delete(chart);
    chart.render();
  }
}

function schedule(chart) {
  dirty.add(chart);
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(flush);
  }
}

const observer = new IntersectionObserver(
  (entries) => {
    for (const e of entries) {
      const chart = e.target.__chart;
      if (!chart) continue;
      chart.visible = e.isIntersecting;
      if (chart.visible && dirty.has(chart)) schedule(chart);
    }
  },
  { rootMargin: "300px" },
);

export class Chart {
  constructor(node, figure, { onClick, onRender, name, legend: legendNode } = {}) {
    this.node = node;
    this.figure = figure;
    this.name = name || node.id || "chart";
    this.input = null;
    this.key = null;
    this.plotted = false;
    this.visible = false;
    this.onClick = onClick; // ({x, y}) of the clicked point or heatmap cell
    this.onRender = onRender;
    this.legendNode = legendNode || null;
    this.layer = null; // a heatmap.js Layer, made for the first figure with an image or overlay
    this.note = Object.assign(document.createElement("p"), { className: "chart-note" }); // the empty view's sentence
    node.__chart = this;
    observer.observe(node);
    this.empty();
  }

  update(input) {
    this.input = input;
    schedule(this);
  }

  render() {
    if (this.input === null) return this.empty();
    renderWidth = this.node.clientWidth || 600;
    renderHeight = this.node.clientHeight || 240;
    const t0 = performance.now();
    const fig = this.figure(this.input);
    if (!fig || fig.empty) return this.empty(fig && fig.empty);
    this.node.classList.remove("empty");
    this.note.remove();
    if (fig.key !== undefined && fig.key === this.key && this.plotted) {
      if (this.layer && fig.overlay) this.layer.mark(fig.overlay.markers); // the highlighted t moved, or nothing
      return;
    }
    this.key = fig.key;
    const layout = fitted({ ...baseLayout(), ...fig.layout, datarevision: fig.key ?? Date.now() });
    if (fig.image || fig.overlay) underLayer(layout, !!fig.image);
    this.plot(fig, layout);
    if (fig.image || fig.overlay) {
      this.layer ??= new Layer(this.node, { name: this.name, onClick: this.onClick });
      this.layer.show(fig.image, fig.overlay);
      this.layer.follow();
    } else if (this.layer) this.layer.clear();
    this.record(performance.now() - t0);
    if (!this.bound && this.onClick) {
      this.bound = true;
      this.node.on("plotly_click", (ev) => ev.points && ev.points.length && this.onClick(ev.points[0]));
    }
    this.plotted = true;
    if (this.legendNode && fig.legend) legend(this.legendNode, fig.legend);
    if (this.onRender) this.onRender(fig);
  }

  // Plotly.react; or, when only an image chart's axis ranges changed (a gradient flow that grew
  // a row) and the user has not zoomed, just those ranges: Plotly skips re-deriving the layout
  plot(fig, layout) {
    const ranges = [layout.xaxis?.range, layout.yaxis?.range];
    const rest = fig.image && !fig.data.length && ranges.every(Array.isArray)
      ? JSON.stringify({ ...layout, datarevision: 0, xaxis: { ...layout.xaxis, range: 0 }, yaxis: { ...layout.yaxis, range: 0 } })
      : null;
    const full = this.node._fullLayout;
    const same = (a, b) => a && b && a[0] === b[0] && a[1] === b[1];
    const unzoomed = full && this.ranges && same(full.xaxis.range, this.ranges[0]) && same(full.yaxis.range, this.ranges[1]);
    if (rest !== null && rest === this.rest && this.plotted && unzoomed) {
      Plotly.relayout(this.node, { "xaxis.range": ranges[0], "yaxis.range": ranges[1] });
    } else Plotly.react(this.node, fig.data, layout, CONFIG);
    this.rest = rest;
    this.ranges = ranges;
  }

  /** Show `reason` (a sentence: why there is nothing to draw) instead of the plot. */
  empty(reason) {
    this.note.textContent = reason || this.node.dataset.empty || NOTHING_YET;
    if (!this.node.contains(this.note)) this.node.append(this.note);
    this.node.classList.add("empty");
    if (this.plotted) {
      Plotly.purge(this.node); // drops the plot's event handlers too
      if (this.layer) this.layer.following = false;
    }
    if (this.layer) this.layer.clear();
    if (this.legendNode) {
      this.legendNode.replaceChildren();
      delete this.legendNode.dataset.key;
    }
    this.bound = false;
    this.plotted = false;
    this.key = null;
  }

  record(ms) {
    stats.renders += 1;
    stats.totalMs += ms;
    stats.times.push(ms);
    if (stats.times.length > 2000) stats.times.splice(0, 1000);
    const mine = (stats.byChart[this.name] ??= []);
    mine.push(ms);
    if (mine.length > 500) mine.splice(0, 250);
  }
}

// every axis makes room for its tick labels and title (Plotly's margins are only a minimum)
function fitted(layout) {
  for (const name of Object.keys(layout)) {
    if (/^[xy]axis\d*$/.test(name)) layout[name] = { automargin: true, ...layout[name] };
  }
  return layout;
}

// the layer lies under the plot: see-through backgrounds, and no grid lines over a heatmap
function underLayer(layout, image) {
  layout.paper_bgcolor = "rgba(0,0,0,0)";
  layout.plot_bgcolor = "rgba(0,0,0,0)";
  if (!image) return;
  layout.xaxis = { ...layout.xaxis, showgrid: false };
  layout.yaxis = { ...layout.yaxis, showgrid: false };
}

export function baseLayout() {
  return {
    margin: { l: 48, r: 12, t: 8, b: 36 },
    font: { family: "system-ui, sans-serif", size: 11, color: "#222" },
    paper_bgcolor: "#fff",
    plot_bgcolor: "#fff",
    showlegend: false,
    hovermode: "closest",
    uirevision: "keep",
  };
}

// the whole decades [lo, hi] spanned by log10 of the values of some rows (any array-likes),
// values at or below 10^floor counted at the floor
export function logRange(rows, floor) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of rows) {
    for (let j = 0; j < r.length; j++) {
      const v = r[j];
      const x = v > 0 ? Math.max(Math.log10(v), floor) : floor;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  return decades(lo, hi, floor);
}

/** [lo, hi] rounded out to whole decades, at least one decade wide; [floor, 0] when empty. */
export function decades(lo, hi, floor) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [floor, 0];
  const a = Math.floor(lo);
  const b = Math.ceil(hi);
  return [a, b > a ? b : a + 1];
}

export const mergeRanges = (ranges) => [
  Math.min(...ranges.map((r) => r[0])),
  Math.max(...ranges.map((r) => r[1])),
];

// an HTML colour bar: the label, the low end, the gradient, the high end, and an optional note
export function legend(node, { colors, min, max, label, log = false, floor = null, note = "" }) {
  const text = (v) => (log ? `1e${Math.round(v)}` : String(+v.toFixed(2)));
  const stops = colors.map((c, i) => `${c} ${(i / (colors.length - 1)) * 100}%`).join(", ");
  const key = `${colors[0]}|${min}|${max}|${label}|${log}|${floor}|${note}`;
  if (node.dataset.key === key) return;
  node.dataset.key = key;
  node.replaceChildren();
  node.classList.add("legend");
  const span = (className, textContent) => Object.assign(document.createElement("span"), { className, textContent });
  const bar = span("legend-bar", "");
  bar.style.background = `linear-gradient(to right, ${stops})`;
  const low = floor !== null && min <= floor ? `≤${text(min)}` : text(min);
  node.append(span("legend-label", label), span("", low), bar, span("", text(max)));
  if (note) node.append(span("legend-note", note));
}

// at most `max` points of a series: every k-th, always the last
export function thin(xs, ys, max = 2500) {
  const n = xs.length;
  if (n <= max) return [xs, ys];
  const k = Math.ceil(n / max);
  const ox = [];
  const oy = [];
  for (let i = 0; i < n; i += k) {
    ox.push(xs[i]);
    oy.push(ys[i]);
  }
  if (ox[ox.length - 1] !== xs[n - 1]) {
    ox.push(xs[n - 1]);
    oy.push(ys[n - 1]);
  }
  return [ox, oy];
}

export const logAxis = (title, range) => ({
  type: "log", title: { text: title, standoff: 4 }, exponentformat: "power", minorloglabels: "none",
  ...(range ? { range } : {}),
});

export const stepAxis = (range) => ({
  title: { text: "training step", standoff: 4 }, zeroline: false, ...(range ? { range } : {}),
});

export const line = (x, y, name, color, extra = {}) => ({
  type: "scatter", mode: "lines", x, y, name, line: { color, width: 1.5, ...(extra.line || {}) },
  hovertemplate: `${name}<br>step %{x}: %{y:.4g}<extra></extra>`, ...extra,
});

// Charts: a small object per Plotly view. `chart.update(input)` only records the input; one
// requestAnimationFrame callback then renders every dirty chart that is on screen (charts off
// screen stay dirty until they scroll in). A figure function returns {data, layout, key}; an
// unchanged key skips Plotly.react. Colour scales are colour-blind safe: Viridis for norms and
// gates, ColorBrewer RdBu (blue negative, red positive) for signed states. Colour bars are
// drawn in HTML (legend()), which keeps Plotly.react of a heatmap cheap.

/* global Plotly */

export const VIRIDIS = [
  "#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c",
  "#1fa088", "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725",
];
export const RDBU = [
  "#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d",
  "#b2182b", "#67001f",
];
export const scale = (colors) => colors.map((c, i) => [i / (colors.length - 1), c]);
export const SEQUENTIAL = scale(VIRIDIS);
export const DIVERGING = scale(RDBU);
// line colours: Okabe-Ito, safe for the common colour-vision deficiencies
export const LINES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];

export const CONFIG = { displayModeBar: false, responsive: true, doubleClick: "reset" };

export const stats = { renders: 0, totalMs: 0, times: [], byChart: {} };

window.__gatescope = stats; // read by the browser tests

let renderWidth = 600; // the width of the chart being rendered, for tick density
const dirty = new Set();
let frameRequested = false;

const FRAME_BUDGET_MS = 30; // render until this much of a frame is spent; the rest waits a frame

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
  constructor(node, figure, { onClick, onRender, name } = {}) {
    this.node = node;
    this.figure = figure;
    this.name = name || node.id || "chart";
    this.input = null;
    this.key = null;
    this.plotted = false;
    this.visible = false;
    this.onClick = onClick;
    this.onRender = onRender;
    node.__chart = this;
    observer.observe(node);
  }

  update(input) {
    this.input = input;
    schedule(this);
  }

  render() {
    if (this.input === null) return;
    renderWidth = this.node.clientWidth || 600;
    const fig = this.figure(this.input);
    this.node.classList.toggle("empty", !fig);
    if (!fig) {
      if (this.plotted) Plotly.purge(this.node);
      this.bound = false;
      this.plotted = false;
      this.key = null;
      return;
    }
    if (fig.key !== undefined && fig.key === this.key && this.plotted) return;
    this.key = fig.key;
    const layout = { ...baseLayout(), ...fig.layout, datarevision: fig.key ?? Date.now() };
    const t0 = performance.now();
    Plotly.react(this.node, fig.data, layout, CONFIG);
    const ms = performance.now() - t0;
    stats.renders += 1;
    stats.totalMs += ms;
    stats.times.push(ms);
    if (stats.times.length > 2000) stats.times.splice(0, 1000);
    const mine = (stats.byChart[this.name] ??= []);
    mine.push(ms);
    if (mine.length > 500) mine.splice(0, 250);
    if (!this.bound && this.onClick) {
      this.bound = true;
      this.node.on("plotly_click", (ev) => ev.points && ev.points.length && this.onClick(ev.points[0]));
    }
    this.plotted = true;
    if (this.onRender) this.onRender(fig);
  }
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

// a vertical marker at timestep t: a black line under a white one, visible on any colour
export function tMarker(t) {
  if (t === null || t === undefined) return [];
  const line = (color, width) => ({
    type: "line", xref: "x", yref: "paper", x0: t, x1: t, y0: 0, y1: 1, line: { color, width },
  });
  return [line("rgba(0,0,0,0.85)", 4), line("#fff", 1.5)];
}

export function yMarker(y) {
  if (y === null || y === undefined) return [];
  const line = (color, width) => ({
    type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: y, y1: y, line: { color, width },
  });
  return [line("rgba(0,0,0,0.85)", 4), line("#fff", 1.5)];
}

// x-axis ticks that label timesteps with the input characters
export function tokenAxis(tIndex, tokens, title = "timestep t (input)") {
  const axis = { title: { text: title, standoff: 4 }, zeroline: false };
  if (!tokens) return tIndex.length <= 30 ? { ...axis, tick0: 0, dtick: 1 } : axis;
  const n = tIndex.length;
  // room for the plot's width of labels: ~6.5 px a character plus a gap
  const longest = tokens.reduce((m, s) => Math.max(m, String(s ?? "").length), 1);
  const every = Math.max(1, Math.ceil((n * (longest * 6.5 + 8)) / Math.max(120, renderWidth - 70)));
  const vals = [];
  const text = [];
  for (let i = 0; i < n; i += every) {
    vals.push(tIndex[i]);
    text.push(tokens[i] ?? "");
  }
  return { ...axis, tickmode: "array", tickvals: vals, ticktext: text, tickangle: 0 };
}

const LOG_EPS = 1e-300;

// log10 of gradient norms, values at or below the floor drawn at the floor
export function logRows(rows, floor) {
  return rows.map((r) => r.map((v) => (v > LOG_EPS ? Math.max(Math.log10(v), floor) : floor)));
}

export function logRange(rows, floor) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of rows) {
    for (const v of r) {
      const x = v > LOG_EPS ? Math.max(Math.log10(v), floor) : floor;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  if (!Number.isFinite(lo)) return [floor, 0];
  lo = Math.floor(lo);
  hi = Math.ceil(hi);
  return [lo, hi > lo ? hi : lo + 1];
}

export const mergeRanges = (ranges) => [
  Math.min(...ranges.map((r) => r[0])),
  Math.max(...ranges.map((r) => r[1])),
];

// an HTML colour bar: gradient plus labels at both ends (and the middle)
export function legend(node, { colors, min, max, label, log = false, floor = null }) {
  const text = (v) => (log ? `1e${Math.round(v)}` : String(+v.toFixed(2)));
  const stops = colors.map((c, i) => `${c} ${(i / (colors.length - 1)) * 100}%`).join(", ");
  const key = `${colors[0]}|${min}|${max}|${label}|${log}|${floor}`;
  if (node.dataset.key === key) return;
  node.dataset.key = key;
  node.replaceChildren();
  node.classList.add("legend");
  const bar = document.createElement("span");
  bar.className = "legend-bar";
  bar.style.background = `linear-gradient(to right, ${stops})`;
  const lo = document.createElement("span");
  lo.textContent = floor !== null && min <= floor ? `≤${text(min)}` : text(min);
  const hi = document.createElement("span");
  hi.textContent = text(max);
  const name = document.createElement("span");
  name.className = "legend-label";
  name.textContent = label;
  node.append(name, lo, bar, hi);
}

export function heatmap({ x, y, z, colors, zmin, zmax, customdata, hover }) {
  return {
    type: "heatmap",
    x,
    y,
    z,
    zmin,
    zmax,
    colorscale: colors,
    showscale: false,
    customdata,
    hovertemplate: hover,
    hoverongaps: false,
  };
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

export const line = (x, y, name, color, extra = {}) => ({
  type: "scatter", mode: "lines", x, y, name, line: { color, width: 1.5, ...(extra.line || {}) },
  hovertemplate: `${name}<br>step %{x}: %{y:.4g}<extra></extra>`, ...extra,
});

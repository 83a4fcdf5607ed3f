// The layer under a chart's Plotly plot, and with it the one implementation behind every heatmap
// (gradient flow, h, c, gates, itemized, connectivity). A figure function describes a value
// matrix (`fig.image`); the `Layer` maps its values through a 256-entry colour table into a
// canvas at the matrix's own resolution and lays it exactly over the plot area, following the
// axes (zoom, resize). The same layer draws what every time axis shows (`fig.overlay`): the
// task's marked timesteps as bands and its spans as bars, the columns after the last loss term
// hatched "no loss here", the highlighted t and step as lines, and the input at each t in a row
// between the plot area and the t labels (characters, or a bar per value). Plotly keeps the axes, ticks and line traces; the rest
// is plain DOM, so a live update paints pixels instead of SVG, a history that only grew (the
// gradient flow) paints only its new rows, and moving the highlighted t touches two divs.
// Hover shows a readout of the cell under the pointer; a click reports the cell as {x, y}.
// What this is not: a figure function (views.js), a scheduler (plots.js: Chart), or a pooler:
// the server has already made the matrix display-sized.
//
// fig.image = {
//   source,              // identity of the matrix: while it is the same, rows 0..n-1 are unchanged
//   rows, cols,          // its size
//   row(i),              // values of row i (an array-like of `cols` numbers), or null: a blank row
//   until(i),            // optional: the columns of row i drawn are 0..until(i)-1 (itemized's causal half)
//   x0, dx, y0, dy,      // axis extent: column j spans x0 + j*dx .. x0 + (j+1)*dx, row i likewise
//   colors,              // "viridis" | "rdbu"
//   min, max,            // the colour range (of log10 values when log)
//   log, floor,          // log: colour by log10(v), values below 10^floor at the floor colour
//   noLossFrom,          // columns from this one on are left transparent (under the hatch)
//   hover(i, j),         // the readout text of a cell (lines separated by "\n")
//   click(i, j),         // the {x, y} a click on the cell reports
// }
// fig.overlay = {
//   bands: [[x0, x1], ...],   // marked timesteps (x axis values): dotted vermilion outlines
//   hatch: [x0, x1] | null,   // no loss term here: hatched, with `hatchText` on hover
//   hatchText,
//   spans: [{x: [x0, x1], label}], // stretches of t the task names (copy's recall window): a bar on top
//   markers: { x, y },        // the highlighted timestep (x) and row position (y), or null
//   row: null | {             // the input at each t, under the plot area (INPUT_ROW_PX high)
//     labels, values, low, high, // characters per column, or values drawn as bars on [low, high]
//     marked, x0, dx, n,      // the marked columns (vermilion); column j spans x0 + j*dx .. + dx
//     text(j),                // the hover readout of column j
//   },
// }

// Colour-blind safe scales: Viridis for norms and gates, ColorBrewer RdBu (blue negative, red
// positive) for signed states.
export const VIRIDIS = [
  "#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c",
  "#1fa088", "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725",
];
export const RDBU = [
  "#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d",
  "#b2182b", "#67001f",
];

export const INPUT_ROW_PX = 14; // the input row's height under the plot area
const CHAR_PX = 6.1; // the width of a character of the row's font (10 px monospace)

/** 1, 2, 5, 10, 20, 50, ...: the smallest at least x (label spacing, in columns or units). */
export function nice(x) {
  const p = 10 ** Math.floor(Math.log10(Math.max(x, 1e-12)));
  return [1, 2, 5, 10].map((k) => k * p).find((v) => v >= x - 1e-9);
}

const LEVELS = 256;
const MAX_ROOM = 16384; // rows a growing canvas reserves at most (browsers cap a canvas's height)

// stops -> 256 RGBA pixels packed as the canvas's Uint32 view reads them (little-endian: ABGR)
function colourTable(stops) {
  const rgb = stops.map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  const table = new Uint32Array(LEVELS);
  for (let i = 0; i < LEVELS; i++) {
    const pos = (i / (LEVELS - 1)) * (rgb.length - 1);
    const k = Math.min(Math.floor(pos), rgb.length - 2);
    const f = pos - k;
    const [r, g, b] = [0, 1, 2].map((c) => Math.round(rgb[k][c] + (rgb[k + 1][c] - rgb[k][c]) * f));
    table[i] = (255 << 24) | (b << 16) | (g << 8) | r;
  }
  return table;
}

const TABLES = { viridis: colourTable(VIRIDIS), rdbu: colourTable(RDBU) };

// one row of values -> pixels (0 = transparent: blank, not a number, or no loss)
function paintRow(out, offset, values, spec, end) {
  const table = TABLES[spec.colors];
  const span = spec.max - spec.min || 1;
  const k = (LEVELS - 1) / span;
  const stop = Math.min(end, spec.noLossFrom ?? spec.cols);
  let j = 0;
  for (; j < stop; j++) {
    let v = values[j];
    if (spec.log) v = v > 0 ? Math.log10(v) : -Infinity;
    if (v !== v) {
      out[offset + j] = 0;
      continue;
    }
    let level = ((spec.log && v < spec.floor ? spec.floor : v) - spec.min) * k + 0.5; // rounded below
    level = level < 0 ? 0 : level > LEVELS - 1 ? LEVELS - 1 : level;
    out[offset + j] = table[level | 0];
  }
  for (; j < spec.cols; j++) out[offset + j] = 0;
}

const scaleKey = (s) => `${s.cols}|${s.colors}|${s.min}|${s.max}|${s.log}|${s.floor}|${s.noLossFrom}`;
const div = (className, hidden = true) => Object.assign(document.createElement("div"), { className, hidden });
const NONE = { bands: [], spans: [], hatch: null, markers: {}, row: null };
const cssPx = (v) => `${v}px`;

export const heatmapStats = {}; // name -> {full, append, rows}: read by the browser tests

export class Layer {
  constructor(node, { name, onClick }) {
    this.node = node;
    this.stats = heatmapStats[name] = { full: 0, append: 0, rows: 0 };
    this.onClick = onClick;
    this.spec = null; // the image shown, or null
    this.overlay = NONE;
    this.drawn = 0; // rows painted of the current source
    this.key = null;
    this.root = div("gs-layer");
    this.canvas = Object.assign(document.createElement("canvas"), { className: "gs-heatmap", hidden: true });
    this.hatch = div("gs-noloss");
    this.bands = div("gs-bands", false);
    this.spans = div("gs-spans", false);
    this.lines = { x: div("gs-marker-x"), y: div("gs-marker-y") };
    this.root.append(this.canvas, this.hatch, this.spans, this.bands, this.lines.x, this.lines.y);
    this.row = div("gs-inputs");
    this.rowCanvas = Object.assign(document.createElement("canvas"), { className: "gs-input-bars" });
    this.rowText = div("gs-input-text", false);
    this.row.append(this.rowCanvas, this.rowText);
    this.rowKey = null;
    this.tip = div("gs-tip");
    this.listen();
  }

  /** Show a figure's image (painting only what changed) and overlay. */
  show(image, overlay) {
    if (!this.node.contains(this.root)) this.node.prepend(this.root);
    if (!this.node.contains(this.tip)) this.node.append(this.tip);
    if (!this.node.contains(this.row)) this.node.prepend(this.row);
    this.root.hidden = false;
    this.overlay = { ...NONE, ...overlay };
    this.bands.replaceChildren(...this.overlay.bands.map(() => div("gs-band", false)));
    this.spans.replaceChildren(...this.overlay.spans.map((s) => Object.assign(div("gs-span", false), { title: s.label })));
    this.drawRow(this.overlay.row);
    if (image) this.draw(image);
    else this.drop();
    this.root.classList.toggle("lines", !image); // bands tinted under lines, outlined over pixels
    this.place();
  }

  /** Move the highlighted t and row lines; nothing else changes. */
  mark(markers) {
    this.overlay = { ...this.overlay, markers: markers || {} };
    this.place();
  }

  // paint `spec`: nothing when unchanged, only the new rows when the source only grew
  draw(spec) {
    const key = scaleKey(spec);
    const grows = spec.source === this.spec?.source && key === this.key && spec.rows >= this.drawn;
    this.spec = spec;
    this.canvas.hidden = false;
    if (grows) {
      if (spec.rows > this.canvas.height) this.enlarge(Math.max(spec.rows, Math.min(2 * spec.rows + 8, MAX_ROOM)));
      this.paint(this.drawn, spec.rows);
    } else {
      this.key = key;
      this.canvas.width = spec.cols;
      this.canvas.height = spec.rows;
      this.paint(0, spec.rows);
    }
    this.node.dataset.heatmap = "drawn";
  }

  // no image (a line chart, or an emptied one)
  drop() {
    this.spec = null;
    this.key = null;
    this.drawn = 0;
    this.canvas.hidden = true;
    delete this.node.dataset.heatmap;
  }

  clear() {
    this.drop();
    this.overlay = NONE;
    this.root.hidden = true;
    this.row.hidden = true;
    this.tip.hidden = true;
  }

  // the input row: bars painted once per row (a canvas of n x INPUT_ROW_PX), or characters placed
  // on every place() (thinned to what fits at the current zoom)
  drawRow(row) {
    this.row.hidden = !row;
    this.rowKey = null;
    this.rowCanvas.hidden = !(row && row.values);
    this.rowText.replaceChildren();
    if (!row || !row.values) return;
    const { n, values, low, high, marked } = row;
    const canvas = this.rowCanvas;
    canvas.width = n;
    canvas.height = INPUT_ROW_PX;
    const g = canvas.getContext("2d");
    for (let j = 0; j < n; j++) {
      const v = values[j];
      if (v !== v) continue;
      const h = Math.max(1, Math.round(((Math.min(Math.max(v, low), high) - low) / (high - low || 1)) * INPUT_ROW_PX));
      g.fillStyle = marked.includes(j) ? "#d55e00" : "#8a9099";
      g.fillRect(j, INPUT_ROW_PX - h, 1, h);
    }
  }

  // a taller canvas with the painted rows copied over (a blit, no colour mapping)
  enlarge(rows) {
    const next = document.createElement("canvas");
    next.className = this.canvas.className;
    next.width = this.canvas.width;
    next.height = rows;
    next.getContext("2d").drawImage(this.canvas, 0, 0);
    this.canvas.replaceWith(next);
    this.canvas = next;
  }

  paint(from, to) {
    const spec = this.spec;
    this.drawn = to;
    if (to <= from) return;
    const cols = spec.cols;
    const image = new ImageData(cols, to - from);
    const pixels = new Uint32Array(image.data.buffer);
    for (let i = from; i < to; i++) {
      const values = spec.row(i);
      if (values) paintRow(pixels, (i - from) * cols, values, spec, spec.until ? spec.until(i) : cols);
    }
    this.canvas.getContext("2d").putImageData(image, 0, from);
    if (from === 0) this.stats.full += 1;
    else this.stats.append += 1;
    this.stats.rows += to - from;
  }

  // the plot area and a data -> pixel mapping of both (linear) axes, as Plotly laid them out
  frame() {
    const full = this.node._fullLayout;
    if (!full || !full._size || !full.xaxis || !full.yaxis) return null;
    const { l, t, w, h } = full._size;
    const [x0, x1] = full.xaxis.range;
    const [y0, y1] = full.yaxis.range;
    return {
      l, t, w, h,
      px: (x) => ((x - x0) / (x1 - x0)) * w,
      py: (y) => ((y1 - y) / (y1 - y0)) * h,
      x: (px) => x0 + (px / w) * (x1 - x0),
      y: (py) => y1 - (py / h) * (y1 - y0),
    };
  }

  /** Lay everything over the plot area at the axes' current ranges. */
  place() {
    const f = !this.root.hidden && this.frame();
    if (!f) return;
    Object.assign(this.root.style, { left: `${f.l}px`, top: `${f.t}px`, width: `${f.w}px`, height: `${f.h}px` });
    if (this.spec) this.placeImage(f);
    const span = (node, [a, b]) => {
      const [xa, xb] = [f.px(a), f.px(b)];
      Object.assign(node.style, { left: `${Math.min(xa, xb)}px`, width: `${Math.abs(xb - xa)}px` });
    };
    this.overlay.bands.forEach((band, k) => span(this.bands.children[k], band));
    this.overlay.spans.forEach((s, k) => span(this.spans.children[k], s.x));
    if (this.overlay.row) this.placeRow(f);
    this.hatch.hidden = !this.overlay.hatch;
    if (this.overlay.hatch) span(this.hatch, this.overlay.hatch);
    for (const axis of ["x", "y"]) {
      const v = this.overlay.markers[axis];
      const line = this.lines[axis];
      line.hidden = v === null || v === undefined;
      if (!line.hidden) line.style[axis === "x" ? "left" : "top"] = `${axis === "x" ? f.px(v) : f.py(v)}px`;
    }
  }

  placeRow(f) {
    const row = this.overlay.row;
    Object.assign(this.row.style, { left: cssPx(f.l), top: cssPx(f.t + f.h + 1), width: cssPx(f.w), height: cssPx(INPUT_ROW_PX) });
    const xa = f.px(row.x0);
    const xb = f.px(row.x0 + row.n * row.dx);
    if (row.values) {
      Object.assign(this.rowCanvas.style, { left: cssPx(Math.min(xa, xb)), width: cssPx(Math.abs(xb - xa)), height: cssPx(INPUT_ROW_PX) });
      return;
    }
    const colPx = Math.abs(xb - xa) / row.n;
    const key = `${xa}|${xb}|${f.w}`;
    if (key === this.rowKey) return;
    this.rowKey = key;
    const longest = row.labels.reduce((m, s) => Math.max(m, s.length), 1);
    const every = nice(Math.ceil((longest * CHAR_PX + 1) / colPx));
    const first = Math.max(0, Math.floor(-xa / colPx));
    const last = Math.min(row.n - 1, Math.ceil((f.w - xa) / colPx));
    const near = (j) => row.marked.some((m) => Math.abs(j - m) < every); // a marked column itself too
    const shown = [];
    for (let j = first - (first % every); j <= last; j += every) if (j >= first && !near(j)) shown.push(j);
    for (const m of row.marked) if (m >= first && m <= last) shown.push(m);
    shown.sort((a, b) => a - b);
    this.rowText.replaceChildren(...shown.map((j) => {
      const s = Object.assign(document.createElement("span"), { textContent: row.labels[j] });
      s.style.left = cssPx(xa + (j + 0.5) * colPx);
      if (row.marked.includes(j)) s.className = "marked";
      s.dataset.t = String(j);
      return s;
    }));
  }

  placeImage(f) {
    const spec = this.spec;
    const capacity = this.canvas.height;
    const xa = f.px(spec.x0);
    const xb = f.px(spec.x0 + spec.cols * spec.dx);
    const ya = f.py(spec.y0);
    const yb = f.py(spec.y0 + capacity * spec.dy);
    const width = Math.abs(xb - xa);
    const height = Math.abs(yb - ya);
    Object.assign(this.canvas.style, {
      left: `${Math.min(xa, xb)}px`, top: `${Math.min(ya, yb)}px`, width: `${width}px`, height: `${height}px`,
      transform: `scale(${xb < xa ? -1 : 1}, ${yb < ya ? -1 : 1})`,
      imageRendering: width >= spec.cols && height >= capacity ? "pixelated" : "auto",
    });
  }

  // what is under the pointer: {i, j} of an image cell, or {hatch} over the no-loss columns
  under(ev) {
    const f = this.frame();
    if (!f || this.root.hidden) return null;
    const box = this.node.getBoundingClientRect();
    const px = ev.clientX - box.left - f.l;
    const py = ev.clientY - box.top - f.t;
    const row = this.overlay.row;
    if (row && px >= 0 && px <= f.w && py > f.h && py <= f.h + 1 + INPUT_ROW_PX) {
      const j = Math.floor((f.x(px) - row.x0) / row.dx);
      return j >= 0 && j < row.n ? { left: px + f.l, top: f.t + f.h - 18, row: j } : null;
    }
    if (px < 0 || py < 0 || px > f.w || py > f.h) return null;
    const at = { left: px + f.l, top: py + f.t };
    const spec = this.spec;
    if (spec) {
      const j = Math.floor((f.x(px) - spec.x0) / spec.dx);
      const i = Math.floor((f.y(py) - spec.y0) / spec.dy);
      if (i >= 0 && j >= 0 && i < spec.rows && j < spec.cols) return { ...at, i, j };
    }
    const h = this.overlay.hatch;
    const x = f.x(px);
    return h && x >= Math.min(...h) && x <= Math.max(...h) ? { ...at, hatch: true } : null;
  }

  listen() {
    let down = null;
    this.node.addEventListener("mousemove", (ev) => this.hover(ev));
    this.node.addEventListener("mouseleave", () => (this.tip.hidden = true));
    this.node.addEventListener("mousedown", (ev) => (down = [ev.clientX, ev.clientY]));
    this.node.addEventListener("click", (ev) => {
      const moved = down && Math.hypot(ev.clientX - down[0], ev.clientY - down[1]) > 4; // a zoom drag
      const c = !moved && this.onClick && this.spec && this.under(ev);
      if (c && c.i !== undefined) this.onClick(this.spec.click(c.i, c.j));
    });
  }

  /** Follow the axes (zoom, pan, resize): call once the node is a Plotly plot. */
  follow() {
    if (this.following) return;
    this.following = true;
    this.node.on("plotly_relayout", () => this.place());
    this.node.on("plotly_afterplot", () => this.place());
  }

  hover(ev) {
    const c = this.under(ev);
    if (!c) {
      this.tip.hidden = true;
      return;
    }
    this.tip.textContent = c.row !== undefined ? this.overlay.row.text(c.row) : c.hatch ? this.overlay.hatchText : this.spec.hover(c.i, c.j);
    this.tip.hidden = false;
    const right = c.left > this.node.clientWidth * 0.6;
    Object.assign(this.tip.style, {
      left: right ? "" : `${c.left + 14}px`,
      right: right ? `${this.node.clientWidth - c.left + 14}px` : "",
      top: `${Math.max(0, c.top - 10)}px`,
    });
  }
}

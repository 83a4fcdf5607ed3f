// The sweep page (/sweeps/{id}): its progress and the trainability phase diagram. For each cell
// of the sweep (its "cell" values, else the base's), two heatmaps over two grid axes (x and y,
// selectable; by default the two non-cell, non-seed paths with the most values): the final loss
// over the task's baseline and the step-0 gradient ratio ‖∂ℓ_T/∂h_1‖/‖∂ℓ_T/∂h_T‖ (log10), each
// cell the median over the runs that share its x, y and cell (the other axes, e.g. seeds). A
// heatmap cell links to its run (the median one); hover says its params and numbers.
// One state object; GET /api/sweeps/{id} -> state -> render, polled while runs have not ended.
// What this is not: the figures' arithmetic (the server's: app/services/sweeps.py) or the
// heatmap painter (heatmap.js, via plots.js's Chart).

import { api, catalog, el, fmt, post, setStatus } from "./api.js";
import { RDBU, VIRIDIS } from "./heatmap.js";
import { Chart, legend } from "./plots.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const WORST = 1.2; // final loss / baseline drawn at the top colour from here on (1: no better than the baseline)
const REACH = 12; // decades of the ratio's colour scale either way (a gradient 1e-12 of its size is gone)
const NONE = ""; // the y axis "none": one row

const state = { id: document.body.dataset.sweepId, sweep: null, finished: new Set(), x: null, y: null, charts: new Map(), timer: null };

// -- the grid's axes ----------------------------------------------------------------------------

const paths = (sweep) => Object.keys(sweep.grid);
const label = (path) => ({ "init.gain": "init gain", "task.seq_len": "T (sequence length)", seed: "seed" })[path] ?? path;
const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));

/** The default axes: the two non-cell, non-seed paths with the most values (x: the first). */
export function defaultAxes(grid) {
  const ranked = Object.keys(grid)
    .filter((p) => p !== "cell" && p !== "seed")
    .sort((a, b) => grid[b].length - grid[a].length);
  const rest = Object.keys(grid).filter((p) => p !== "cell" && !ranked.includes(p));
  const [x, y] = [...ranked, ...rest];
  return { x: x ?? NONE, y: y ?? NONE };
}

const cells = (sweep) => sweep.grid.cell ?? [sweep.base.cell];

function median(values) {
  const v = values.filter((x) => x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor((v.length - 1) / 2)] : null; // the lower median: a run's own value
}

// the runs of one heatmap cell: same cell, same x value, same y value
function group(sweep, cell, xv, yv) {
  const same = (run, path, v) => path === NONE || show(run.params[path]) === show(v);
  return sweep.runs.filter((r) => (r.params.cell ?? sweep.base.cell) === cell && same(r, state.x, xv) && same(r, state.y, yv));
}

// what a run scores on each map: its final loss once it has ended (a diverged run learned
// nothing: the top colour), its step-0 ratio as soon as it is known
const scores = {
  loss: (r) => (!state.finished.has(r.status) ? null : r.status === "diverged" ? Infinity : r.relative),
  ratio: (r) => (r.ratio === null ? null : r.ratio > 0 ? Math.log10(r.ratio) : -Infinity),
};

/** The matrix of one map of one cell: per (y, x) the median score and the run it comes from. */
export function matrix(sweep, cell, kind) {
  const xs = state.x === NONE ? [null] : sweep.grid[state.x];
  const ys = state.y === NONE ? [null] : sweep.grid[state.y];
  return ys.map((yv) =>
    xs.map((xv) => {
      const runs = group(sweep, cell, xv, yv);
      const value = median(runs.map(scores[kind]));
      const run = value === null ? runs[0] : runs.find((r) => scores[kind](r) === value);
      return { value, run, runs };
    }),
  );
}

// -- figures --------------------------------------------------------------------------------------

function hoverText(cellInfo, kind) {
  const { value, run, runs } = cellInfo;
  if (!run) return "no run here";
  const params = Object.entries(run.params).filter(([p]) => p !== "seed" || runs.length === 1).map(([p, v]) => `${p} ${show(v)}`);
  const of = runs.length > 1 ? ` (median of ${runs.length} runs)` : "";
  const lines = [params.join(" · ")];
  if (kind === "loss") {
    if (value === null) lines.push(`not ended yet: loss so far ${fmt(run.loss)} vs baseline ${fmt(run.baseline)}`);
    else if (run.status === "diverged") lines.push(`diverged${of}: ${run.error ?? ""}`);
    else lines.push(`final loss / baseline ${fmt(value)}${of}`, `loss ${fmt(run.loss)} vs baseline ${fmt(run.baseline)}`);
  } else {
    lines.push(value === null ? "gradient ratio: not known yet" : `‖∂ℓ_T/∂h_1‖/‖∂ℓ_T/∂h_T‖ at step 0: ${run.ratio === 0 ? "0 (underflow)" : fmt(run.ratio)}${of}`);
  }
  lines.push(`run ${run.id}: ${run.status}, step ${run.step}/${run.steps} (click to open)`);
  return lines.join("\n");
}

function axis(path, values, title) {
  if (path === NONE) return { showticklabels: false, range: [-0.5, 0.5], title: { text: "" }, zeroline: false, showgrid: false };
  return {
    tickvals: values.map((_, i) => i), ticktext: values.map(show), range: [-0.5, values.length - 0.5],
    title: { text: title, standoff: 4 }, zeroline: false,
  };
}

// the colour range of each map, shared by every cell's heatmap: the ratio's centred at 1 (log 0),
// at most REACH decades either way, so an explosion of a few decades still shows beside a
// gradient that vanished by forty
function ranges(sweep) {
  const logs = sweep.runs.map(scores.ratio).filter((v) => v !== null && Number.isFinite(v));
  const reach = Math.min(REACH, Math.max(1, ...logs.map((v) => Math.ceil(Math.abs(v)))));
  return { loss: [0, WORST], ratio: [-reach, reach] };
}

function figure(kind) {
  return ({ sweep, cell }) => {
    const m = matrix(sweep, cell, kind);
    const [min, max] = ranges(sweep)[kind];
    const xs = state.x === NONE ? [null] : sweep.grid[state.x];
    const ys = state.y === NONE ? [null] : sweep.grid[state.y];
    const values = m.map((row) => Float64Array.from(row, (c) => (c.value === null ? NaN : Math.min(Math.max(c.value, min), max))));
    const key = `${kind}|${cell}|${state.x}|${state.y}|${min}|${max}|${JSON.stringify(values.map((r) => Array.from(r)))}`;
    return {
      key,
      data: [],
      layout: { xaxis: axis(state.x, xs, label(state.x)), yaxis: axis(state.y, ys, label(state.y)), margin: { l: 56, r: 8, t: 6, b: 40 } },
      image: {
        source: key, rows: ys.length, cols: xs.length, row: (i) => values[i], // a new key repaints it all: a few cells
        x0: -0.5, dx: 1, y0: -0.5, dy: 1, colors: kind === "loss" ? "viridis" : "rdbu", min, max, log: false,
        hover: (i, j) => hoverText(m[i][j], kind),
        click: (i, j) => ({ run: m[i][j].run }),
      },
    };
  };
}

// -- render -----------------------------------------------------------------------------------------

function renderHead(sweep) {
  document.title = `${sweep.name} · sweep · Gatescope`;
  $("sweep-name").textContent = sweep.name;
  const grid = Object.entries(sweep.grid).map(([p, v]) => `${p} ∈ {${v.map(show).join(", ")}}`);
  $("sweep-desc").textContent = `${sweep.total} runs: ${grid.join(" × ")} · base ${sweep.base.cell} H=${sweep.base.hidden_size} · ${sweep.base.task.name} · ${sweep.base.steps} steps`;
  const ended = sweep.done === sweep.total;
  setStatus($("sweep-status"), ended ? "completed" : "running", ended ? "done" : "running");
  $("sweep-progress-text").textContent = `${sweep.done} of ${sweep.total} done · ${Object.entries(sweep.counts).map(([s, n]) => `${n} ${s}`).join(" · ")}`;
  const bar = $("sweep-progress");
  bar.max = sweep.total;
  bar.value = sweep.done;
  $("stop-sweep").disabled = ended;
}

function renderAxes(sweep) {
  for (const which of ["x", "y"]) {
    const select = $(`axis-${which}`);
    const options = paths(sweep).filter((p) => p !== "cell").map((p) => new Option(label(p), p, false, p === state[which]));
    if (which === "y") options.push(new Option("(none)", NONE, false, state.y === NONE));
    select.replaceChildren(...options);
  }
}

function renderMaps(sweep) {
  const box = $("maps");
  for (const cell of cells(sweep)) {
    if (!state.charts.has(cell)) {
      const loss = el("div", { class: "chart sweep-map", id: `map-loss-${cell}`, "data-cell": cell, "data-kind": "loss" });
      const ratio = el("div", { class: "chart sweep-map", id: `map-ratio-${cell}`, "data-cell": cell, "data-kind": "ratio" });
      box.append(el("section", { class: "sweep-cell", "aria-label": cell },
        el("h3", { text: cell }),
        el("div", { class: "sweep-pair" },
          el("div", {}, el("h4", { text: "final loss / baseline" }), loss),
          el("div", {}, el("h4", { text: "gradient ratio at step 0, log10" }), ratio))));
      const open = ({ run }) => run && (location.href = `/runs/${run.id}`);
      state.charts.set(cell, [new Chart(loss, figure("loss"), { onClick: open, name: `loss-${cell}` }), new Chart(ratio, figure("ratio"), { onClick: open, name: `ratio-${cell}` })]);
    }
    for (const chart of state.charts.get(cell)) chart.update({ sweep, cell });
  }
  const [lo, hi] = ranges(sweep).ratio;
  legend($("legend-loss"), { colors: VIRIDIS, min: 0, max: WORST, label: "final loss / baseline", note: `≥ ${WORST} and diverged at the top; 1 = no better than the baseline` });
  legend($("legend-ratio"), { colors: RDBU, min: lo, max: hi, label: "gradient ratio", log: true, floor: -REACH, note: "blue: vanishing back to t = 1, red: exploding, white: kept" });
}

function render() {
  const sweep = state.sweep;
  renderHead(sweep);
  renderAxes(sweep);
  renderMaps(sweep);
}

// -- data ---------------------------------------------------------------------------------------------

async function load() {
  try {
    state.sweep = await api(`/api/sweeps/${state.id}`);
  } catch (err) {
    $("sweep-error").hidden = false;
    $("sweep-error").textContent = `${err.status ?? ""} ${err.message}`.trim();
    return;
  }
  $("sweep-error").hidden = true;
  if (state.x === null) Object.assign(state, defaultAxes(state.sweep.grid));
  render();
  clearTimeout(state.timer);
  if (state.sweep.done < state.sweep.total) state.timer = setTimeout(load, POLL_MS);
}

// a button's request: its failure said in the page's error line
function act(request) {
  request.catch((err) => {
    $("sweep-error").hidden = false;
    $("sweep-error").textContent = `${err.status ?? ""} ${err.message}`.trim();
  });
}

function bind() {
  for (const which of ["x", "y"]) {
    $(`axis-${which}`).addEventListener("change", (ev) => {
      const other = which === "x" ? "y" : "x";
      if (ev.target.value === state[other]) state[other] = state[which]; // picking the other's axis swaps them
      state[which] = ev.target.value;
      render();
    });
  }
  $("delete-sweep").addEventListener("click", () => {
    const what = state.sweep ? `${state.sweep.name} and its ${state.sweep.total} runs` : state.id;
    if (!confirm(`Delete the sweep ${what}, with all their data?`)) return;
    clearTimeout(state.timer);
    act(api(`/api/sweeps/${state.id}`, { method: "DELETE" }).then(() => (location.href = "/")));
  });
  $("stop-sweep").addEventListener("click", () => {
    $("stop-sweep").disabled = true;
    act(post(`/api/sweeps/${state.id}/stop`).then(load));
  });
}

async function main() {
  state.finished = new Set((await catalog()).statuses.finished);
  bind();
  await load();
}

main();

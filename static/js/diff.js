// The diff view (/compare?runs=a,b&diff=1): two runs of one task and sequence length against each
// other, aligned by training step. Their gradient flows (one layer's norm over t at every probe
// step both have, one shared colour scale) and the log-ratio log10(‖b‖/‖a‖) cell by cell on a
// diverging scale centred at 0; their hidden states h at one probe step both have and the
// difference b − a, on a diverging scale centred at 0; both loss curves on one axis, with the
// fork points marked (one run the other's fork, or both forks of one run). Two Feeds keep the
// runs live.
// What this is not: the side-by-side comparison of up to eight runs (compare.js), a decoder or a
// pooler (the server's display frames; frame.js), or a renderer (plots.js, heatmap.js).

import { api, describeRun, el, isAttached, runLabel, setStatus } from "./api.js";
import { flowColumns, frameColumns, inputsAt, inputText, lossEnd, overlay, stepAxisByRow, stepPosition, timeAxis, tText } from "./axes.js";
import { Feed } from "./feed.js";
import { layerBlock } from "./frame.js";
import { nice, RDBU, VIRIDIS } from "./heatmap.js";
import { Pacer } from "./pace.js";
import { Chart, legend, line, LINES, mergeRanges, renderSize, stepAxis, thin } from "./plots.js";
import { FrameStore } from "./scrubber.js";
import { absMax, flowRange, gradflowFigure, stateFigure } from "./views.js";

const $ = (id) => document.getElementById(id);
const sci = (v) => (Number.isFinite(v) ? v.toExponential(2) : String(v));
const NORMS = { last: "‖∂ℓ_T/∂h_t‖", total: "‖∂L/∂h_t‖" };
const NO_COMMON_STEP = "The two runs have no probe step in common yet.";

// -- pure: alignment and differences -------------------------------------------------------

/** The rows of two gradient flows at the training steps both have, as two flows of those rows. */
export function alignFlows(fa, fb, reset) {
  const at = new Map(fb.steps.map((s, i) => [s, i]));
  const steps = [];
  const ra = [];
  const rb = [];
  fa.steps.forEach((s, i) => {
    const j = at.get(s);
    if (j === undefined) return;
    steps.push(s);
    ra.push(fa.rows[i]);
    rb.push(fb.rows[j]);
  });
  const sub = (f, rows) => ({ ...f, steps, rows, saturation: {}, reset, version: reset });
  return { steps, a: sub(fa, ra), b: sub(fb, rb) };
}

/** log10(b / a) per column, each norm counted at least 10^floor (so 0 against 0 is 0, not NaN). */
export function logRatio(a, b, floor) {
  const low = 10 ** floor;
  return Float32Array.from(a, (v, j) => Math.log10(Math.max(b[j], low)) - Math.log10(Math.max(v, low)));
}

// the largest |value| of some rows' first `end` columns, and a round symmetric bound above it
function spread(rows, end) {
  let m = 0;
  for (const r of rows) for (let j = 0; j < Math.min(end, r.length); j++) if (Math.abs(r[j]) > m) m = Math.abs(r[j]);
  return { largest: m, bound: m > 0 ? nice(m) : 0.01 }; // 0 everywhere: any scale draws it white
}

// -- figures ---------------------------------------------------------------------------------

// the log-ratio heatmap: rows = common probe steps, columns = t
export function ratioFigure({ diff, floor, t, step, frame, task, bidirectional }) {
  if (!diff || !diff.steps.length) return { empty: NO_COMMON_STEP };
  const { steps, a, b, ratio } = diff;
  const cols = flowColumns(a);
  const noLossFrom = bidirectional ? null : lossEnd(a.lastStep, cols);
  const bound = ratio.bound;
  const label = NORMS[a.kind] || NORMS.last;
  const inputs = inputsAt(frame, task, cols);
  const image = {
    source: `ratio|${diff.reset}`,
    rows: steps.length, cols: cols.n, row: (i) => ratio.rows[i],
    x0: -cols.width / 2, dx: cols.width, y0: -0.5, dy: 1,
    colors: "rdbu", min: -bound, max: bound, log: false, noLossFrom,
    hover: (i, j) => `t ${tText(cols, j)}${inputText(inputs, j)} · step ${steps[i]}\n${label}: a ${sci(a.rows[i][j])}, b ${sci(b.rows[i][j])}\nlog10(b/a) = ${ratio.rows[i][j].toFixed(3)}`,
    click: (i, j) => ({ x: cols.t[j], y: steps[i] }),
  };
  const { width, height } = renderSize();
  return {
    key: `${diff.reset}|${floor}|${bound}|${frame ? frame.id : null}|${!!task}|${width}x${height}`,
    overlay: overlay(cols, inputs, noLossFrom, { x: t, y: step === null || step === undefined ? null : stepPosition(steps, step) }),
    data: [],
    image,
    layout: { xaxis: timeAxis(cols, inputs), yaxis: stepAxisByRow(steps) },
    legend: { colors: RDBU, min: -bound, max: bound, label: `log10(b/a) of ${label}` },
  };
}

// the hidden-state difference b − a of one layer at one probe step (units x t)
export function stateDiffFigure({ frames, layer = 0, t, task }) {
  if (!frames) return { empty: NO_COMMON_STEP };
  const [fa, fb] = frames;
  const A = layerBlock(fa, "h", layer);
  const B = layerBlock(fb, "h", layer);
  if (A.T !== B.T || A.U !== B.U) {
    return { empty: `The hidden states have different shapes (${A.U} units × ${A.T} steps against ${B.U} × ${B.T}): there is no cell-by-cell difference.` };
  }
  const d = Float32Array.from(B.data, (v, i) => v - A.data[i]);
  const { bound } = spread([d], d.length);
  const cols = frameColumns(fa);
  const uw = fa.pool ? fa.pool.unitWidth : 1;
  const inputs = inputsAt(fa, task, cols);
  const at = (i, j) => j * A.U + i;
  const image = {
    source: `hdiff|${fa.id}|${fb.id}|${layer}`,
    rows: A.U, cols: A.T, row: (i) => Float32Array.from({ length: A.T }, (_, j) => d[at(i, j)]),
    x0: -cols.width / 2, dx: cols.width, y0: -uw / 2, dy: uw,
    colors: "rdbu", min: -bound, max: bound, log: false, noLossFrom: null,
    hover: (i, j) => `t ${tText(cols, j)}${inputText(inputs, j)} · unit ${fa.unitIndex[i]}\nh: a ${A.data[at(i, j)].toFixed(4)}, b ${B.data[at(i, j)].toFixed(4)}, b − a = ${d[at(i, j)].toFixed(4)}`,
    click: (i, j) => ({ x: cols.t[j], y: fa.unitIndex[i] }),
  };
  const { width } = renderSize();
  return {
    key: `${fa.id}|${fb.id}|${layer}|${bound}|${!!task}|${width}`,
    overlay: overlay(cols, inputs, null, { x: t }),
    data: [],
    image,
    layout: {
      xaxis: timeAxis(cols, inputs),
      yaxis: { title: { text: "unit", standoff: 4 }, zeroline: false, autorange: false, range: [-uw / 2, A.U * uw - uw / 2] },
    },
    legend: { colors: RDBU, min: -bound, max: bound, label: "h: b − a" },
  };
}

// both loss curves on one axis; the task's baseline dashed; each fork point dotted
export function lossPairFigure({ metrics, names, baseline, forks }) {
  if (!metrics.some((m) => m.loss.some((v) => v !== null))) return { empty: "Neither run has a loss yet." };
  const data = metrics.map((m, i) => line(...thin(m.step, m.loss), names[i], LINES[i]));
  const shapes = [];
  const annotations = [];
  if (baseline !== null) {
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: baseline, y1: baseline, line: { color: "#555", width: 1.5, dash: "dash" } });
  }
  for (const fork of forks) {
    shapes.push({ type: "line", xref: "x", x0: fork.step, x1: fork.step, yref: "paper", y0: 0, y1: 1, line: { color: "#000", width: 1.5, dash: "dot" } });
    annotations.push({ xref: "x", x: fork.step, yref: "paper", y: 1, yanchor: "bottom", text: fork.label, showarrow: false, font: { size: 10 } });
  }
  return {
    key: `${metrics.map((m) => m.version).join("|")}|${baseline}|${forks.map((f) => f.label)}|${names}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: { title: { text: "loss", standoff: 4 } }, shapes, annotations, showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 30, b: 36 },
    },
  };
}

// -- the page --------------------------------------------------------------------------------

const sameTask = (ra, rb) => JSON.stringify(ra.config.task, Object.keys(ra.config.task).sort())
  === JSON.stringify(rb.config.task, Object.keys(rb.config.task).sort());

// why these two runs have no diff (a sentence), or null
function mismatch(ra, rb, fa, fb) {
  if (isAttached(ra) !== isAttached(rb) || (!isAttached(ra) && !sameTask(ra, rb))) {
    return `A diff is of two runs of the same task and sequence length: a is ${describeRun(ra)}, b is ${describeRun(rb)}.`;
  }
  if (fa.T && fb.T && fa.T !== fb.T) return `A diff is of two runs of the same sequence length: a's probe input has T = ${fa.T}, b's T = ${fb.T}.`;
  return null;
}

/** The fork points to mark, [{step, label}]: where one run forked from the other, or where
 * each forked from the run both came from; [] for two runs of no common family. */
export function forkPoints(ra, rb) {
  if (rb.fork && rb.fork.parent === ra.id) return [{ step: rb.fork.step, label: `fork @${rb.fork.step}` }];
  if (ra.fork && ra.fork.parent === rb.id) return [{ step: ra.fork.step, label: `fork @${ra.fork.step}` }];
  if (ra.fork && rb.fork && ra.fork.parent === rb.fork.parent) {
    return [{ step: ra.fork.step, label: `a: fork @${ra.fork.step}` }, { step: rb.fork.step, label: `b: fork @${rb.fork.step}` }];
  }
  return [];
}

function sideOf(runId, onChange, kind) {
  const side = { runId, feed: null, task: null, frames: new FrameStore(runId) };
  side.feed = new Feed(runId, (what) => {
    if (what === "run" && !side.task && !isAttached(side.feed.run)) {
      api(`/api/runs/${runId}/task`).then((task) => { side.task = task; onChange(); }, onChange);
    }
    onChange();
  }, { kind });
  return side;
}

function makeCharts(onClick) {
  const chart = (id, figure, legendId) => new Chart($(id), figure, { name: id, onClick, legend: legendId ? $(legendId) : undefined });
  return {
    flowA: chart("chart-diff-flow-a", gradflowFigure),
    flowB: chart("chart-diff-flow-b", gradflowFigure),
    ratio: chart("chart-diff-ratio", ratioFigure, "legend-diff-ratio"),
    hA: chart("chart-diff-h-a", stateFigure),
    hB: chart("chart-diff-h-b", stateFigure),
    hDiff: chart("chart-diff-h", stateDiffFigure, "legend-diff-h"),
    loss: new Chart($("chart-diff-loss"), lossPairFigure, { name: "chart-diff-loss" }),
  };
}

/** The diff of runs `ids` = [a, b] in the page's #diff section; `state` is what it shows. */
export class DiffView {
  constructor(ids, { kind, floor }) {
    $("diff").hidden = false;
    this.state = { kind, floor, layer: 0, step: null, t: null, diff: null, frames: null, reset: 0, problem: null };
    const pace = new Pacer(() => this.refresh());
    this.sides = ids.map((id) => sideOf(id, () => pace.add("live"), kind));
    this.charts = makeCharts((p) => this.pick(p));
    $("diff-layer").addEventListener("change", (ev) => this.setView(this.state.kind, Number(ev.target.value)));
    $("diff-step").addEventListener("change", (ev) => {
      this.state.step = Number(ev.target.value);
      this.refresh();
    });
  }

  // a click on a heatmap: highlight its t, and show its training step's states (a flow's row)
  pick(p) {
    const s = this.state;
    s.t = s.t === p.x ? null : p.x;
    if (typeof p.y === "number" && s.diff && s.diff.steps.includes(p.y)) s.step = p.y;
    this.refresh();
  }

  setView(kind, layer) {
    Object.assign(this.state, { kind, layer });
    for (const x of this.sides) x.feed.setView(kind, layer);
    this.refresh();
  }

  setKind(kind) {
    this.setView(kind, this.state.layer);
  }

  setFloor(floor) {
    this.state.floor = floor;
    this.refresh();
  }

  heads() {
    ["a", "b"].forEach((name, i) => {
      const run = this.sides[i].feed.run;
      if (!run) return;
      const status = el("span");
      setStatus(status, run.status);
      $(`diff-head-${name}`).replaceChildren(
        el("strong", { text: `${name}: ` }), el("a", { href: `/runs/${run.id}` }, runLabel(run)), " ", status,
        el("span", { class: "hint", text: ` ${describeRun(run)} · ${run.id}` }),
      );
    });
  }

  // the two flows' common rows and their log-ratio (a new `reset`: the heatmaps redraw whole)
  align() {
    const s = this.state;
    const [fa, fb] = this.sides.map((x) => x.feed.gradflow);
    s.reset += 1;
    const d = alignFlows(fa, fb, s.reset);
    const cut = lossEnd(fa.lastStep, flowColumns(fa)) ?? fa.t.length;
    const rows = d.steps.map((_, i) => logRatio(d.a.rows[i], d.b.rows[i], s.floor));
    s.diff = { ...d, reset: s.reset, ratio: { rows, ...spread(rows, cut) } };
    if (s.step !== null && !d.steps.includes(s.step)) s.step = null;
  }

  async loadFrames(step) {
    try {
      const frames = await Promise.all(this.sides.map((x) => x.frames.get(step)));
      if ((this.state.step ?? this.state.diff.steps.at(-1)) === step) this.state.frames = frames;
      this.draw();
    } catch (err) {
      console.warn("diff frames", err.message); // a frame not stored yet: the next update asks again
    }
  }

  // the layer and step choices
  controls(ra, rb) {
    const s = this.state;
    const layers = Math.min(ra.config.num_layers, rb.config.num_layers);
    if ($("diff-layer").options.length !== layers) {
      $("diff-layer").replaceChildren(...Array.from({ length: layers }, (_, l) => new Option(String(l), String(l), false, l === s.layer)));
    }
    const steps = s.diff.steps;
    const select = $("diff-step");
    if (select.dataset.steps !== String(steps)) { // rebuilt only when the common steps change
      select.dataset.steps = String(steps);
      select.replaceChildren(...steps.map((st) => new Option(String(st), String(st))));
    }
    const shown = s.step ?? steps.at(-1);
    if (shown !== undefined) select.value = String(shown);
    return shown;
  }

  refresh() {
    const s = this.state;
    this.heads();
    const [ra, rb] = this.sides.map((x) => x.feed.run);
    const refused = this.sides.find((x) => x.feed.refused);
    if (refused) {
      const { code, reason } = refused.feed.refused;
      s.problem = `${refused.runId}: the server refused to stream this run (${code}): ${reason}`;
    } else if (!ra || !rb) return;
    else s.problem = mismatch(ra, rb, this.sides[0].feed.gradflow, this.sides[1].feed.gradflow);
    $("diff-problem").hidden = !s.problem;
    $("diff-problem").textContent = s.problem || "";
    $("diff-body").hidden = !!s.problem;
    if (s.problem) return;
    this.align();
    const shown = this.controls(ra, rb);
    if (shown !== undefined && (!s.frames || s.frames[0].step !== shown)) this.loadFrames(shown);
    this.draw();
  }

  draw() {
    const s = this.state;
    if (!s.diff) return;
    const [ra, rb] = this.sides.map((x) => x.feed.run);
    const task = this.sides[0].task;
    const { frames, diff } = s;
    const { a, b, steps } = diff;
    const range = steps.length ? mergeRanges([flowRange(a, s.floor), flowRange(b, s.floor)]) : null;
    const common = { floor: s.floor, range, t: s.t, step: frames ? frames[0].step : null, task, bidirectional: ra.config.bidirectional, probes: steps.length };
    this.charts.flowA.update({ ...common, flow: a, frame: frames && frames[0], run: ra });
    this.charts.flowB.update({ ...common, flow: b, frame: frames && frames[1], run: rb });
    this.charts.ratio.update({ ...common, diff, frame: frames && frames[0] });
    if (range) legend($("legend-diff-flow"), { colors: VIRIDIS, min: range[0], max: range[1], log: true, floor: s.floor, label: `a and b: ${NORMS[s.kind]}` });
    $("diff-same").textContent = diff.ratio.largest === 0 && steps.length
      ? `At every probe step both have (${steps.length}), the two gradient flows are identical: log10(b/a) is 0 everywhere.` : "";
    this.drawStates(ra, rb, task);
    this.charts.loss.update({
      metrics: this.sides.map((x) => x.feed.metrics), names: ["a", "b"].map((n, i) => `${n}: ${runLabel([ra, rb][i])}`),
      baseline: task ? task.baseline_loss : null, forks: forkPoints(ra, rb),
    });
  }

  drawStates(ra, rb, task) {
    const { frames, layer, t, diff } = this.state;
    const relu = [ra, rb].some((r) => r.config.cell === "rnn_relu");
    const hMax = relu && frames ? Math.max(...frames.map((f) => absMax(f, "h", layer))) : 1;
    const common = { name: "h", layer, zrange: [-hMax, hMax], t, task, probes: diff.steps.length };
    this.charts.hA.update(frames ? { ...common, frame: frames[0], run: ra } : null);
    this.charts.hB.update(frames ? { ...common, frame: frames[1], run: rb } : null);
    this.charts.hDiff.update({ frames, layer, t, task });
    legend($("legend-diff-hstate"), { colors: RDBU, min: -hMax, max: hMax, label: "a and b: h" });
  }
}

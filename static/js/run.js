// One run, live (/runs/{id}). State lives in one object; the websocket feed and the controls
// change it, render() hands each chart its input, and the charts draw on the next animation
// frame (only those on screen). Pause stops drawing while the feed keeps buffering. The URL
// carries ?step= (scrubber), ?t= (highlighted timestep), ?view=, ?kind=, ?layer=, ?floor=.

import { api, catalog, describeRun, FINISHED, post, setStatus } from "./api.js";
import { Feed } from "./feed.js";
import { Chart, legend, RDBU, stats, VIRIDIS } from "./plots.js";
import { fromPublic } from "./probe.js";
import { setupTools } from "./tools.js";
import {
  absMax, connectivityFigure, FLOOR, GATE_CAPTIONS, gradflowFigure, gradLinesFigure, gradNormFigure,
  itemizedFigure, lossFigure, paramNormsFigure, saturationFigure, SIGMOID, stateFigure,
} from "./views.js";

const $ = (id) => document.getElementById(id);
const runId = document.body.dataset.runId;
const query = new URLSearchParams(location.search);
const intOrNull = (v) => (v === null || v === "" || Number.isNaN(Number(v)) ? null : Number(v));

const state = {
  run: null,
  task: null,
  paused: false,
  follow: intOrNull(query.get("step")) === null,
  step: intOrNull(query.get("step")),
  frame: null,
  t: intOrNull(query.get("t")),
  view: query.get("view"),
  kind: query.get("kind") === "total" ? "total" : "last",
  conn: query.get("conn") === "total" ? "total" : "last",
  layer: intOrNull(query.get("layer")) ?? 0,
  floor: intOrNull(query.get("floor")) ?? FLOOR,
  replay: null,
};
const frames = new Map(); // step -> frame, fetched for the scrubber

// -- charts -------------------------------------------------------------------------------

const pickT = (p) => setT(p.x);
const charts = {
  loss: new Chart($("chart-loss"), (s) => lossFigure({ metrics: s.metrics, baseline: s.baseline })),
  metric: new Chart($("chart-metric"), (s) =>
    lossFigure({ metrics: s.metrics, baseline: s.baseline, field: "metric", title: s.title }),
  ),
  gradnorm: new Chart($("chart-gradnorm"), (s) => gradNormFigure({ metrics: s.metrics, clip: s.clip })),
  params: new Chart($("chart-params"), (s) => paramNormsFigure({ metrics: s.metrics })),
  gradflow: new Chart($("chart-gradflow"), gradflowFigure, {
    name: "gradflow",
    onClick: (p) => {
      setT(p.x);
      scrubTo(p.y);
    },
    onRender: (fig) =>
      legend($("legend-gradflow"), {
        colors: VIRIDIS, min: fig.range[0], max: fig.range[1], log: true, floor: state.floor,
        label: state.kind === "last" ? "‖∂ℓ_T/∂h_t‖" : "‖∂L/∂h_t‖",
      }),
  }),
  saturation: new Chart($("chart-saturation"), saturationFigure),
  gradlines: new Chart($("chart-gradlines"), gradLinesFigure, { onClick: pickT }),
  itemized: new Chart($("chart-itemized"), itemizedFigure, {
    onClick: pickT,
    onRender: (fig) => legend($("legend-itemized"), { colors: VIRIDIS, min: fig.range[0], max: fig.range[1], log: true, floor: state.floor, label: "‖∂ℓ_s/∂h_t‖" }),
  }),
  connectivity: new Chart($("chart-connectivity"), connectivityFigure, {
    onClick: pickT,
    onRender: (fig) => legend($("legend-connectivity"), { colors: VIRIDIS, min: fig.range[0], max: fig.range[1], log: true, floor: state.floor, label: "‖∂ℓ/∂x_t‖" }),
  }),
  hidden: new Chart($("chart-hidden"), stateFigure, { onClick: pickT, name: "hidden" }),
};
$("chart-itemized").dataset.empty =
  "Nothing to itemize: this task has a single loss step (many-to-one), or the frame has no itemized gradients (T > 200, or itemize off).";
$("chart-gradflow").dataset.empty = "Waiting for the first probe frame…";
const gateCharts = {};

function buildGates(cell) {
  const names = cell.name === "lstm" ? ["f", "i", "o", "g", "c"] : cell.gates;
  const box = $("gates");
  if (!names.length) {
    box.append(Object.assign(document.createElement("p"), {
      className: "caption view",
      textContent: "This cell has no gates: its only path through time is W_hh, multiplied in at every step, which is why its gradient vanishes or explodes.",
    }));
    $("saturation-caption").textContent = "A vanilla RNN has no gates, so nothing saturates here.";
    return;
  }
  for (const g of names) {
    const section = document.createElement("section");
    section.className = "view";
    section.id = `view-gate-${g}`;
    section.dataset.view = `gate-${g}`;
    const title = g === "c" ? "Cell state c" : `Gate ${g}`;
    section.innerHTML = `<h3>${title} <a class="anchor" href="?view=gate-${g}" data-view-link="gate-${g}">#</a></h3>
      <div class="chart" id="chart-gate-${g}"></div><div class="legend" id="legend-gate-${g}"></div>
      <p class="caption">${GATE_CAPTIONS[g]}</p>`;
    box.append(section);
    const sigmoid = SIGMOID.has(g);
    gateCharts[g] = new Chart($(`chart-gate-${g}`), stateFigure, { onClick: pickT, name: `gate-${g}` });
    if (g !== "c") {
      legend($(`legend-gate-${g}`), { colors: sigmoid ? VIRIDIS : RDBU, min: sigmoid ? 0 : -1, max: 1, label: `${g} (fixed scale)` });
    }
  }
}

// -- render: state -> chart inputs --------------------------------------------------------

function renderMetrics() {
  const m = feedRef.metrics;
  const task = state.task;
  charts.loss.update({ metrics: m, baseline: task ? task.baseline_loss : null });
  charts.metric.update({ metrics: m, baseline: task ? task.baseline_metric : null, title: task ? task.metric_name : "metric" });
  charts.gradnorm.update({ metrics: m, clip: state.run ? state.run.config.clip : null });
  charts.params.update({ metrics: m });
}

function renderFlow() {
  const flow = feedRef.gradflow;
  charts.gradflow.update(flow.steps.length ? { flow, kind: state.kind, floor: state.floor, t: state.t, step: state.frame ? state.frame.step : null, frame: state.frame } : null);
  charts.saturation.update({ flow });
}

function renderFrame() {
  const frame = state.frame;
  if (!frame || !state.run) return;
  const cfg = state.run.config;
  const common = { frame, t: state.t, floor: state.floor, layer: state.layer };
  charts.gradlines.update({ ...common, which: frame.arrays.grad_c ? ["grad_h_last", "grad_h", "grad_c"] : ["grad_h_last", "grad_h"] });
  charts.itemized.update({ ...common, bidirectional: cfg.bidirectional });
  charts.connectivity.update({ ...common, kind: state.conn });
  const relu = cfg.cell === "rnn_relu";
  const m = relu ? absMax(frame, "h") : 1;
  charts.hidden.update({ ...common, name: "h", zrange: [-m, m], units: { directions: cfg.bidirectional ? 2 : 1, hidden: cfg.hidden_size } });
  legend($("legend-hidden"), { colors: RDBU, min: -m, max: m, label: relu ? "h (±max|h|)" : "h (fixed scale)" });
  for (const [g, chart] of Object.entries(gateCharts)) {
    const name = g === "c" ? "c" : `gates.${g}`;
    const zrange = g === "c" ? [-absMax(frame, "c"), absMax(frame, "c")] : null;
    chart.update({ ...common, name, zrange, units: { directions: cfg.bidirectional ? 2 : 1, hidden: cfg.hidden_size } });
    if (zrange) legend($("legend-gate-c"), { colors: RDBU, min: zrange[0], max: zrange[1], label: "c (±max|c|)" });
  }
  renderFlow(); // the selected step's row marker
}

function renderAll() {
  renderMetrics();
  renderFlow();
  renderFrame();
  renderScrubber();
}

function renderScrubber() {
  const steps = feedRef.probeSteps;
  const scrub = $("scrub");
  scrub.max = String(Math.max(0, steps.length - 1));
  const shown = state.frame ? state.frame.step : null;
  const i = shown === null ? steps.length - 1 : steps.indexOf(shown);
  if (i >= 0) scrub.value = String(i);
  $("scrub-label").textContent = shown === null ? "–" : `${shown}${state.frame.fullT !== state.frame.T ? " (pooled for display)" : ""}`;
  const live = state.run && !FINISHED.has(state.run.status);
  $("live-note").textContent = state.paused ? "paused: updates are kept, not drawn" : state.follow && live ? "following live" : state.replay ? "replaying" : "";
}

// -- state changes ------------------------------------------------------------------------

let urlTimer = null;
function syncUrl() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const url = new URL(location.href);
    const put = (k, v, dflt) => (v === null || v === dflt ? url.searchParams.delete(k) : url.searchParams.set(k, v));
    put("step", state.follow ? null : state.frame ? state.frame.step : state.step);
    put("t", state.t);
    put("view", state.view);
    put("kind", state.kind, "last");
    put("conn", state.conn, "last");
    put("layer", state.layer, 0);
    put("floor", state.floor, FLOOR);
    history.replaceState(null, "", url);
  }, 200);
}

function setT(t) {
  state.t = t === state.t ? null : t;
  syncUrl();
  renderFrame();
}

async function frameAt(step) {
  if (feedRef.frame && feedRef.frame.step === step) return feedRef.frame;
  if (!frames.has(step)) {
    frames.set(step, fromPublic(await api(`/api/runs/${runId}/display/${step}`)));
    if (frames.size > 60) frames.delete(frames.keys().next().value);
  }
  return frames.get(step);
}

async function scrubTo(step) {
  const steps = feedRef.probeSteps;
  state.step = step;
  state.follow = step === steps[steps.length - 1] && !FINISHED.has(state.run?.status);
  try {
    const frame = await frameAt(step);
    if (state.step !== step) return; // a later scrub won
    state.frame = frame;
  } catch (err) {
    showError(err);
  }
  syncUrl();
  renderFrame();
  renderScrubber();
}

function showError(err) {
  $("run-error").hidden = !err;
  $("run-error").textContent = err ? err.message || String(err) : "";
}

function play() {
  state.paused = false;
  if (state.run && !FINISHED.has(state.run.status)) {
    state.follow = true;
    state.frame = feedRef.frame;
    syncUrl();
    renderAll();
    return;
  }
  // a finished run: replay the recorded probes from the scrubber onwards
  const steps = feedRef.probeSteps;
  let i = Number($("scrub").value);
  if (i >= steps.length - 1) i = -1;
  clearInterval(state.replay);
  state.replay = setInterval(async () => {
    i += 1;
    if (i >= steps.length) return pause();
    await scrubTo(steps[i]);
  }, 300);
  renderAll();
}

function pause() {
  state.paused = true;
  clearInterval(state.replay);
  state.replay = null;
  renderScrubber();
}

// -- the feed -------------------------------------------------------------------------------

// Live updates redraw together at most every LIVE_MS (the latest data wins), and never more often
// than keeps drawing under LOAD of the main thread: the wait is the drawing time since the last
// live redraw divided by LOAD. User actions redraw at once.
const LIVE_MS = 250;
const LOAD = 0.35;
const live = { changed: new Set(), timer: null, last: 0, spentAtLast: 0 };

function liveUpdate(what) {
  live.changed.add(what);
  if (!live.timer) live.timer = setTimeout(liveDraw, Math.max(0, live.last + LIVE_MS - performance.now()));
}

function liveDraw() {
  // the drawing since the last live redraw (its animation frames have run by now) sets the pace
  const since = performance.now() - live.last;
  const owed = Math.min(4000, (stats.totalMs - live.spentAtLast) / LOAD);
  if (since < owed) {
    live.timer = setTimeout(liveDraw, owed - since);
    return;
  }
  live.timer = null;
  live.last = performance.now();
  live.spentAtLast = stats.totalMs;
  const changed = new Set(live.changed);
  live.changed.clear();
  if (state.paused) return; // play redraws everything
  if (changed.has("metrics")) {
    renderMetrics();
    showRun();
  }
  if (changed.has("frame") && state.follow && !state.replay) state.frame = feedRef.frame;
  if (changed.has("frame")) renderFrame(); // includes the gradient flow
  else if (changed.has("flow")) renderFlow();
  renderScrubber();
}

function onFeed(what) {
  if (what === "error") return showError(new Error(feedRef.error));
  if (what === "run" || what === "end") {
    const first = !state.run;
    state.run = feedRef.run;
    showRun();
    if (first) start().catch(showError);
  }
  if (state.paused) return renderScrubber();
  if (what === "metrics" && state.run) liveUpdate("metrics");
  if (what === "gradflow") liveUpdate("flow");
  if (what === "frame") liveUpdate("frame");
  if (what === "end") {
    if (state.follow && !state.replay) state.frame = feedRef.frame;
    renderAll();
  }
}

function showRun() {
  const run = state.run;
  setStatus($("run-status"), run.status);
  $("run-desc").textContent = `${describeRun(run)} · ${run.config.optimizer.name} lr ${run.config.optimizer.lr} · clip ${run.config.clip.mode}${run.config.tbptt ? ` · tbptt ${run.config.tbptt}` : ""} · step ${Math.max(run.step, feedRef.metrics.step.at(-1) ?? 0)}/${run.steps} · seed ${run.config.seed}`;
  $("stop").disabled = FINISHED.has(run.status);
  if (run.error) showError(new Error(run.error));
}

async function start() {
  const run = state.run;
  const [cat, task] = await Promise.all([catalog(), api(`/api/runs/${runId}/task`)]);
  state.task = task;
  const layers = $("layer");
  for (let l = 0; l < run.config.num_layers; l++) layers.append(new Option(`${l}`, `${l}`, false, l === state.layer));
  $("floor").value = String(state.floor);
  $("metric-title").firstChild.textContent = `Metric: ${task.metric_name} `;
  $("metric-caption").textContent = {
    bpc: "Bits per character on the training batch (loss / ln 2): lower is better; the dashed line is the baseline's.",
    accuracy: "Accuracy on the training batch: the fraction of loss steps predicted right.",
    mse: "Mean squared error on the training batch; the dashed line is the baseline's.",
  }[task.metric_name];
  buildGates(cat.cells.find((c) => c.name === run.config.cell));
  $("export").href = `/api/runs/${runId}/export`;
  if (run.group) {
    const all = await api("/api/runs?limit=500");
    const ids = all.items.filter((r) => r.group === run.group).map((r) => r.id).reverse();
    Object.assign($("group"), { hidden: false, href: `/compare?runs=${ids.join(",")}` });
  }
  setupTools({ run, task, state, feed: feedRef });
  if (state.step !== null) await scrubTo(state.step);
  if (state.view) {
    const node = document.querySelector(`[data-view="${CSS.escape(state.view)}"]`);
    if (node) {
      node.classList.add("focus");
      node.scrollIntoView({ block: "start" });
    }
  }
  renderAll();
}

// -- controls -------------------------------------------------------------------------------

$("play").addEventListener("click", play);
$("pause").addEventListener("click", pause);
$("stop").addEventListener("click", async () => {
  try {
    state.run = await post(`/api/runs/${runId}/stop`);
    showRun();
  } catch (err) {
    showError(err);
  }
});
$("scrub").addEventListener("input", (ev) => scrubTo(feedRef.probeSteps[Number(ev.target.value)]));
$("clear-t").addEventListener("click", () => setT(null));
$("layer").addEventListener("change", (ev) => {
  state.layer = Number(ev.target.value);
  feedRef.setView(state.kind, state.layer);
  syncUrl();
  renderFrame();
});
$("floor").addEventListener("change", (ev) => {
  state.floor = Number(ev.target.value);
  syncUrl();
  renderFrame();
});
for (const radio of document.querySelectorAll('input[name="kind"]')) {
  radio.checked = radio.value === state.kind;
  radio.addEventListener("change", () => {
    state.kind = radio.value;
    feedRef.setView(state.kind, state.layer);
    syncUrl();
  });
}
for (const radio of document.querySelectorAll('input[name="conn"]')) {
  radio.checked = radio.value === state.conn;
  radio.addEventListener("change", () => {
    state.conn = radio.value;
    syncUrl();
    renderFrame();
  });
}
document.addEventListener("click", (ev) => {
  const link = ev.target.closest("[data-view-link]");
  if (!link) return;
  ev.preventDefault();
  state.view = link.dataset.viewLink;
  document.querySelectorAll(".view.focus").forEach((n) => n.classList.remove("focus"));
  link.closest(".view").classList.add("focus");
  syncUrl();
});

const feedRef = new Feed(runId, onFeed, { kind: state.kind, layer: state.layer });
window.__gatescopeRun = { state, feed: feedRef, charts };

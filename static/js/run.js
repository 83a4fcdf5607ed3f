// One run, live (/runs/{id}). One state object; the feed (websocket) and the controls change it,
// render*() hand each chart its input, and the charts draw on the next animation frame (only
// those on screen). Live updates are coalesced so the main thread stays free; "freeze view" stops
// drawing while the feed keeps buffering (the view's own state, `frozen`: the run trains on).
// Pausing the run itself (status 'paused'), its knobs and interventions are the lab bench's
// (bench.js); every chart over training marks the interventions (feed.interventions). The
// scrubber shows any recorded step: display-resolution frame bytes from GET
// .../probes/{step}?resolution=display, decoded once, kept in an LRU, with the neighbours prefetched. The URL carries ?step= ?t= ?view= ?kind= ?conn= ?layer= ?floor=.
// Constants (finished statuses, the floor, gate kinds and captions) come from /api/catalog.
// An attached run (gatescope.watch) is drawn by the same code: runhead.js says what differs
// (no task: no baseline, metric or tools; Stop asks the script; the frame's source and notes).

import { api, catalog, floorOptions, isAttached, post, setStatus } from "./api.js";
import { gradNormFigure, lossFigure, paramNormsFigure, saturationFigure, updateFigure } from "./curves.js";
import { Feed } from "./feed.js";
import { Pacer } from "./pace.js";
import { Chart } from "./plots.js";
import { Bench } from "./bench.js";
import { showDiagnosis } from "./diagnosis.js";
import { mountLineage } from "./lineage.js";
import { buildGates, viewKinds } from "./gates.js";
import { FrameStore } from "./scrubber.js";
import { applyKind, frameGap, showFrameInfo, showGroup, showHead, showLabel, showStorage, SOURCES } from "./runhead.js";
import { setupTools } from "./tools.js";
import { connectivityFigure, gradflowFigure, gradLinesFigure, itemizedFigure, stateFigure } from "./views.js";
import { WhyPanel } from "./why.js";

const $ = (id) => document.getElementById(id);
const runId = document.body.dataset.runId;
const query = new URLSearchParams(location.search);
const intOrNull = (v) => (v === null || v === "" || Number.isNaN(Number(v)) ? null : Number(v));

const state = {
  cat: null, // /api/catalog
  finished: new Set(), // catalog.statuses.finished
  run: null,
  task: null, // GET .../task (a built-in run's; an attached run has none)
  ready: false, // start() has set the page up for the run
  frozen: false, // the view is frozen (not drawing updates); not the run's status 'paused'
  follow: intOrNull(query.get("step")) === null,
  step: intOrNull(query.get("step")),
  frame: null,
  t: intOrNull(query.get("t")),
  view: query.get("view"),
  kind: query.get("kind") === "total" ? "total" : "last",
  conn: query.get("conn") === "total" ? "total" : "last",
  layer: intOrNull(query.get("layer")) ?? 0,
  floor: intOrNull(query.get("floor")), // null: the catalog's
  replay: null,
};
let feed = null;
let bench = null; // bench.js, once the run is known
const pace = new Pacer(liveDraw);
const frames = new FrameStore(runId); // the scrubber's recorded frames
const live = () => state.run && !state.finished.has(state.run.status);

// -- charts -------------------------------------------------------------------------------

const pickT = (p) => setT(p.x);
const charts = {
  loss: new Chart($("chart-loss"), lossFigure),
  metric: new Chart($("chart-metric"), lossFigure),
  gradnorm: new Chart($("chart-gradnorm"), gradNormFigure),
  params: new Chart($("chart-params"), paramNormsFigure),
  update: new Chart($("chart-update"), updateFigure),
  gradflow: new Chart($("chart-gradflow"), gradflowFigure, {
    name: "gradflow",
    legend: $("legend-gradflow"),
    onClick: (p) => {
      setT(p.x);
      scrubTo(p.y);
    },
  }),
  saturation: new Chart($("chart-saturation"), saturationFigure),
  gradlines: new Chart($("chart-gradlines"), gradLinesFigure, { onClick: pickT }),
  itemized: new Chart($("chart-itemized"), itemizedFigure, { onClick: pickT, legend: $("legend-itemized") }),
  connectivity: new Chart($("chart-connectivity"), connectivityFigure, { onClick: pickT, legend: $("legend-connectivity") }),
  hidden: new Chart($("chart-hidden"), stateFigure, { onClick: pickT, name: "hidden", legend: $("legend-hidden") }),
};
let gateCharts = {}; // gates.js, once the cell is known
const why = new WhyPanel($("why"), runId, { onClick: pickT });

// -- render: state -> chart inputs --------------------------------------------------------

function renderMetrics() {
  const m = feed.metrics;
  const { task, run } = state;
  const interventions = feed.interventions;
  charts.loss.update({ metrics: m, baseline: task ? task.baseline_loss : null, run, interventions });
  charts.metric.update({ metrics: m, baseline: task ? task.baseline_metric : null, field: "metric", title: task ? task.metric_name : "metric", run, interventions });
  charts.gradnorm.update({ metrics: m, clip: run ? run.config.clip : null, run, interventions });
  charts.params.update({ metrics: m, run, interventions });
  charts.update.update({ metrics: m, run, interventions });
}

function renderFlow() {
  const { frame, run, task } = state;
  const flow = feed.gradflow;
  const probes = feed.probeSteps.length;
  const interventions = feed.interventions;
  charts.gradflow.update({ flow, floor: state.floor, t: state.t, step: frame ? frame.step : null, frame, task, run, probes, bidirectional: run.config.bidirectional, interventions });
  charts.saturation.update({ flow, run, probes, interventions });
}

// every frame view, with or without a frame (a view without one says why: reasons.js)
function renderFrame() {
  const { frame, run, task } = state;
  if (!run) return;
  showFrameInfo(frame, frameGap(run, state.follow ? null : state.step, frame, frames.kept));
  const cfg = run.config;
  const common = { frame, t: state.t, floor: state.floor, layer: state.layer, bidirectional: cfg.bidirectional, task, run, probes: feed.probeSteps.length };
  const units = { directions: cfg.bidirectional ? 2 : 1, hidden: cfg.hidden_size };
  const gateKinds = viewKinds(state.cat.cells.find((c) => c.name === cfg.cell));
  charts.gradlines.update({ ...common, which: frame && frame.arrays.grad_c ? ["grad_h_last", "grad_h", "grad_c"] : ["grad_h_last", "grad_h"] });
  charts.itemized.update(common);
  charts.connectivity.update({ ...common, kind: state.conn });
  charts.hidden.update({ ...common, name: "h", units, relu: cfg.cell === "rnn_relu" });
  for (const [g, chart] of Object.entries(gateCharts)) chart.update({ ...common, name: g === "c" ? "c" : `gates.${g}`, units, gateKinds });
  why.update({ ...common, numLayers: cfg.num_layers, cell: cfg.cell, finished: !live(), interventions: feed.interventions });
  renderFlow(); // the shown step's row marker
}

function renderScrubber() {
  const steps = feed.probeSteps;
  const scrub = $("scrub");
  scrub.max = String(Math.max(0, steps.length - 1));
  const shown = state.frame ? state.frame.step : null;
  const i = shown === null ? steps.length - 1 : steps.indexOf(shown);
  if (i >= 0) scrub.value = String(i);
  const source = state.frame && SOURCES[state.frame.source] ? ` · ${SOURCES[state.frame.source]}` : "";
  $("scrub-label").textContent = shown === null ? "–" : `${shown}${source}${state.frame.pool ? " (pooled for display)" : ""}`;
  showStorage(state.run, steps.length, !live());
  $("live-note").textContent = state.frozen ? "view frozen: updates are kept, not drawn" : state.follow && live() ? "following live" : state.replay ? "replaying" : "";
}

function renderAll() {
  renderMetrics();
  renderFrame();
  renderFlow();
  renderScrubber();
}

// -- the scrubber -------------------------------------------------------------------------

// the step's frame, or the nearest kept one's if it is not stored (the newest one is in memory)
const frameAt = (step) => frames.show(step, feed.latest && { step: feed.latest.step, frame: () => feed.frame });

// the newest target wins: while a frame loads, later moves only retarget, and the loop then
// loads the newest one (a fast drag costs one request at a time, never a queue)
const scrub = { busy: false, last: null };
async function scrubTo(step) {
  const steps = feed.probeSteps;
  state.step = step;
  state.follow = step === steps.at(-1) && live();
  if (scrub.busy) return;
  scrub.busy = true;
  try {
    let target;
    do {
      target = state.step;
      state.frame = await frameAt(target);
    } while (state.step !== target);
    showError(null);
  } catch (err) {
    showError(err);
  } finally {
    scrub.busy = false;
  }
  syncUrl();
  renderFrame();
  renderScrubber();
  prefetchAround(state.step);
}

function prefetchAround(step) {
  const steps = feed.probeSteps;
  const i = steps.indexOf(step);
  const ahead = scrub.last === null || step >= scrub.last ? 1 : -1; // the way the user moves first
  scrub.last = step;
  frames.prefetch([steps[i + ahead], steps[i - ahead], steps[i + 2 * ahead]]);
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
    put("floor", state.floor, state.cat.display.floor);
    history.replaceState(null, "", url);
  }, 200);
}

function setT(t) {
  state.t = t === state.t ? null : t;
  syncUrl();
  renderFrame();
}

function showError(err) {
  $("run-error").hidden = !err;
  $("run-error").textContent = err ? err.message || String(err) : "";
}

function play() {
  state.frozen = false;
  if (live()) {
    state.follow = true;
    state.frame = feed.frame;
    syncUrl();
    renderAll();
    return;
  }
  // a finished run: replay the recorded probes from the scrubber onwards
  const steps = feed.probeSteps;
  let i = Number($("scrub").value);
  if (i >= steps.length - 1) i = -1;
  clearInterval(state.replay);
  state.replay = setInterval(async () => {
    i += 1;
    if (i >= steps.length) return freeze();
    await scrubTo(steps[i]);
  }, 300);
  renderAll();
}

function freeze() {
  state.frozen = true;
  clearInterval(state.replay);
  state.replay = null;
  renderScrubber();
}

// -- the feed -------------------------------------------------------------------------------

// live updates, paced (pace.js); user actions redraw at once
function liveDraw(changed) {
  if (state.frozen) return; // play redraws everything
  if (changed.has("metrics")) {
    renderMetrics();
    showRun(); // its step count
  }
  if (changed.has("frame") && state.follow && !state.replay) state.frame = feed.frame; // decoded here, once drawn
  if (changed.has("interventions")) renderMetrics();
  if (changed.has("frame")) renderFrame(); // includes the gradient flow
  else if (changed.has("gradflow") || changed.has("interventions")) renderFlow();
  renderScrubber();
}

function onFeed(what) {
  if (what === "refused") return showRefused(feed.refused);
  if (what === "run" || what === "end") {
    const first = !state.run;
    state.run = feed.run;
    showRun();
    if (first) {
      showLabel(state.run);
      start().catch(showError);
    }
  }
  if (!state.ready) return; // start() draws everything once the page is set up
  if (bench && (what === "run" || what === "end" || what === "interventions")) bench.show(state.run, feed.interventions);
  diagnose(what).catch(showError);
  if (state.frozen) return renderScrubber();
  if (what === "end") {
    if (state.follow && !state.replay) state.frame = feed.frame;
    renderAll();
  } else pace.add(what); // "run" too: the scrubber's steps
}

// the diagnosis is read at the first stored probe frame, a pause and the end (else: "read again")
const diagnosed = { read: false, status: null, asking: false };
async function diagnose(what) {
  if (!state.task || diagnosed.asking) return; // an attached run has no panel
  const { status } = state.run;
  const stopped = (what === "run" || what === "end") && status !== diagnosed.status && (status === "paused" || !live());
  diagnosed.status = status;
  const fresh = what === "start" || (what === "frame" && !diagnosed.read); // a frame: the one before is stored
  if (!stopped && !fresh) return;
  diagnosed.asking = true;
  try {
    diagnosed.read = (await showDiagnosis(runId, !!feed.frame)) || diagnosed.read;
  } finally {
    diagnosed.asking = false;
  }
}

// 4401, 4403, 4404: the server will not show this run to this page; say why and stay quiet
function showRefused({ code, reason }) {
  showError(new Error(`The server refused to stream this run (${code}): ${reason}`));
  setStatus($("run-status"), "refused");
  for (const id of ["play", "freeze", "pause-run", "resume-run", "stop"]) $(id).disabled = true;
}

function showRun() {
  const run = state.run;
  showHead(run, Math.max(run.step, feed.metrics.step.at(-1) ?? 0), state.finished.has(run.status));
  if (run.error) showError(new Error(run.error));
}

// once the first snapshot is in: the run's task, the layer list, the gates; then draw
async function start() {
  const run = state.run;
  const task = isAttached(run) ? null : await api(`/api/runs/${runId}/task`);
  const layers = $("layer");
  for (let l = 0; l < run.config.num_layers; l++) layers.append(new Option(`${l}`, `${l}`, false, l === state.layer));
  applyKind(run, task);
  gateCharts = buildGates($("gates"), state.cat.cells.find((c) => c.name === run.config.cell), pickT);
  $("export").href = `/api/runs/${runId}/export`;
  $("report").href = `/api/runs/${runId}/report`;
  if (run.group) await showGroup(run, state.cat.limits);
  if (task) setupTools({ run, task, frame: feed.frame, display: state.cat.display, cell: state.cat.cells.find((c) => c.name === run.config.cell), limits: state.cat.limits });
  state.task = task;
  diagnosed.status = run.status;
  diagnose("start").catch(showError); // not awaited: the views never wait for it
  bench = new Bench({ runId, run, cat: state.cat, finished: state.finished, onError: showError });
  bench.show(run, feed.interventions);
  mountLineage(run, () => (state.frame ? state.frame.step : null)); // its parent, its forks, "Fork from step k"
  state.ready = true;
  if (state.step !== null) await scrubTo(state.step);
  else state.frame = feed.frame;
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

function bindControls() {
  $("play").addEventListener("click", play);
  $("freeze").addEventListener("click", freeze);
  $("stop").addEventListener("click", async () => {
    try {
      state.run = await post(`/api/runs/${runId}/stop`);
      showRun();
    } catch (err) {
      showError(err);
    }
  });
  $("scrub").addEventListener("input", (ev) => scrubTo(feed.probeSteps[Number(ev.target.value)]));
  $("clear-t").addEventListener("click", () => setT(null));
  $("layer").addEventListener("change", (ev) => {
    state.layer = Number(ev.target.value);
    feed.setView(state.kind, state.layer);
    syncUrl();
    renderFrame();
  });
  floorOptions($("floor"), state.cat.display.floor, state.floor);
  $("floor").addEventListener("change", (ev) => {
    state.floor = Number(ev.target.value);
    syncUrl();
    renderFrame();
  });
  const radios = (name, key, then) => {
    for (const radio of document.querySelectorAll(`input[name="${name}"]`)) {
      radio.checked = radio.value === state[key];
      radio.addEventListener("change", () => {
        state[key] = radio.value;
        then();
        syncUrl();
      });
    }
  };
  radios("kind", "kind", () => feed.setView(state.kind, state.layer));
  radios("conn", "conn", renderFrame);
  document.addEventListener("click", (ev) => {
    const link = ev.target.closest("[data-view-link]");
    if (!link) return;
    ev.preventDefault();
    state.view = link.dataset.viewLink;
    document.querySelectorAll(".view.focus").forEach((n) => n.classList.remove("focus"));
    link.closest(".view").classList.add("focus");
    syncUrl();
  });
}

async function main() {
  state.cat = await catalog();
  state.finished = new Set(state.cat.statuses.finished);
  state.floor ??= state.cat.display.floor;
  bindControls();
  feed = new Feed(runId, onFeed, { kind: state.kind, layer: state.layer });
  window.__gatescopeRun = { state, feed, charts, frames };
}

main().catch(showError);

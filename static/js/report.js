// The one-file report's page (gatescope/report.py inlines it with every module it imports): one
// run's views drawn from the embedded data (embedded.js) with the run page's own figure functions
// (views.js, curves.js, gates.js) and charts (plots.js): the curves over training, the gradient
// flow (either kind, any layer), the frame views at the scrubber's step, hover and the highlighted
// timestep (click a cell).
// No request is made: everything is in the file. What this is not: the live run page (run.js),
// which reads the same views from the API (feed.js, scrubber.js).

import { gradNormFigure, lossFigure, paramNormsFigure, saturationFigure, updateFigure } from "./curves.js";
import { EmbeddedSource } from "./embedded.js";
import { buildGates } from "./gates.js";
import { Chart } from "./plots.js";
import { connectivityFigure, gradflowFigure, gradLinesFigure, itemizedFigure, stateFigure } from "./views.js";

const $ = (id) => document.getElementById(id);
const source = new EmbeddedSource(JSON.parse($("report-data").textContent));
const { run, task } = source;
const cfg = run.config;
const display = source.catalog.display;
const state = { frame: null, t: null, step: null };

const pickT = (p) => setT(p.x);
const chart = (name, figure, opts = {}) => new Chart($(`chart-${name}`), figure, { legend: $(`legend-${name}`), name, ...opts });
const charts = {
  loss: chart("loss", lossFigure),
  gradnorm: chart("gradnorm", gradNormFigure),
  params: chart("params", paramNormsFigure),
  update: chart("update", updateFigure),
  saturation: chart("saturation", saturationFigure),
  gradflow: chart("gradflow", gradflowFigure, { onClick: (p) => { setT(p.x); scrubTo(p.y); } }),
  gradlines: chart("gradlines", gradLinesFigure, { onClick: pickT }),
  itemized: chart("itemized", itemizedFigure, { onClick: pickT }),
  connectivity: chart("connectivity", connectivityFigure, { onClick: pickT }),
  hidden: chart("hidden", stateFigure, { onClick: pickT }),
};
const cell = source.catalog.cells.find((c) => c.name === cfg.cell);
const gateCharts = cell ? buildGates($("gates"), cell, source.catalog.gate_captions, pickT) : {};

function renderCurves() {
  const m = source.metrics;
  const interventions = source.interventions;
  charts.loss.update({ metrics: m, baseline: task ? task.baseline_loss : null, run, interventions });
  charts.gradnorm.update({ metrics: m, clip: cfg.clip ?? null, run, interventions });
  charts.params.update({ metrics: m, run, interventions });
  charts.update.update({ metrics: m, run, interventions });
}

function renderFrame() {
  const { frame } = state;
  const probes = source.probeSteps.length;
  const flow = source.gradflow;
  const common = { frame, t: state.t, floor: display.floor, layer: source.layer, bidirectional: !!cfg.bidirectional, task, run, probes };
  const units = { directions: cfg.bidirectional ? 2 : 1, hidden: cfg.hidden_size };
  charts.gradflow.update({ ...common, flow, step: frame ? frame.step : null, interventions: source.interventions });
  charts.saturation.update({ flow, run, probes, interventions: source.interventions });
  charts.gradlines.update({ ...common, which: frame && frame.arrays.grad_c ? ["grad_h_last", "grad_h", "grad_c"] : ["grad_h_last", "grad_h"] });
  charts.itemized.update(common);
  charts.connectivity.update({ ...common, kind: "last" });
  charts.hidden.update({ ...common, name: "h", units, relu: cfg.cell === "rnn_relu" });
  for (const [g, c] of Object.entries(gateCharts)) c.update({ ...common, name: g === "c" ? "c" : `gates.${g}`, units, gateKinds: display.gate_kinds });
  const steps = source.probeSteps;
  $("scrub").max = String(Math.max(0, steps.length - 1));
  if (frame) $("scrub").value = String(steps.indexOf(frame.step));
  $("scrub-label").textContent = frame ? String(frame.step) : "–";
}

function setT(t) {
  state.t = t === state.t ? null : t;
  renderFrame();
}

async function scrubTo(step) {
  state.step = step;
  const frame = await source.show(step);
  if (state.step !== step) return; // a later move won
  state.frame = frame;
  renderFrame();
}

function head() {
  $("run-id").textContent = run.name ? `${run.name} (${run.id})` : run.id;
  $("run-status").textContent = run.status;
  $("run-desc").textContent = `${cfg.cell ?? ""} · task ${cfg.task && cfg.task.name ? cfg.task.name : "(your own)"} · ${source.metrics.length} steps recorded`;
  const r = source.report;
  if (r) {
    const left = r.left_out ? `${r.left_out} of the ${r.stored_steps.length} stored probe frames were left out (thinned evenly; step ${r.kept_steps[0]} and the latest kept)` : `all ${r.stored_steps.length} stored probe frames are in it`;
    $("report-note").textContent = `A one-file report within a budget of ${r.budget_mb} MB: ${left}.`;
  }
}

async function main() {
  head();
  renderCurves();
  $("scrub").addEventListener("input", (ev) => scrubTo(source.probeSteps[Number(ev.target.value)]));
  $("clear-t").addEventListener("click", () => setT(null));
  for (let l = 0; l < (cfg.num_layers ?? 1); l++) $("layer").append(new Option(`${l}`, `${l}`));
  const view = () => {
    source.setView($("kind").value, Number($("layer").value));
    renderFrame();
  };
  $("layer").addEventListener("change", view);
  $("kind").addEventListener("change", view);
  state.frame = source.frame; // the newest
  renderFrame();
  window.__gatescopeReport = { source, state, charts };
}

main().catch((err) => {
  $("run-error").hidden = false;
  $("run-error").textContent = err.message || String(err);
});

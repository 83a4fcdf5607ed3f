// One run's views from an embedded source (embedded.js), for the one-file report (report.js) and
// the notebook widget (widget.js): `mountRunView(root, source)` builds its own markup in `root`
// (nothing by id, so several can share a page) and draws, with the run page's own figure functions
// (views.js, curves.js, gates.js) and charts (plots.js), the curves over training, the gradient
// flow (either kind, any layer), the frame views at the scrubber's step, hover and the highlighted
// timestep (click a cell). It returns {refresh(), state, charts, source}: after `source.add(...)`,
// `refresh()` redraws what changed, and the scrubber follows the newest frame unless the user moved
// it elsewhere (as on the run page). No request is made.
// What this is not: the live run page (run.js), which reads the same views from the API.

import { gradNormFigure, lossFigure, paramNormsFigure, saturationFigure, updateFigure } from "./curves.js";
import { buildGates, viewKinds } from "./gates.js";
import { Chart } from "./plots.js";
import { connectivityFigure, gradflowFigure, gradLinesFigure, itemizedFigure, stateFigure } from "./views.js";

const VIEWS = [
  ["loss", "Loss", ""],
  ["gradflow", "Gradient flow", "wide tall"],
  ["gradlines", "Gradient at the selected step", ""],
  ["itemized", "Itemized ‖∂ℓ_s/∂h_t‖", ""],
  ["connectivity", "Input connectivity", "strip"],
  ["hidden", "Hidden state h", ""],
  ["saturation", "Gate saturation over training", ""],
  ["gradnorm", "Global gradient norm", ""],
  ["params", "Per-parameter gradient norms", ""],
  ["update", "Update ratio ‖Δθ‖/‖θ‖", ""],
];

const viewMarkup = ([name, title, kind]) => {
  const wide = kind.includes("wide") ? " wide" : "";
  const chart = kind.includes("tall") ? " tall" : kind.includes("strip") ? " strip" : "";
  return `<section class="view${wide}" data-view="${name}"><h3>${title}</h3>
<div class="chart${chart}" data-chart="${name}"></div><div class="legend" data-legend="${name}"></div></section>`;
};

const MARKUP = `<section class="run-head"><div>
<h1>Run <code data-part="run-id"></code> <span data-part="run-status" class="status"></span></h1>
<p data-part="run-desc" class="desc"></p><p data-part="note" class="desc" role="note"></p>
<p data-part="error" class="error" role="alert" hidden></p></div></section>
<section class="scrubber" aria-label="probe step">
<span>probe step <output data-part="scrub-label">–</output></span>
<input type="range" data-part="scrub" aria-label="probe step" min="0" max="0" value="0" step="1">
<span class="opts"><label>layer <select data-part="layer"></select></label>
<label>gradient <select data-part="kind"><option value="last">last loss ‖∂ℓ_T/∂h_t‖</option>
<option value="total">total ‖∂L/∂h_t‖</option></select></label>
<button type="button" data-part="clear-t">clear t</button></span></section>
<div class="views">${VIEWS.map(viewMarkup).join("\n")}<div class="gates" data-part="gates"></div></div>`;

/** What the embedded data say they kept of the stored probe frames, or "" when they say nothing. */
function keptNote(r) {
  if (!r) return "";
  const left = r.left_out
    ? `${r.left_out} of the ${r.stored_steps.length} stored probe frames were left out (thinned evenly; step ${r.kept_steps[0]} and the latest kept)`
    : `all ${r.stored_steps.length} stored probe frames are in it`;
  return `Within a budget of ${Number(r.budget_mb.toPrecision(3))} MB: ${left}.`;
}

/** Mount one run's views in `root` (emptied) from `source` (an EmbeddedSource). */
export function mountRunView(root, source) {
  root.classList.add("run-view");
  root.innerHTML = MARKUP;
  const part = (name) => root.querySelector(`[data-part="${name}"]`);
  const state = { frame: null, t: null, step: null, follow: true };
  const { task } = source;
  const cfg = source.run.config;
  const display = source.catalog.display;

  const fail = (err) => {
    part("error").hidden = false;
    part("error").textContent = err.message || String(err);
  };
  const pickT = (p) => setT(p.x);
  const chart = (name, figure, opts = {}) =>
    new Chart(root.querySelector(`[data-chart="${name}"]`), figure, { legend: root.querySelector(`[data-legend="${name}"]`), name, ...opts });
  const charts = {
    loss: chart("loss", lossFigure),
    gradnorm: chart("gradnorm", gradNormFigure),
    params: chart("params", paramNormsFigure),
    update: chart("update", updateFigure),
    saturation: chart("saturation", saturationFigure),
    gradflow: chart("gradflow", gradflowFigure, { onClick: (p) => { setT(p.x); userScrub(p.y); } }),
    gradlines: chart("gradlines", gradLinesFigure, { onClick: pickT }),
    itemized: chart("itemized", itemizedFigure, { onClick: pickT }),
    connectivity: chart("connectivity", connectivityFigure, { onClick: pickT }),
    hidden: chart("hidden", stateFigure, { onClick: pickT }),
  };
  const cell = source.catalog.cells.find((c) => c.name === cfg.cell);
  const gateCharts = cell ? buildGates(part("gates"), cell, pickT, { anchors: false }) : {};
  const gateKinds = cell ? viewKinds(cell) : {};
  Object.assign(charts, Object.fromEntries(Object.entries(gateCharts).map(([g, c]) => [`gate-${g}`, c])));

  function renderCurves() {
    const { metrics: m, interventions, run } = source;
    charts.loss.update({ metrics: m, baseline: task ? task.baseline_loss : null, run, interventions });
    charts.gradnorm.update({ metrics: m, clip: cfg.clip ?? null, run, interventions });
    charts.params.update({ metrics: m, run, interventions });
    charts.update.update({ metrics: m, run, interventions });
  }

  function renderFrame() {
    const { frame } = state;
    const probes = source.probeSteps.length;
    const flow = source.gradflow;
    const common = { frame, t: state.t, floor: display.floor, layer: source.layer, bidirectional: !!cfg.bidirectional, task, run: source.run, probes };
    const units = { directions: cfg.bidirectional ? 2 : 1, hidden: cfg.hidden_size };
    charts.gradflow.update({ ...common, flow, step: frame ? frame.step : null, interventions: source.interventions });
    charts.saturation.update({ flow, run: source.run, probes, interventions: source.interventions });
    charts.gradlines.update({ ...common, which: frame && frame.arrays.grad_c ? ["grad_h_last", "grad_h", "grad_c"] : ["grad_h_last", "grad_h"] });
    charts.itemized.update(common);
    charts.connectivity.update({ ...common, kind: "last" });
    charts.hidden.update({ ...common, name: "h", units, relu: cfg.cell === "rnn_relu" });
    for (const [g, c] of Object.entries(gateCharts)) c.update({ ...common, name: g === "c" ? "c" : `gates.${g}`, units, gateKinds });
    const steps = source.probeSteps;
    part("scrub").max = String(Math.max(0, steps.length - 1));
    if (frame && steps.includes(frame.step)) part("scrub").value = String(steps.indexOf(frame.step));
    part("scrub-label").textContent = frame ? String(frame.step) : "–";
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

  // the user picked a step: follow the newest frame again only when they picked the newest
  function userScrub(step) {
    state.follow = step >= (source.probeSteps.at(-1) ?? 0);
    scrubTo(step).catch(fail);
  }

  function head() {
    const { run } = source;
    part("run-id").textContent = run.name ? `${run.name} (${run.id})` : run.id;
    part("run-status").textContent = run.status;
    part("run-desc").textContent = `${cfg.cell ?? ""} · task ${cfg.task && cfg.task.name ? cfg.task.name : "(your own)"} · ${source.metrics.length} steps recorded`;
    part("note").textContent = keptNote(source.report);
  }

  function refresh() {
    try {
      head();
      renderCurves();
      if (state.follow || !state.frame) {
        state.frame = source.frame; // the newest
        state.step = state.frame ? state.frame.step : null;
      } else if (!source.probeSteps.includes(state.frame.step)) scrubTo(state.frame.step).catch(fail); // thinned away: the nearest kept
      renderFrame();
    } catch (err) {
      fail(err);
    }
  }

  part("scrub").addEventListener("input", (ev) => userScrub(source.probeSteps[Number(ev.target.value)]));
  part("clear-t").addEventListener("click", () => setT(null));
  for (let l = 0; l < (cfg.num_layers ?? 1); l++) part("layer").append(new Option(`${l}`, `${l}`));
  const view = () => {
    source.setView(part("kind").value, Number(part("layer").value));
    renderFrame();
  };
  part("layer").addEventListener("change", view);
  part("kind").addEventListener("change", view);
  refresh();
  return { refresh, state, charts, source };
}

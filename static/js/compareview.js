// The comparison view: runs side by side, one column each (gradient flow, loss with the task's
// baseline, hidden state and ||dl_T/dh_t|| of the latest frame) on SHARED colour scales and axes,
// so a vanishing gradient and a preserved one can be read against each other.
// `mountCompareView(root, sources, opts)` builds its own DOM in `root` and draws from sources
// that offer the Feed's names (run, metrics, gradflow, frame, probeSteps, setView(kind, layer)):
// a live Feed (the compare page, compare.js) or an EmbeddedSource (the group report,
// comparereport.js, and the notebook widget), so all three draw with this one implementation.
// Sources that can show any kept step (`show(step)`: an EmbeddedSource) get a scrubber shared by
// the columns: each shows its kept frame nearest the step (the latest until the scrubber moves,
// and again once it is back at the end), the gradient flow marking that row; a Feed shows its
// newest frame. opts: kind ("last" | "total"), floor (log10 of the smallest norm drawn; default the sources'
// catalog floor), controls (true: its own kind and floor choice; the compare page has its own),
// link(run) (the href of a run's title, or null for none: a file has no server to link to).
// Returns {state, columns, render, schedule, setKind, setFloor, showStep}; a column is {runId,
// node, head, charts, feed (its source), task (source.task, or set by the page), error, shown}.
// What this is not: a data source or the diff of two runs (diff.js).

import { describeRun, el, floorOptions, isAttached, runLabel, setStatus } from "./api.js";
import { layerRow } from "./frame.js";
import { RDBU, VIRIDIS } from "./heatmap.js";
import { Pacer } from "./pace.js";
import { Chart, legend, logRange, mergeRanges } from "./plots.js";
import { lossFigure } from "./curves.js";
import { absMax, flowRange, gradflowFigure, gradLinesFigure, stateFigure } from "./views.js";

const VIEWS = [
  ["gradflow", "Gradient flow", "chart tall", gradflowFigure],
  ["loss", "Loss (dashed: baseline)", "chart short", lossFigure],
  ["hidden", "Hidden state", "chart", stateFigure],
  ["lines", "‖∂ℓ_T/∂h_t‖", "chart short", gradLinesFigure],
];
const AT_FRAME = new Set(["hidden", "lines"]); // the rows drawn from the frame shown
const KINDS = { last: "last loss ‖∂ℓ_T/∂h_t‖", total: "total ‖∂L/∂h_t‖" };

function column(view, source) {
  const runId = source.run ? source.run.id : source.runId;
  const node = el("section", { class: "column", "data-run": runId });
  const head = el("div", { class: "col-head" });
  node.append(head);
  const charts = {};
  const titles = {};
  for (const [name, title, cls, figure] of VIEWS) {
    const chartNode = el("div", { class: cls, id: `chart-${name}-${runId}`, "data-chart": name });
    titles[name] = el("h3", { class: "row-title", text: title });
    node.append(titles[name], chartNode);
    const onClick = (p) => {
      view.state.t = view.state.t === p.x ? null : p.x;
      if (name === "gradflow" && view.scrub) view.showStep(p.y); // and that row's frame
      else view.render(); // a user action draws at once
    };
    charts[name] = new Chart(chartNode, figure, { onClick, name: `${name}-${runId}` });
  }
  return { runId, node, head, charts, titles, feed: source, task: source.task ?? null, error: null, shown: null };
}

// the frame a column shows: the scrubbed step's, else the newest
const frameOf = (view, c) => (view.state.step === null ? c.feed.frame : c.shown);

// the ranges every column shares
function shared(view, floor) {
  const cols = view.columns.filter((c) => c.feed.run && !c.error);
  const flows = cols.map((c) => c.feed.gradflow).filter((f) => f && f.steps.length);
  const flowScale = flows.length ? mergeRanges(flows.map((f) => flowRange(f, floor))) : null;
  let lo = Infinity;
  let hi = -Infinity;
  let steps = 1;
  for (const c of cols) {
    const m = c.feed.metrics;
    for (const v of m.loss) {
      if (Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    if (c.task) hi = Math.max(hi, c.task.baseline_loss);
    steps = Math.max(steps, c.feed.run.steps ?? 0, c.feed.metrics.step.at(-1) ?? 0);
  }
  const pad = (hi - lo) * 0.05 || 0.1;
  const lossRange = Number.isFinite(lo) ? [Math.max(0, lo - pad), hi + pad] : null;
  const frames = cols.map((c) => frameOf(view, c)).filter(Boolean);
  const relu = cols.some((c) => c.feed.run.config.cell === "rnn_relu");
  const hMax = relu ? Math.max(1e-6, ...frames.map((f) => absMax(f, "h", 0))) : 1;
  const lines = frames.map((f) => logRange([layerRow(f, "grad_h_last") || [1]], floor));
  const lineRange = lines.length ? mergeRanges(lines) : null;
  return { flowScale, lossRange, xRange: [0, steps], hMax, lineRange };
}

function drawHead(c, link) {
  const run = c.feed.run;
  const status = el("span");
  setStatus(status, run.status);
  const href = link ? link(run) : null;
  const title = href ? el("a", { href }, runLabel(run)) : el("span", { class: "run-label" }, runLabel(run));
  const step = `step ${Math.max(run.step, c.feed.metrics.step.at(-1) ?? 0)}${isAttached(run) ? "" : `/${run.steps}`}`;
  c.head.replaceChildren(
    el("h2", {}, title, " ", status, isAttached(run) ? el("span", { class: "badge", text: "attached" }) : null),
    el("p", { class: "desc", text: [run.name ? describeRun(run) : null, step, run.id].filter(Boolean).join(" · ") }),
  );
}

function draw(view, link) {
  const { state, columns, legends } = view;
  const s = shared(view, state.floor);
  for (const c of columns) {
    const run = c.feed.run;
    if (!run || c.error) continue;
    drawHead(c, link);
    const frame = frameOf(view, c);
    const at = !frame ? "" : state.step === null ? ` at the latest step (${frame.step})` : ` at step ${frame.step}`;
    for (const [name, title] of VIEWS) if (AT_FRAME.has(name)) c.titles[name].textContent = title + at;
    const { task } = c;
    const common = { frame, task, run, probes: c.feed.probeSteps.length, t: state.t, bidirectional: run.config.bidirectional };
    const step = view.scrub && frame ? frame.step : null;
    c.charts.gradflow.update({ ...common, flow: c.feed.gradflow, floor: state.floor, range: s.flowScale, step });
    c.charts.loss.update({ metrics: c.feed.metrics, baseline: task ? task.baseline_loss : null, yRange: s.lossRange, xRange: s.xRange, run });
    c.charts.hidden.update({ ...common, name: "h", zrange: [-s.hMax, s.hMax] });
    c.charts.lines.update({ ...common, which: ["grad_h_last"], yRange: s.lineRange, floor: state.floor });
  }
  if (s.flowScale) {
    legend(legends.flow, {
      colors: VIRIDIS, min: s.flowScale[0], max: s.flowScale[1], log: true, floor: state.floor,
      label: `shared: ${state.kind === "last" ? "‖∂ℓ_T/∂h_t‖" : "‖∂L/∂h_t‖"}`,
    });
  }
  legend(legends.hidden, { colors: RDBU, min: -s.hMax, max: s.hMax, label: "shared: h" });
  if (view.scrub) drawScrub(view);
}

// the steps any column has a frame of, the scrubber over them, and what it shows
const allSteps = (view) => [...new Set(view.columns.flatMap((c) => c.feed.probeSteps))].sort((a, b) => a - b);

function drawScrub(view) {
  const { input, label } = view.scrub;
  const steps = allSteps(view);
  input.max = String(Math.max(0, steps.length - 1));
  const { step } = view.state; // a clicked flow row's step may have no kept frame: the nearest
  const near = (best, s, i) => (Math.abs(s - step) < Math.abs(steps[best] - step) ? i : best);
  input.value = String(step === null ? steps.length - 1 : steps.reduce(near, 0));
  label.textContent = view.state.step === null ? `${steps.at(-1) ?? "–"} (latest)` : String(view.state.step);
}

function scrubber(view) {
  const input = el("input", { type: "range", class: "compare-scrub", min: "0", max: "0", value: "0", step: "1", "aria-label": "probe step" });
  const label = el("output", { class: "compare-step", text: "–" });
  input.addEventListener("input", () => {
    const steps = allSteps(view);
    const i = Number(input.value);
    view.showStep(i >= steps.length - 1 ? null : steps[i]); // at the end: follow the newest again
  });
  view.scrub = { input, label };
  return el("label", { class: "compare-scrubber" }, "probe step ", label, " ", input);
}

// the view's own kind and floor choice (selects, so two views on one page never share a radio group)
function controls(view, defaultFloor) {
  const kind = el("select", { class: "compare-kind", "aria-label": "gradient kind" },
    ...Object.entries(KINDS).map(([k, label]) => new Option(label, k, false, k === view.state.kind)));
  kind.addEventListener("change", () => view.setKind(kind.value));
  const floor = el("select", { class: "compare-floor", "aria-label": "floor" });
  floorOptions(floor, defaultFloor, view.state.floor);
  floor.addEventListener("change", () => view.setFloor(Number(floor.value)));
  return [el("label", {}, "gradient ", kind), el("label", {}, "floor ", floor)];
}

export function mountCompareView(root, sources, { kind = "last", floor = null, controls: own = true, link = null } = {}) {
  const defaultFloor = sources.find((s) => s.catalog)?.catalog.display.floor ?? floor;
  const state = { kind, floor: floor ?? defaultFloor, t: null, step: null }; // step null: the newest
  const legends = { flow: el("div", { class: "legend", id: "legend-flow" }), hidden: el("div", { class: "legend", id: "legend-hidden" }) };
  const view = { state, legends, columns: [], scrub: null };
  const pace = new Pacer(() => view.render()); // live changes redraw together, paced
  view.render = () => draw(view, link);
  view.schedule = () => pace.add("live");
  view.setKind = (k) => {
    state.kind = k;
    for (const source of sources) source.setView(k, 0);
    view.render();
  };
  view.setFloor = (f) => {
    state.floor = f;
    view.render();
  };
  view.showStep = async (step) => { // each column's kept frame nearest `step`; null: the newest
    state.step = step;
    const shown = step === null ? [] : await Promise.all(view.columns.map((c) => c.feed.show(step)));
    if (state.step !== step) return; // a later move won
    view.columns.forEach((c, i) => (c.shown = shown[i] ?? null));
    view.render();
  };
  view.columns = sources.map((source) => column(view, source));
  const grid = el("div", { class: "compare" }, ...view.columns.map((c) => c.node));
  grid.style.setProperty("--columns", String(sources.length));
  const scrub = sources.every((source) => typeof source.show === "function") ? [scrubber(view)] : [];
  const bar = el("div", { class: "opts compare-bar" }, ...scrub, ...(own ? controls(view, defaultFloor) : []), legends.flow, legends.hidden);
  root.append(bar, grid);
  for (const source of sources) source.setView(state.kind, 0);
  view.render();
  return view;
}

// The comparison view: runs side by side, one column each (gradient flow, loss with the task's
// baseline, hidden state and ||dl_T/dh_t|| of the latest frame) on SHARED colour scales and axes,
// so a vanishing gradient and a preserved one can be read against each other.
// `mountCompareView(root, sources, opts)` builds its own DOM in `root` and draws from sources
// that offer the Feed's names (run, metrics, gradflow, frame, probeSteps, setView(kind, layer)):
// a live Feed (the compare page, compare.js) or an EmbeddedSource (the group report,
// comparereport.js, and the notebook widget), so all three draw with this one implementation.
// opts: kind ("last" | "total"), floor (log10 of the smallest norm drawn; default the sources'
// catalog floor), controls (true: its own kind and floor choice; the compare page has its own),
// link(run) (the href of a run's title, or null for none: a file has no server to link to).
// Returns {state, columns, render, schedule, setKind, setFloor}; a column is {runId, node, head,
// charts, feed (its source), task (source.task, or set by the page), error}.
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
  ["hidden", "Hidden state at the latest step", "chart", stateFigure],
  ["lines", "‖∂ℓ_T/∂h_t‖ at the latest step", "chart short", gradLinesFigure],
];
const KINDS = { last: "last loss ‖∂ℓ_T/∂h_t‖", total: "total ‖∂L/∂h_t‖" };

function column(view, source) {
  const runId = source.run ? source.run.id : source.runId;
  const node = el("section", { class: "column", "data-run": runId });
  const head = el("div", { class: "col-head" });
  node.append(head);
  const charts = {};
  for (const [name, title, cls, figure] of VIEWS) {
    const chartNode = el("div", { class: cls, id: `chart-${name}-${runId}` });
    node.append(el("h3", { class: "row-title", text: title }), chartNode);
    const onClick = (p) => {
      view.state.t = view.state.t === p.x ? null : p.x;
      view.render(); // a user action draws at once
    };
    charts[name] = new Chart(chartNode, figure, { onClick, name: `${name}-${runId}` });
  }
  return { runId, node, head, charts, feed: source, task: source.task ?? null, error: null };
}

// the ranges every column shares
function shared(columns, floor) {
  const cols = columns.filter((c) => c.feed.run && !c.error);
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
  const frames = cols.map((c) => c.feed.frame).filter(Boolean);
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
  const s = shared(columns, state.floor);
  for (const c of columns) {
    const run = c.feed.run;
    if (!run || c.error) continue;
    drawHead(c, link);
    const frame = c.feed.frame;
    const { task } = c;
    const common = { frame, task, run, probes: c.feed.probeSteps.length, t: state.t, bidirectional: run.config.bidirectional };
    c.charts.gradflow.update({ ...common, flow: c.feed.gradflow, floor: state.floor, range: s.flowScale });
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
  const state = { kind, floor: floor ?? defaultFloor, t: null };
  const legends = { flow: el("div", { class: "legend", id: "legend-flow" }), hidden: el("div", { class: "legend", id: "legend-hidden" }) };
  const view = { state, legends, columns: [] };
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
  view.columns = sources.map((source) => column(view, source));
  const grid = el("div", { class: "compare" }, ...view.columns.map((c) => c.node));
  grid.style.setProperty("--columns", String(sources.length));
  const bar = el("div", { class: "opts compare-bar" }, ...(own ? controls(view, defaultFloor) : []), legends.flow, legends.hidden);
  root.append(bar, grid);
  for (const source of sources) source.setView(state.kind, 0);
  view.render();
  return view;
}

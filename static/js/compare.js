// Runs side by side (/compare?runs=a,b,c): gradient flow, loss, hidden state and the latest
// step's ||dl_T/dh_t|| for each run, on SHARED colour scales and axes, so a vanishing gradient
// and a preserved one can be read against each other. ?kind= and ?floor= are kept in the URL.
// /compare?runs=a,b&diff=1 shows the diff of two runs instead (diff.js).
// One state object; each column's Feed changes it, render() draws every column (coalesced).

import { api, catalog, describeRun, el, floorOptions, isAttached, runLabel, setStatus } from "./api.js";
import { Feed } from "./feed.js";
import { Pacer } from "./pace.js";
import { layerRow } from "./frame.js";
import { RDBU, VIRIDIS } from "./heatmap.js";
import { Chart, legend, logRange, mergeRanges } from "./plots.js";
import { lossFigure } from "./curves.js";
import { absMax, flowRange, gradflowFigure, gradLinesFigure, stateFigure } from "./views.js";
import { DiffView } from "./diff.js";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const ids = (query.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean).slice(0, 8);
const diff = query.get("diff") === "1"; // the diff of two runs (diff.js) instead of the columns
const state = {
  kind: query.get("kind") === "total" ? "total" : "last",
  floor: query.get("floor") === null ? null : Number(query.get("floor")), // null: the catalog's
  defaultFloor: null,
  t: null,
  columns: [],
  diff: null, // diff.js's view, when ?diff=1
};

function column(runId) {
  const node = el("section", { class: "column", "data-run": runId });
  const head = el("div", { class: "col-head" });
  const charts = {};
  const views = [
    ["gradflow", "Gradient flow", "chart tall"],
    ["loss", "Loss (dashed: baseline)", "chart short"],
    ["hidden", "Hidden state at the latest step", "chart"],
    ["lines", "‖∂ℓ_T/∂h_t‖ at the latest step", "chart short"],
  ];
  node.append(head);
  for (const [name, title, cls] of views) {
    const chartNode = el("div", { class: cls, id: `chart-${name}-${runId}` });
    node.append(el("h3", { class: "row-title", text: title }), chartNode);
    const onClick = (p) => {
      state.t = state.t === p.x ? null : p.x;
      render(); // a user action draws at once
    };
    const figure = { gradflow: gradflowFigure, loss: lossFigure, hidden: stateFigure, lines: gradLinesFigure }[name];
    charts[name] = new Chart(chartNode, figure, { onClick, name: `${name}-${runId}` });
  }
  const col = { runId, node, head, charts, task: null, feed: null };
  col.feed = new Feed(runId, (what) => {
    if (what === "run" && !col.task && !isAttached(col.feed.run)) { // an attached run has no task
      api(`/api/runs/${runId}/task`).then((task) => {
        col.task = task;
        schedule();
      });
    }
    if (what === "refused") {
      const { code, reason } = col.feed.refused;
      head.replaceChildren(el("p", { class: "error", role: "alert", text: `${runId}: the server refused to stream this run (${code}): ${reason}` }));
      return;
    }
    schedule();
  }, { kind: state.kind });
  return col;
}

// live messages redraw together, paced (pace.js); a user action draws at once
const pace = new Pacer(() => render());
const schedule = () => pace.add("live");

// the ranges every column shares
function shared() {
  const cols = state.columns.filter((c) => c.feed.run);
  const flows = cols.map((c) => c.feed.gradflow).filter((f) => f.steps.length);
  const flowScale = flows.length ? mergeRanges(flows.map((f) => flowRange(f, state.floor))) : null;
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
    steps = Math.max(steps, c.feed.run.steps, c.feed.metrics.step.at(-1) ?? 0);
  }
  const pad = (hi - lo) * 0.05 || 0.1;
  const lossRange = Number.isFinite(lo) ? [Math.max(0, lo - pad), hi + pad] : null;
  const frames = cols.map((c) => c.feed.frame).filter(Boolean);
  const relu = cols.some((c) => c.feed.run.config.cell === "rnn_relu");
  const hMax = relu ? Math.max(1e-6, ...frames.map((f) => absMax(f, "h", 0))) : 1;
  const lines = frames.map((f) => logRange([layerRow(f, "grad_h_last") || [1]], state.floor));
  const lineRange = lines.length ? mergeRanges(lines) : null;
  return { flowScale, lossRange, xRange: [0, steps], hMax, lineRange };
}

function render() {
  const s = shared();
  for (const c of state.columns) {
    const run = c.feed.run;
    if (!run) continue;
    const status = el("span");
    setStatus(status, run.status);
    c.head.replaceChildren(
      el("h2", {}, el("a", { href: `/runs/${run.id}` }, runLabel(run)), " ", status, isAttached(run) ? el("span", { class: "badge", text: "attached" }) : null),
      el("p", { class: "desc", text: [run.name ? describeRun(run) : null, `step ${Math.max(run.step, c.feed.metrics.step.at(-1) ?? 0)}${isAttached(run) ? "" : `/${run.steps}`}`, run.id].filter(Boolean).join(" · ") }),
    );
    const flow = c.feed.gradflow;
    const frame = c.feed.frame;
    const { task } = c;
    const common = { frame, task, run, probes: c.feed.probeSteps.length, t: state.t, bidirectional: run.config.bidirectional };
    c.charts.gradflow.update({ ...common, flow, floor: state.floor, range: s.flowScale });
    c.charts.loss.update({ metrics: c.feed.metrics, baseline: task ? task.baseline_loss : null, yRange: s.lossRange, xRange: s.xRange, run });
    c.charts.hidden.update({ ...common, name: "h", zrange: [-s.hMax, s.hMax] });
    c.charts.lines.update({ ...common, which: ["grad_h_last"], yRange: s.lineRange, floor: state.floor });
  }
  if (s.flowScale) {
    legend($("legend-flow"), {
      colors: VIRIDIS, min: s.flowScale[0], max: s.flowScale[1], log: true, floor: state.floor,
      label: `shared: ${state.kind === "last" ? "‖∂ℓ_T/∂h_t‖" : "‖∂L/∂h_t‖"}`,
    });
  }
  legend($("legend-hidden"), { colors: RDBU, min: -s.hMax, max: s.hMax, label: "shared: h" });
}

function syncUrl() {
  const url = new URL(location.href);
  if (state.kind === "last") url.searchParams.delete("kind");
  else url.searchParams.set("kind", state.kind);
  if (state.floor === state.defaultFloor) url.searchParams.delete("floor");
  else url.searchParams.set("floor", state.floor);
  history.replaceState(null, "", url);
}

async function listGroups() {
  $("compare-empty").hidden = false;
  const runs = (await api("/api/runs?limit=500")).items;
  const groups = new Map();
  for (const r of runs) if (r.group) (groups.get(r.group) || groups.set(r.group, []).get(r.group)).push(r);
  const items = [...groups.values()].slice(0, 20).map((rs) => {
    const idsOf = rs.map((r) => r.id).reverse().join(",");
    return el("li", {}, el("a", { href: `/compare?runs=${idsOf}` }, rs.map(runLabel).reverse().join(" | ")), ` ${describeRun(rs[0]).split(" · ")[1]}`);
  });
  $("groups").replaceChildren(...(items.length ? items : [el("li", { text: "no comparison groups yet" })]));
}

// ?diff=1: two runs against each other (diff.js); any other count of runs gets a sentence
function showDiff() {
  document.querySelector(".compare-head h1").textContent = "Diff of two runs";
  document.querySelector(".compare-head .desc").textContent = "Run b against run a, aligned by training step: gradient flow, hidden state and loss.";
  if (ids.length !== 2) {
    $("compare").append(el("p", { class: "error", role: "alert", text: `A diff is of exactly two runs (?runs=a,b&diff=1); this address names ${ids.length}.` }));
    return;
  }
  state.diff = new DiffView(ids, { kind: state.kind, floor: state.floor });
  window.__gatescopeCompare = state;
}

async function main() {
  const cat = await catalog();
  state.defaultFloor = cat.display.floor;
  state.floor ??= cat.display.floor;
  document.querySelector(".compare-head .opts").append(
    el("div", { class: "legend", id: "legend-flow" }),
    el("div", { class: "legend", id: "legend-hidden" }),
  );
  for (const radio of document.querySelectorAll('input[name="kind"]')) {
    radio.checked = radio.value === state.kind;
    radio.addEventListener("change", () => {
      state.kind = radio.value;
      for (const c of state.columns) c.feed.setView(state.kind, 0);
      if (state.diff) state.diff.setKind(state.kind);
      syncUrl();
    });
  }
  floorOptions($("floor"), state.defaultFloor, state.floor);
  $("floor").addEventListener("change", (ev) => {
    state.floor = Number(ev.target.value);
    syncUrl();
    if (state.diff) state.diff.setFloor(state.floor);
    else render();
  });
  if (!ids.length) return listGroups();
  if (diff) return showDiff();
  if (ids.length === 2) { // two runs: their diff is one click away
    document.querySelector(".compare-head .opts").append(el("a", { class: "button", id: "to-diff", href: `/compare?runs=${ids.join(",")}&diff=1` }, "diff these two"));
  }
  const grid = $("compare");
  grid.style.setProperty("--columns", String(ids.length));
  state.columns = ids.map(column);
  grid.append(...state.columns.map((c) => c.node));
  window.__gatescopeCompare = state;
}

main();

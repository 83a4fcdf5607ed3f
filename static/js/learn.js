// The guided tour (/learn): each section's button starts its lesson's runs (catalog.lessons: the
// configs live on the server) through the API with one click, then draws the lesson's key views
// inline, live, with a link to the full run page. Runs within one lesson share their colour scales
// and axes. One state object per lesson; feed messages -> render (coalesced) -> charts.

import { api, ApiError, catalog, describeRun, el, post, setStatus } from "./api.js";
import { Feed } from "./feed.js";
import { Pacer } from "./pace.js";
import { VIRIDIS } from "./heatmap.js";
import { Chart, legend, mergeRanges } from "./plots.js";
import { gradNormFigure, lossFigure } from "./curves.js";
import { flowRange, gradflowFigure, itemizedFigure, stateFigure } from "./views.js";

const TITLES = {
  loss: "loss (dashed: baseline)", hidden: "hidden state h", itemized: "itemized ‖∂ℓ_s/∂h_t‖",
  gradflow: "gradient flow ‖∂ℓ_T/∂h_t‖", gradnorm: "gradient norm (log)", "gate-f": "forget gate f",
  "gate-i": "input gate i", "gate-o": "output gate o", c: "cell state c",
};
const FIGURES = { loss: lossFigure, gradnorm: gradNormFigure, gradflow: gradflowFigure, itemized: itemizedFigure };

// one view's input for one panel, on the lesson's shared scales
function figureFor(view, p, shared, cat) {
  const { feed, task } = p;
  const frame = feed.frame;
  const cfg = feed.run.config;
  const floor = cat.display.floor;
  if (view === "loss") return { metrics: feed.metrics, baseline: task ? task.baseline_loss : null, yRange: shared.loss };
  if (view === "gradnorm") return { metrics: feed.metrics, clip: cfg.clip, yRange: shared.gradnorm };
  if (view === "gradflow") return feed.gradflow.steps.length ? { flow: feed.gradflow, floor, range: shared.flow, frame, task, bidirectional: cfg.bidirectional } : null;
  if (!frame) return null;
  const common = { frame, floor, bidirectional: cfg.bidirectional, task };
  if (view === "itemized") return common;
  if (view === "hidden") {
    return { ...common, name: "h", mask: true, relu: cfg.cell === "rnn_relu", units: { directions: cfg.bidirectional ? 2 : 1, hidden: cfg.hidden_size } };
  }
  if (view === "c") return { ...common, name: "c" };
  return { ...common, name: `gates.${view.slice(5)}`, gateKinds: cat.display.gate_kinds };
}

// the ranges every panel of a lesson shares
function sharedRanges(panels, floor) {
  const flows = panels.map((p) => p.feed.gradflow).filter((f) => f.steps.length);
  const shared = { flow: flows.length ? mergeRanges(flows.map((f) => flowRange(f, floor))) : null };
  const norms = panels.flatMap((p) => p.feed.metrics.gradNorm.slice(-5000)).filter((v) => v > 0 && Number.isFinite(v));
  if (norms.length) shared.gradnorm = [Math.floor(Math.log10(Math.min(...norms))), Math.ceil(Math.log10(Math.max(...norms)))];
  return shared;
}

// POST the lesson's runs: a comparison group, or one run per entry
async function startRuns(lesson) {
  if (lesson.compare) return (await post("/api/compare", lesson.compare)).runs.map((r) => [r.config.cell, r]);
  const runs = [];
  for (const { title, config } of lesson.runs) runs.push([title, await post("/api/runs", config)]);
  return runs;
}

function panel(demo, title, run) {
  const status = el("span", { class: "status" });
  const node = el("div", { class: "demo-panel", "data-run": run.id },
    el("h4", {}, el("a", { href: `/runs/${run.id}` }, title), " ", status),
    el("p", { class: "desc", text: describeRun(run) }));
  const p = { run, node, status, charts: {}, task: null, feed: null };
  for (const view of demo.lesson.views) {
    const chart = el("div", { class: `chart ${view === "gradflow" || view === "itemized" ? "" : "short"}` });
    chart.dataset.empty = "waiting for the first probe…";
    node.append(el("p", { class: "row-title", text: TITLES[view] }), chart);
    p.charts[view] = new Chart(chart, FIGURES[view] || stateFigure, { name: `${demo.lesson.name}-${view}` });
  }
  p.feed = new Feed(run.id, (what) => {
    if (what === "run" && !p.task) api(`/api/runs/${run.id}/task`).then((t) => ((p.task = t), schedule(demo)));
    schedule(demo);
  });
  return p;
}

const schedule = (demo) => demo.pace.add("live");

function render(demo) {
  const { cat } = demo;
  const live = demo.panels.filter((p) => p.feed.run);
  const shared = sharedRanges(live, cat.display.floor);
  for (const p of live) {
    setStatus(p.status, p.feed.refused ? "refused" : p.feed.run.status);
    for (const [view, chart] of Object.entries(p.charts)) chart.update(figureFor(view, p, shared, cat));
  }
  if (shared.flow && demo.legend) {
    legend(demo.legend, { colors: VIRIDIS, min: shared.flow[0], max: shared.flow[1], log: true, floor: cat.display.floor, label: "shared scale" });
  }
  const finished = new Set(cat.statuses.finished);
  if (live.length === demo.panels.length && live.every((p) => finished.has(p.feed.run.status))) {
    demo.status.firstChild.textContent = "done. ";
    demo.button.disabled = false;
    demo.button.textContent = demo.button.textContent.replace(/^▶ (again: )?/, "▶ again: ");
  }
}

async function startDemo(lesson, button, cat) {
  const out = document.querySelector(`[data-demo-out="${lesson.name}"]`);
  const status = document.querySelector(`[data-demo-status="${lesson.name}"]`);
  button.disabled = true;
  status.textContent = "starting…";
  let runs;
  try {
    runs = await startRuns(lesson);
  } catch (err) {
    status.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err);
    button.disabled = false;
    return;
  }
  const ids = runs.map(([, r]) => r.id);
  const link = ids.length > 1 ? el("a", { href: `/compare?runs=${ids.join(",")}` }, "open side by side") : el("a", { href: `/runs/${ids[0]}` }, "open the run");
  status.replaceChildren("training… ", link);
  const demo = { lesson, cat, button, status, panels: [] };
  demo.pace = new Pacer(() => render(demo)); // live messages redraw together, paced
  demo.legend = lesson.views.includes("gradflow") ? el("div", { class: "legend" }) : null;
  demo.panels = runs.map(([title, run]) => panel(demo, title, run));
  out.replaceChildren(...demo.panels.map((p) => p.node), ...(demo.legend ? [demo.legend] : []));
  out.style.setProperty("--columns", String(Math.min(runs.length, 3)));
}

async function main() {
  const cat = await catalog();
  const lessons = Object.fromEntries(cat.lessons.map((l) => [l.name, l]));
  for (const button of document.querySelectorAll("[data-demo]")) {
    button.addEventListener("click", () => startDemo(lessons[button.dataset.demo], button, cat));
    button.disabled = false; // disabled in the page until the lessons are here
  }
}

main();

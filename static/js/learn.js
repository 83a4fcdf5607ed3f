// The guided tour (/learn): each section's button starts its lesson's runs (catalog.lessons: the
// configs live on the server) with one POST /api/groups (all of them or none, each named by its
// panel's title), then draws the lesson's key views inline, live, each heatmap with its colour
// bar, with a link to the full run page. Runs within one lesson share their gradient-flow colour
// scale and their curves' axes. A queued run's panel says so ("queued (2 ahead)") instead of
// drawing empty axes. When every run has ended, the page prints what they showed against the
// lesson's claim (GET /api/lessons/{name}/findings). The "why" view is the run page's Why section
// (why.js: the product of step Jacobians over the measured gradient, in the top layer). One state
// object per lesson; feed messages -> render (coalesced) -> charts.

import { api, ApiError, catalog, describeRun, el, post, setStatus } from "./api.js";
import { Feed } from "./feed.js";
import { Pacer } from "./pace.js";
import { VIRIDIS } from "./heatmap.js";
import { viewKinds } from "./gates.js";
import { Chart, legend, mergeRanges } from "./plots.js";
import { gradNormFigure, lossFigure } from "./curves.js";
import { flowRange, gradflowFigure, itemizedFigure, stateFigure } from "./views.js";
import { WhyPanel } from "./why.js";

const TITLES = {
  loss: "loss (dashed: baseline)", hidden: "hidden state h", itemized: "itemized ‖∂ℓ_s/∂h_t‖",
  gradflow: "gradient flow ‖∂ℓ_T/∂h_t‖", gradnorm: "gradient norm (log)", "gate-f": "forget gate f",
  "gate-i": "input gate i", "gate-o": "output gate o", c: "cell state c",
  why: "why: the bound Π‖∂h_t/∂h_{t−1}‖ over the measured gradient",
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
  return { ...common, name: `gates.${view.slice(5)}`, gateKinds: viewKinds(cat.cells.find((c) => c.name === cfg.cell)) };
}

// the Why view's input: the panel's latest frame, its top layer (where the product bounds the gradient)
function whyInput(p, cat) {
  const cfg = p.feed.run.config;
  const finished = new Set(cat.statuses.finished).has(p.feed.run.status);
  return {
    frame: p.feed.frame, layer: cfg.num_layers - 1, numLayers: cfg.num_layers, cell: cfg.cell,
    floor: cat.display.floor, task: p.task, run: p.feed.run, finished,
  };
}

// the ranges every panel of a lesson shares
function sharedRanges(panels, floor) {
  const flows = panels.map((p) => p.feed.gradflow).filter((f) => f.steps.length);
  const shared = { flow: flows.length ? mergeRanges(flows.map((f) => flowRange(f, floor))) : null };
  const norms = panels.flatMap((p) => p.feed.metrics.gradNorm.slice(-5000)).filter((v) => v > 0 && Number.isFinite(v));
  if (norms.length) shared.gradnorm = [Math.floor(Math.log10(Math.min(...norms))), Math.ceil(Math.log10(Math.max(...norms)))];
  return shared;
}

// POST the lesson's runs as one group: all of them start, or none does (the error says why)
async function startRuns(lesson) {
  const runs = lesson.runs.map(({ title, config }) => ({ name: title, config }));
  return (await post("/api/groups", { runs })).runs;
}

const HEATMAPS = new Set(["hidden", "itemized", "c"]); // each with its colour bar, as every gate-* view
const isHeatmap = (view) => HEATMAPS.has(view) || view.startsWith("gate-");

// a view's row title: the lesson's own words, else (the modern cells' gates) the catalog cell's
function viewTitle(view, run, cat) {
  if (TITLES[view]) return TITLES[view];
  const cell = cat.cells.find((c) => c.name === run.config.cell);
  return cell?.views[view.slice(5)]?.title ?? view;
}
const WAITING = "waiting for the first probe…";
const QUEUE_POLL_MS = 2000;

const queued = (run) => (run.queue_position == null ? "queued" : `queued (${run.queue_position} ahead)`);

function panel(demo, run) {
  const status = el("span", { class: "status" });
  const node = el("div", { class: "demo-panel", "data-run": run.id },
    el("h4", {}, el("a", { href: `/runs/${run.id}` }, run.name), " ", status),
    el("p", { class: "desc", text: describeRun(run) }));
  const p = { run, node, status, charts: {}, task: null, feed: null };
  for (const view of demo.lesson.views) {
    if (view === "why") {
      const box = el("div", { class: "why" });
      node.append(el("p", { class: "row-title", text: TITLES[view] }), box);
      p.why = new WhyPanel(box, run.id, { name: `${demo.lesson.name}-why`, captions: false });
      continue;
    }
    const chart = el("div", { class: `chart ${view === "gradflow" || view === "itemized" ? "" : "short"}` });
    chart.dataset.empty = WAITING;
    const bar = isHeatmap(view) ? el("div", { class: "legend" }) : null;
    node.append(el("p", { class: "row-title", text: viewTitle(view, run, demo.cat) }), chart, ...(bar ? [bar] : []));
    p.charts[view] = new Chart(chart, FIGURES[view] || stateFigure, { name: `${demo.lesson.name}-${view}`, legend: bar });
  }
  p.feed = new Feed(run.id, (what) => {
    if (what === "run" && !p.task) api(`/api/runs/${run.id}/task`).then((t) => ((p.task = t), schedule(demo)));
    schedule(demo);
  });
  return p;
}

const schedule = (demo) => demo.pace.add("live");

// a queued run's panel: its status and every chart say where it stands in the queue
function showQueued(p, run) {
  setStatus(p.status, "queued");
  p.status.textContent = queued(run);
  for (const chart of Object.values(p.charts)) {
    chart.node.dataset.empty = `${queued(run)}: it starts when a training slot is free`;
    chart.update(null);
  }
}

// while runs wait, ask for their queue positions (the websocket says only when the status changes)
async function pollQueue(demo) {
  demo.polling = null;
  const waiting = demo.panels.filter((p) => (p.feed.run ?? p.run).status === "queued");
  if (!waiting.length) return;
  await Promise.all(waiting.map(async (p) => {
    try {
      p.position = await api(`/api/runs/${p.run.id}`);
    } catch {
      p.position = null; // the feed says what became of it
    }
  }));
  schedule(demo);
  demo.polling = setTimeout(() => pollQueue(demo), QUEUE_POLL_MS);
}

function render(demo) {
  const { cat } = demo;
  const live = demo.panels.filter((p) => p.feed.run);
  const shared = sharedRanges(live, cat.display.floor);
  for (const p of demo.panels) {
    const run = p.feed.run ?? p.run; // the websocket's, else what POST /api/groups answered
    if (run.status === "queued") {
      showQueued(p, p.position?.status === "queued" ? p.position : run);
      continue;
    }
    if (!p.feed.run) continue;
    setStatus(p.status, p.feed.refused ? "refused" : run.status);
    for (const [view, chart] of Object.entries(p.charts)) {
      chart.node.dataset.empty = WAITING;
      chart.update(figureFor(view, p, shared, cat));
    }
    if (p.why) p.why.update(whyInput(p, cat));
  }
  if (shared.flow && demo.legend) {
    legend(demo.legend, { colors: VIRIDIS, min: shared.flow[0], max: shared.flow[1], log: true, floor: cat.display.floor, label: "shared scale" });
  }
  const waiting = demo.panels.some((p) => (p.feed.run ?? p.run).status === "queued");
  if (!demo.done) demo.status.firstChild.textContent = waiting ? "waiting for a training slot… " : "training… ";
  const finished = new Set(cat.statuses.finished);
  if (!demo.done && live.length === demo.panels.length && live.every((p) => finished.has(p.feed.run.status))) {
    demo.done = true;
    demo.status.firstChild.textContent = "done. ";
    demo.button.disabled = false;
    demo.button.textContent = demo.button.textContent.replace(/^▶ (again: )?/, "▶ again: ");
    showFindings(demo);
  }
}

// what the runs showed, against the lesson's claim: the server's sentence, with its numbers
// (only for runs that ran their course: a stopped or failed run has no findings)
async function showFindings(demo) {
  const ids = demo.panels.map((p) => p.run.id).join(",");
  const node = demo.findings;
  const cut = demo.panels.find((p) => !demo.lesson.findings_after.includes(p.feed.run.status));
  if (cut) {
    node.className = "findings findings-failed";
    node.textContent = `No findings: ${cut.run.name} ended ${cut.feed.run.status} before it ran its course.`;
    return;
  }
  try {
    const f = await api(`/api/lessons/${demo.lesson.name}/findings?runs=${ids}`);
    node.className = `findings ${f.holds ? "findings-hold" : "findings-failed"}`;
    const parts = [el("strong", { text: "What these runs showed: " }), f.sentence];
    if (!f.holds) parts.push(" ", el("strong", { text: "This time the text above does not hold: " }), `${f.failed.join("; ")}.`);
    node.replaceChildren(...parts);
  } catch (err) {
    node.className = "findings findings-failed";
    node.textContent = err instanceof ApiError ? `No findings: ${err.message}` : String(err);
  }
}

async function startDemo(lesson, button, cat, demos) {
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
  const old = demos[lesson.name];
  if (old) {
    clearTimeout(old.polling);
    for (const p of old.panels) p.feed.close();
  }
  const ids = runs.map((r) => r.id);
  const link = ids.length > 1 ? el("a", { href: `/compare?runs=${ids.join(",")}` }, "open side by side") : el("a", { href: `/runs/${ids[0]}` }, "open the run");
  status.replaceChildren("training… ", link);
  const demo = { lesson, cat, button, status, panels: [], done: false, polling: null };
  demos[lesson.name] = demo;
  demo.pace = new Pacer(() => render(demo)); // live messages redraw together, paced
  demo.legend = lesson.views.includes("gradflow") ? el("div", { class: "legend" }) : null;
  demo.findings = el("p", { class: "findings", "data-findings": lesson.name });
  demo.panels = runs.map((run) => panel(demo, run));
  out.replaceChildren(...demo.panels.map((p) => p.node), ...(demo.legend ? [demo.legend] : []), demo.findings);
  out.style.setProperty("--columns", String(Math.min(runs.length, 3)));
  schedule(demo); // queued runs say so at once
  pollQueue(demo);
}

async function main() {
  const cat = await catalog();
  const lessons = Object.fromEntries(cat.lessons.map((l) => [l.name, l]));
  const demos = {};
  for (const button of document.querySelectorAll("[data-demo]")) {
    button.addEventListener("click", () => startDemo(lessons[button.dataset.demo], button, cat, demos));
    button.disabled = false; // disabled in the page until the lessons are here
  }
}

main();

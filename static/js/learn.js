// The guided tour (/learn): each section's button starts a small, fast run (or a comparison)
// through the API with one click, then draws its key view inline, live, with a link to the
// full run page. Runs within one demo share their colour scales and axes.

import { api, ApiError, describeRun, el, FINISHED, post, setStatus } from "./api.js";
import { Feed } from "./feed.js";
import { Chart, legend, logRange, mergeRanges, VIRIDIS } from "./plots.js";
import { absMax, FLOOR, gradflowFigure, gradNormFigure, itemizedFigure, lossFigure, stateFigure } from "./views.js";

const tiny = { hidden_size: 16, batch_size: 32, steps: 200, probe_every: 10, optimizer: { name: "adam", lr: 0.01 } };
const exploding = {
  cell: "rnn_tanh", hidden_size: 32, init: { scheme: "normal", gain: 2.0 }, task: { name: "adding", seq_len: 30 },
  optimizer: { name: "sgd", lr: 0.05 }, steps: 300, probe_every: 20, batch_size: 32,
};
const adding = { hidden_size: 32, task: { name: "adding", seq_len: 50 }, steps: 400, probe_every: 20, batch_size: 32 };

const DEMOS = {
  shapes: {
    views: ["hidden"],
    runs: [
      ["one-to-one: recall, T = 1", { ...tiny, cell: "gru", task: { name: "recall", seq_len: 1, n_classes: 4 } }],
      ["one-to-many: counting", { ...tiny, cell: "gru", task: { name: "counting", seq_len: 10, n_classes: 10 } }],
      ["many-to-one: recall", { ...tiny, cell: "gru", task: { name: "recall", seq_len: 10, n_classes: 4 } }],
      ["many-to-many: copy", { ...tiny, cell: "gru", task: { name: "copy", seq_len: 4, n_symbols: 3 } }],
      ["bidirectional: tagging", { ...tiny, cell: "gru", bidirectional: true, task: { name: "tagging", seq_len: 12 } }],
    ],
  },
  hello: {
    views: ["loss", "hidden"],
    runs: [['LSTM on "hello"', { cell: "lstm", hidden_size: 8, task: { name: "char_lm", corpus: "hello" }, batch_size: 1, optimizer: { name: "adam", lr: 0.02 }, steps: 300, probe_every: 10 }]],
  },
  bptt: {
    views: ["itemized"],
    runs: [["tanh RNN on Hamlet, T = 30", { cell: "rnn_tanh", hidden_size: 32, task: { name: "char_lm", corpus: "shakespeare", seq_len: 30 }, batch_size: 16, steps: 200, probe_every: 20, optimizer: { name: "adam", lr: 0.005 } }]],
  },
  vanishing: {
    views: ["gradflow"],
    compare: { config: { ...adding, cell: "rnn_tanh" }, cells: ["rnn_tanh", "lstm", "gru"] },
  },
  exploding: {
    views: ["gradnorm", "loss"],
    runs: [
      ["clipped at norm 1", { ...exploding, clip: { mode: "norm", threshold: 1 } }],
      ["no clipping", { ...exploding, clip: { mode: "off", threshold: 1 } }],
    ],
  },
  remedies: {
    views: ["gradflow"],
    runs: [
      ["IRNN: ReLU, W_hh = I", { ...adding, cell: "rnn_relu", init: { scheme: "identity", gain: 1 }, optimizer: { name: "adam", lr: 0.001 } }],
      ["tanh RNN, truncated BPTT k = 10", { ...adding, cell: "rnn_tanh", tbptt: 10 }],
      ["tanh RNN with RMSprop", { ...adding, cell: "rnn_tanh", optimizer: { name: "rmsprop", lr: 0.001 } }],
    ],
  },
  gates: {
    views: ["gate-f", "gate-i", "gate-o", "c"],
    runs: [["LSTM, adding T = 30, forget bias 1", { cell: "lstm", hidden_size: 16, init: { forget_bias: 1 }, task: { name: "adding", seq_len: 30 }, batch_size: 32, steps: 500, probe_every: 20, optimizer: { name: "adam", lr: 0.01 } }]],
  },
};

const TITLES = { loss: "loss (dashed: baseline)", hidden: "hidden state h", itemized: "itemized ‖∂ℓ_s/∂h_t‖", gradflow: "gradient flow ‖∂ℓ_T/∂h_t‖", gradnorm: "gradient norm (log)", "gate-f": "forget gate f", "gate-i": "input gate i", "gate-o": "output gate o", c: "cell state c" };

function figureFor(view, p, shared) {
  const { feed, task } = p;
  const frame = feed.frame;
  if (view === "loss") return { metrics: feed.metrics, baseline: task ? task.baseline_loss : null, yRange: shared.loss };
  if (view === "gradnorm") return { metrics: feed.metrics, clip: feed.run.config.clip, yRange: shared.gradnorm };
  if (view === "gradflow") return feed.gradflow.steps.length ? { flow: feed.gradflow, kind: "last", floor: FLOOR, range: shared.flow, frame } : null;
  if (!frame) return null;
  if (view === "itemized") return { frame, bidirectional: feed.run.config.bidirectional };
  if (view === "hidden") {
    const relu = feed.run.config.cell === "rnn_relu";
    const m = relu ? absMax(frame, "h") : 1;
    return { frame, name: "h", zrange: [-m, m], mask: true, units: { directions: feed.run.config.bidirectional ? 2 : 1, hidden: feed.run.config.hidden_size } };
  }
  if (view === "c") {
    const m = absMax(frame, "c");
    return { frame, name: "c", zrange: [-m, m] };
  }
  return { frame, name: `gates.${view.slice(5)}` };
}

const FIGURES = { loss: lossFigure, gradnorm: gradNormFigure, gradflow: gradflowFigure, itemized: itemizedFigure };

async function startDemo(name, button) {
  const demo = DEMOS[name];
  const out = document.querySelector(`[data-demo-out="${name}"]`);
  const status = document.querySelector(`[data-demo-status="${name}"]`);
  button.disabled = true;
  status.textContent = "starting…";
  let runs;
  try {
    if (demo.compare) {
      runs = (await post("/api/compare", demo.compare)).runs.map((r) => [r.config.cell, r]);
    } else {
      runs = [];
      for (const [title, config] of demo.runs) runs.push([title, await post("/api/runs", config)]);
    }
  } catch (err) {
    status.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err);
    button.disabled = false;
    return;
  }
  const ids = runs.map(([, r]) => r.id);
  status.replaceChildren(
    "training… ",
    ids.length > 1 ? el("a", { href: `/compare?runs=${ids.join(",")}` }, "open side by side") : el("a", { href: `/runs/${ids[0]}` }, "open the run"),
  );
  out.replaceChildren();
  out.style.setProperty("--columns", String(Math.min(runs.length, 3)));
  const panels = [];
  let pending = false;
  const render = () => {
    pending = false;
    const live = panels.filter((p) => p.feed.run);
    const flows = live.map((p) => p.feed.gradflow).filter((f) => f.steps.length);
    const shared = { flow: flows.length ? mergeRanges(flows.map((f) => logRange(f.z, FLOOR))) : null };
    const norms = live.flatMap((p) => p.feed.metrics.gradNorm).filter((v) => v > 0 && Number.isFinite(v));
    if (norms.length) shared.gradnorm = [Math.floor(Math.log10(Math.min(...norms.slice(-5000)))), Math.ceil(Math.log10(Math.max(...norms.slice(-5000))))];
    for (const p of live) {
      setStatus(p.status, p.feed.run.status);
      for (const [view, chart] of Object.entries(p.charts)) chart.update(figureFor(view, p, shared));
    }
    if (shared.flow && p0legend) legend(p0legend, { colors: VIRIDIS, min: shared.flow[0], max: shared.flow[1], log: true, floor: FLOOR, label: "shared scale" });
    if (live.length === panels.length && live.every((p) => FINISHED.has(p.feed.run.status))) {
      status.firstChild.textContent = "done. ";
      button.disabled = false;
      button.textContent = button.textContent.replace(/^▶ (again: )?/, "▶ again: ");
    }
  };
  const schedule = () => {
    if (!pending) {
      pending = true;
      setTimeout(render, 250); // live messages redraw at most four times a second
    }
  };
  const p0legend = demo.views.includes("gradflow") ? el("div", { class: "legend" }) : null;
  for (const [title, run] of runs) {
    const statusNode = el("span", { class: "status" });
    const panel = el("div", { class: "demo-panel", "data-run": run.id },
      el("h4", {}, el("a", { href: `/runs/${run.id}` }, title), " ", statusNode),
      el("p", { class: "desc", text: describeRun(run) }));
    const p = { run, status: statusNode, charts: {}, task: null };
    for (const view of demo.views) {
      const node = el("div", { class: `chart ${view === "gradflow" || view === "itemized" ? "" : "short"}` });
      node.dataset.empty = "waiting for the first probe…";
      panel.append(el("p", { class: "row-title", text: TITLES[view] }), node);
      p.charts[view] = new Chart(node, FIGURES[view] || stateFigure, { name: `${name}-${view}` });
    }
    p.feed = new Feed(run.id, (what) => {
      if (what === "run" && !p.task) api(`/api/runs/${run.id}/task`).then((t) => ((p.task = t), schedule()));
      schedule();
    });
    panels.push(p);
    out.append(panel);
  }
  if (p0legend) out.append(p0legend);
}

for (const button of document.querySelectorAll("[data-demo]")) {
  button.addEventListener("click", () => startDemo(button.dataset.demo, button));
}

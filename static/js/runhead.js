// The run page's words about its run and its frame: the head (status, the "attached" badge, the
// description, the stop button), what applies to the run's kind, and what the shown frame says
// about itself. A built-in run has a task (a baseline, a metric, inspect and sample, a
// checkpoint); an attached run (gatescope.watch in someone's script) has none of those: its loss
// is the script's, its weights live in the script, and Stop asks the script to stop. Its frames
// say where they come from ("live": the training batch's sample 0; "fixed": watch's probe input)
// and carry notes (e.g. dropout between layers) that must be read with the frame.
// The run's name and tags are shown with their editor (runedit.js), and name the tab; a run made
// with others links to its group's compare page.
// What this is not: a chart or the page's state; run.js calls these with its state.

import { api, describeModule, describeRun, el, isAttached, runLabel, setStatus, statusLabel } from "./api.js";
import { runEditor } from "./runedit.js";

const $ = (id) => document.getElementById(id);

const METRIC_CAPTIONS = {
  bpc: "Bits per character on the training batch (loss / ln 2): lower is better; the dashed line is the baseline's.",
  accuracy: "Accuracy on the training batch: the fraction of loss steps predicted right.",
  mse: "Mean squared error on the training batch; the dashed line is the baseline's.",
};

export const SOURCES = {
  live: "live batch, sample 0",
  fixed: "fixed probe",
};
const SOURCE_TEXT = {
  live: "the forward and backward pass of this training step, before its update, for the first sample of the batch, under the real batch loss",
  fixed: "your fixed probe input (watch(probe=...)) through the model in eval mode at this step: the same sample at every probe",
};

function probeWords(c) {
  const when = c.probe_budget ? `probes within ${+(c.probe_budget * 100).toFixed(1)}% of training time` : `a probe every ${c.every ?? 1} steps`;
  return `${when} (${SOURCES[c.probe] ?? c.probe})`;
}

function attachedDesc(run, step) {
  const c = run.config;
  const parts = [c.name, describeModule(c), c.script, probeWords(c), `step ${step}`];
  if (c.client && c.client.torch) parts.push(`torch ${c.client.torch}${c.client.host ? ` on ${c.client.host}` : ""}`);
  if (c.dropped_frames) parts.push(`${c.dropped_frames} frame${c.dropped_frames === 1 ? "" : "s"} dropped (the server was slow or away)`);
  return parts.filter(Boolean).join(" · ");
}

function builtInDesc(run, step) {
  const c = run.config;
  return `${describeRun(run)} · ${c.optimizer.name} lr ${c.optimizer.lr} · clip ${c.clip.mode}${c.tbptt ? ` · tbptt ${c.tbptt}` : ""} · step ${step}/${run.steps} · seed ${c.seed}`;
}

/** The run's name and tags, editable (once per page: a rename answers the run, shown again). */
export function showLabel(run) {
  document.title = `${runLabel(run)} · Gatescope`;
  $("run-label").replaceChildren(runEditor(run, { onSaved: showLabel }));
}

/** The head: status, badge, description (`step`: the newest step the page knows), stop button. */
export function showHead(run, step, finished) {
  setStatus($("run-status"), run.status, statusLabel(run));
  const attached = isAttached(run);
  $("run-kind").hidden = !attached;
  $("run-desc").textContent = attached ? attachedDesc(run, step) : builtInDesc(run, step);
  const stop = $("stop");
  const asked = attached && run.config.stop_requested && !finished;
  stop.disabled = finished || asked;
  stop.textContent = asked ? "stop requested" : attached ? "■ ask script to stop" : "■ stop";
  stop.title = attached
    ? asked
      ? "the script sees watch.should_stop; the run stays running until the script ends it"
      : "ask the script to stop: watch.should_stop becomes true, and the script ends the run"
    : "stop training (POST /api/runs/{id}/stop)";
}

// an attached run: no baseline, no metric (the script's loss only), no tools that need weights
function explainAttached(run) {
  $("loss-caption").textContent =
    "The loss your script passed to watch.step(loss=...). No baseline line: the task is your own, so Gatescope cannot know what a predictor that ignores the history would score.";
  $("chart-loss").dataset.empty = "No loss yet: pass it with watch.step(loss=loss) to see it here.";
  $("gradnorm-caption").textContent =
    "As the gradients stood when backward ended (solid) and at watch.step() (dotted), log axis; × marks the steps where they differ (the script clipped). Exploding gradients show as sudden jumps of orders of magnitude.";
  $("view-metric").hidden = true;
  $("view-loss").classList.add("wide");
  $("view-inspect").hidden = true;
  $("tools-attached").hidden = false;
  $("export").title = "a zip: config, metrics and probe frames (no checkpoint: the weights live in your script)";
}

/** Captions, views and tools for the run's kind; `task` is GET .../task (null for an attached run). */
export function applyKind(run, task) {
  if (isAttached(run)) return explainAttached(run);
  $("metric-title").firstChild.textContent = `Metric: ${task.metric_name} `;
  $("metric-caption").textContent = METRIC_CAPTIONS[task.metric_name];
}

/** The frame's source (attached frames) and its notes, above the views. */
export function showFrameInfo(frame) {
  const box = $("frame-info");
  const source = frame ? SOURCE_TEXT[frame.source] : null;
  const notes = frame ? frame.notes : [];
  box.hidden = !source && !notes.length;
  if (box.hidden) return;
  const key = `${frame.step}|${frame.source}|${notes.join("\n")}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const head = el("p", { class: "frame-source" }, el("strong", { text: `Step ${frame.step}, ${SOURCES[frame.source]}: ` }), source);
  const list = el("ul", { class: "frame-notes" }, notes.map((n) => el("li", { text: n })));
  box.replaceChildren(...(source ? [head] : []), ...(notes.length ? [list] : []));
}

// the "compare group" link of a run made with others (its group's runs, oldest first)
export async function showGroup(run, limits) {
  const group = await api(`/api/runs?group=${encodeURIComponent(run.group)}&limit=${limits.runs_page}`);
  const ids = group.items.map((r) => r.id).reverse();
  Object.assign(document.getElementById("group"), { hidden: false, href: `/compare?runs=${ids.join(",")}` });
}

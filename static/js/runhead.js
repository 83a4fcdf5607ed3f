// The run page's words about its run and its frame: the head (status, the "attached" badge, the
// description, the stop button), what applies to the run's kind, and what the shown frame says
// about itself. A built-in run has a task (a baseline, a metric, inspect and sample, a
// checkpoint); an attached run (gatescope.watch in someone's script) has none of those: its loss
// is the script's, its weights live in the script, and Stop asks the script to stop. Its frames
// say where they come from ("live": the training batch's sample 0; "fixed": watch's probe input)
// and carry notes (e.g. dropout between layers) that must be read with the frame.
// The run's name and tags are shown with their editor (runedit.js), and name the tab; a run made
// with others links to its group's compare page. Its storage (budget, bytes, frames kept) and its
// notes (sentences such as "frames stopped being recorded") stand under the description, and a
// step whose frame is not stored (thinned to the budget, or never recorded) says so above the views.
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
  return `${describeRun(run)} · ${c.optimizer.name} lr ${c.optimizer.lr} · clip ${c.clip.mode}${c.tbptt ? ` · tbptt ${c.tbptt}` : ""} · step ${step}/${run.steps} · seed ${c.seed}${whereWords(run)}`;
}

// where it trains (RunPublic executor, node): "on <host>" locally, "on Ray node <ip>/<node id>"
function whereWords(run) {
  if (!run.executor) return ""; // not started yet
  return ` · on ${run.executor === "ray" ? "Ray node " : ""}${run.node ?? "(starting)"}`;
}

/** The run's name and tags, editable (once per page: a rename answers the run, shown again). */
export function showLabel(run) {
  document.title = `${runLabel(run)} · Gatescope`;
  $("run-label").replaceChildren(runEditor(run, { onSaved: showLabel }));
}

/** The head: status, badge, description (`step`: the newest step the page knows), stop button, notes. */
export function showHead(run, step, finished) {
  setStatus($("run-status"), run.status, statusLabel(run));
  showNotes(run.notes);
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

// the storage line: the run as stored now (its bytes) and its stored probe steps, read at most
// once in STORAGE_EVERY_MS while it runs and once more when it has ended
const STORAGE_EVERY_MS = 5000;
const storage = { at: -Infinity, ended: false, busy: false, read: null, probes: 0 };
const mb = (bytes) => (bytes / 2 ** 20).toFixed(1);

/** The run's storage line (`probes`: the probe steps the page knows, stored or not). */
export function showStorage(run, probes, finished) {
  storage.probes = probes;
  renderStorage();
  if (storage.busy || storage.ended || (!finished && performance.now() - storage.at < STORAGE_EVERY_MS)) return;
  storage.busy = true;
  const path = `/api/runs/${encodeURIComponent(run.id)}`;
  Promise.all([api(path), api(`${path}/probes`)])
    .then(([now, kept]) => {
      Object.assign(storage, { at: performance.now(), ended: finished, read: { now, kept: kept.length } });
      renderStorage();
      showNotes(now.notes);
    })
    .catch((err) => console.warn("storage", err.message)) // read again at the next update
    .finally(() => (storage.busy = false));
}

function renderStorage() {
  if (!storage.read) return;
  const { now, kept } = storage.read;
  const used = now.storage_mb === null ? `${mb(now.storage_bytes)} MB (no budget)` : `${mb(now.storage_bytes)} of ${now.storage_mb} MB`;
  const line = $("run-storage");
  line.textContent = `storage ${used} · ${kept} of ${Math.max(storage.probes, kept)} probe frames kept`;
  line.hidden = false;
}

function showNotes(notes) {
  const list = $("run-notes");
  if (list.dataset.key === notes.join("\n")) return;
  list.dataset.key = notes.join("\n");
  list.replaceChildren(...notes.map((n) => el("li", { text: n })));
  list.hidden = !notes.length;
}

/** The sentence of a step the scrubber asked for whose frame is not stored (null when `shown`,
 * the frame on screen, is that step's): thinned if a later frame is kept, else not recorded. */
export function frameGap(run, wanted, shown, kept) {
  if (wanted === null || (shown && shown.step === wanted)) return null;
  const why =
    kept.length && wanted < kept.at(-1)
      ? `was thinned to keep the run within its ${run.storage_mb} MB storage budget`
      : `was not recorded${run.notes.length ? " (the run's notes say why)" : ""}`;
  const nearest = shown ? `the nearest kept is step ${shown.step}, shown here` : "no frame of this run is stored";
  return `The frame of step ${wanted} ${why}; ${nearest}.`;
}

/** Captions, views and tools for the run's kind; `task` is GET .../task (null for an attached run). */
export function applyKind(run, task) {
  if (isAttached(run)) return explainAttached(run);
  $("metric-title").firstChild.textContent = `Metric: ${task.metric_name} `;
  $("metric-caption").textContent = METRIC_CAPTIONS[task.metric_name];
}

/** The frame's source (attached frames) and its notes, above the views; `gap`: frameGap's sentence. */
export function showFrameInfo(frame, gap = null) {
  const box = $("frame-info");
  const source = frame ? SOURCE_TEXT[frame.source] : null;
  const notes = frame ? frame.notes : [];
  box.hidden = !source && !notes.length && !gap;
  if (box.hidden) return;
  const key = `${frame?.step}|${frame?.source}|${notes.join("\n")}|${gap}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const missing = el("p", { class: "frame-gap", text: gap });
  const head = el("p", { class: "frame-source" }, el("strong", { text: `Step ${frame?.step}, ${SOURCES[frame?.source]}: ` }), source);
  const list = el("ul", { class: "frame-notes" }, notes.map((n) => el("li", { text: n })));
  box.replaceChildren(...(gap ? [missing] : []), ...(source ? [head] : []), ...(notes.length ? [list] : []));
}

// the "compare group" link of a run made with others (its group's runs, oldest first), or its sweep's page
export async function showGroup(run, limits) {
  const [sweep] = await api(`/api/sweeps?run=${encodeURIComponent(run.id)}`); // a sweep's runs are its group
  if (sweep) return Object.assign(document.getElementById("group"), { hidden: false, href: `/sweeps/${sweep.id}`, textContent: `sweep: ${sweep.name}` });
  const group = await api(`/api/runs?group=${encodeURIComponent(run.group)}&limit=${limits.runs_page}`);
  const ids = group.items.map((r) => r.id).reverse();
  Object.assign(document.getElementById("group"), { hidden: false, href: `/compare?runs=${ids.join(",")}` });
}

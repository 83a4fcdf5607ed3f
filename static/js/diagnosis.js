// The run page's diagnosis panel: GET /api/runs/{id}/diagnosis's findings, each with its
// explanation, its evidence (step, layer) and its remedy one click away: "apply now" posts the
// remedy's `changes` as an intervention (a running or paused run), "fork with this" forks the run
// with them at its latest stored snapshot, "new run with this" starts the remedy's `config` (the
// run's config with the remedy's merge patch). A button that cannot act says why (its title and
// a hint); a refusal from the server is shown under the finding. A new run or fork opens its page.
// A run that trains on gets "read again": the diagnosis of its numbers as they are then.
// What this is not: the checks or the remedies themselves (app/services/diagnosis.py).

import { api, catalog, el, post, runLabel } from "./api.js";

const $ = (id) => document.getElementById(id);
const path = (runId, suffix) => `/api/runs/${encodeURIComponent(runId)}${suffix}`;
const NEW_RUN_ONLY = "this change needs a new run: it is not one an intervention can make";

// why "apply now" cannot act on a run of this status (null: it can)
function applyBlocked(status, finished) {
  if (finished.has(status)) return `the run is ${status}: fork it or start a new run instead`;
  if (status === "queued") return "the run has not started yet";
  return null;
}

async function forkWith(runId, changes) {
  const { steps } = await api(path(runId, "/snapshots"));
  if (!steps.length) throw new Error(`run ${runId} has no stored state yet: a fork starts from a probe step`);
  return post(path(runId, "/fork"), { step: steps.at(-1), changes });
}

async function newRunWith(runId, remedy, limits) {
  const run = await api(path(runId, ""));
  const name = `${runLabel(run)} · ${remedy.description}`.slice(0, limits.name_chars);
  return post("/api/runs", { ...remedy.config, name });
}

// the three buttons of one remedy, and the line that says what they did
function actions(runId, remedy, status, cat) {
  const out = el("p", { class: "hint remedy-out", role: "status" });
  const show = (text, error = false) => {
    out.className = error ? "error remedy-out" : "hint remedy-out";
    out.textContent = text;
  };
  const act = async (button, fn) => {
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      show(err.message || String(err), true);
    } finally {
      button.disabled = false;
    }
  };
  const open = (run) => location.assign(`/runs/${encodeURIComponent(run.id)}`);
  const changes = remedy.changes;
  const blocked = changes === null ? NEW_RUN_ONLY : applyBlocked(status, new Set(cat.statuses.finished));
  const button = (label, title, why, fn) => {
    const b = el("button", { type: "button", class: "remedy-action", title: why || title, disabled: !!why }, label);
    b.addEventListener("click", () => act(b, fn));
    return b;
  };
  const apply = button("apply now", `POST .../interventions ${JSON.stringify(changes)}`, blocked, async () => {
    const queued = await post(path(runId, "/interventions"), changes);
    show(`Queued (intervention ${queued.id}): the run applies it between two steps, and lists it with its step.`);
  });
  const fork = button("fork with this", "fork the run at its latest stored step with this change", changes === null ? NEW_RUN_ONLY : null, async () => open(await forkWith(runId, changes)));
  const fresh = button("new run with this", "start the run's config with this change from step 0", null, async () => open(await newRunWith(runId, remedy, cat.limits)));
  const why = blocked && changes !== null ? el("span", { class: "hint", text: ` apply now: ${blocked}` }) : null;
  return [el("p", { class: "remedy-actions" }, apply, " ", fork, " ", fresh, why), out];
}

function finding(runId, f, status, cat) {
  const where = [
    f.evidence.step === null ? null : `step ${f.evidence.step}`,
    f.evidence.layer === null ? null : `layer ${f.evidence.layer}`,
  ].filter(Boolean);
  return el(
    "li",
    { class: "finding", "data-kind": f.kind },
    el("strong", { class: "finding-kind", text: f.kind.replace("_", " ") }),
    where.length ? el("span", { class: "hint", text: ` (${where.join(", ")})` }) : null,
    el("p", { text: f.explanation }),
    el("p", { class: "remedy" }, `Remedy: ${f.remedy.description} `, el("code", { text: JSON.stringify(f.remedy.patch) })),
    ...actions(runId, f.remedy, status, cat),
  );
}

// draw the run's findings (a built-in run's; an attached run has no panel); `probed`: the page has
// seen a probe frame. True once drawn; false while the run has no stored frame (a frame reaches
// viewers before it is stored), so no 409 is asked for and the caller asks again later.
export async function showDiagnosis(runId, probed) {
  const panel = $("diagnosis");
  panel.hidden = false;
  if (!probed || !(await api(path(runId, "/probes"))).length) {
    $("diagnosis-note").textContent = "The diagnosis comes with the run's first probe frame.";
    return false;
  }
  const body = await api(path(runId, "/diagnosis"));
  const cat = await catalog();
  const note = $("diagnosis-note");
  note.textContent = body.findings.length
    ? `At step ${body.step} (probe ${body.probe_step}): `
    : `Nothing found at step ${body.step} (probe ${body.probe_step}). `;
  if (!new Set(cat.statuses.finished).has(body.status)) { // it trains on: its numbers will change
    const again = el("button", { type: "button", id: "diagnosis-again", title: "read the run's numbers as they are now" }, "read again");
    again.addEventListener("click", () => showDiagnosis(runId, true).catch((err) => Object.assign(note, { textContent: err.message })));
    note.append(again);
  }
  $("diagnosis-list").replaceChildren(...body.findings.map((f) => finding(runId, f, body.status, cat)));
  return true;
}

// The run page's diagnosis panel: GET /api/runs/{id}/diagnosis's findings, each with its
// explanation, its evidence (step, layer) and its remedy (what to change, as the RunCreate merge
// patch a fork or an intervention would apply). Not the checks (app/services/diagnosis.py), and
// no remedy button yet: the panel says what to change, it does not change it.

import { api, el } from "./api.js";

const $ = (id) => document.getElementById(id);

function finding(f) {
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
  );
}

// draw the run's findings (a built-in run's; an attached run has no panel); `probed`: it has a probe frame
export async function showDiagnosis(runId, probed) {
  const panel = $("diagnosis");
  if (!probed) { // nothing to read yet: not asked, so no 409 in the console
    panel.hidden = false;
    $("diagnosis-note").textContent = "The diagnosis comes with the run's first probe frame.";
    return;
  }
  let body;
  try {
    body = await api(`/api/runs/${runId}/diagnosis`);
  } catch (err) {
    if (err.status !== 409) throw err;
    panel.hidden = false;
    $("diagnosis-note").textContent = err.message; // no probe frame yet
    return;
  }
  panel.hidden = false;
  $("diagnosis-note").textContent = body.findings.length
    ? `At step ${body.step} (probe ${body.probe_step}):`
    : `Nothing found at step ${body.step} (probe ${body.probe_step}).`;
  $("diagnosis-list").replaceChildren(...body.findings.map(finding));
}

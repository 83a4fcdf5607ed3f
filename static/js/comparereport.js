// The group report's page (gatescope/report.py build_group_report inlines it with every module it
// imports): the runs of one comparison side by side (compareview.js, the compare page's own view)
// drawn from the embedded `{"runs": [snapshot, ...]}`, one EmbeddedSource each, on shared scales,
// with the gradient kind and floor to choose. No request is made: everything is in the file.
// What this is not: the live compare page (compare.js), which reads the same view from Feeds.

import { el, runLabel } from "./api.js";
import { mountCompareView } from "./compareview.js";
import { EmbeddedSource } from "./embedded.js";

const root = document.getElementById("report");

// what the budget kept of each run's probe frames
function note(budget, sources) {
  const kept = sources.map(({ run, report: r }) => {
    const what = r.left_out ? `${r.kept_steps.length} of ${r.stored_steps.length} probe frames (thinned evenly)` : `all ${r.stored_steps.length} probe frames`;
    return `${runLabel(run)}: ${what}`;
  });
  return `A one-file report within a budget of ${budget} MB shared by its ${sources.length} runs: ${kept.join("; ")}.`;
}

function main() {
  const { runs } = JSON.parse(document.getElementById("report-data").textContent);
  const sources = runs.map((snapshot) => new EmbeddedSource(snapshot));
  root.append(
    el("section", { class: "compare-head" },
      el("h1", { text: "Compare runs" }),
      el("p", { class: "desc", text: "The same views side by side on shared colour scales and axes: gradient flow, loss (dashed: the task's baseline), the hidden state and ‖∂ℓ_T/∂h_t‖ of each run's probe frame at the scrubber's step (its nearest kept frame; the latest at first). Click a timestep to mark it in every column, a gradient-flow row to show that step." }),
      el("p", { class: "desc", id: "report-note", role: "note", text: note(runs[0].report.budget_mb, sources) })),
  );
  const view = mountCompareView(root, sources);
  window.__gatescopeReport = { sources, view };
}

try {
  main();
} catch (err) {
  root.append(el("p", { class: "error", role: "alert", text: err.message || String(err) }));
}

// The run page's family of runs: a fork's parent (a link, the step the fork started from, its
// changes) with "diff with parent" (/compare?runs=parent,fork&diff=1); the run's own forks, each
// a link with its step and a diff; and "Fork from step k": POST /api/runs/{id}/fork at the probe
// step the scrubber shows, with no changes (the fork then goes on as this run did, bit for bit,
// until it is changed: intervene on the fork's page), opening the fork's page.
// `mountLineage(run, shownStep)` once the run is known; `shownStep()` is the step on the scrubber
// (null before a frame). The button follows the scrubber's label (#scrub-label) as it changes.
// What this is not: the forking (POST .../fork, app/services/forks.py) or the diff (diff.js).

import { api, el, isAttached, post, runLabel } from "./api.js";

const $ = (id) => document.getElementById(id);
const runLink = (id, text) => el("a", { href: `/runs/${encodeURIComponent(id)}` }, text);
const diffLink = (a, b, text) => el("a", { class: "button", href: `/compare?runs=${encodeURIComponent(a)},${encodeURIComponent(b)}&diff=1` }, text);
const changed = (changes) => (Object.keys(changes).length ? ` with ${JSON.stringify(changes)}` : " with no changes");

async function showParent(run) {
  const { parent, step, changes } = run.fork;
  let name;
  try {
    name = runLabel(await api(`/api/runs/${encodeURIComponent(parent)}`));
  } catch (err) {
    if (err.status !== 404) throw err;
    name = null; // the parent was deleted since
  }
  const parts = name === null
    ? [el("code", { text: parent }), " (deleted since)", ` at step ${step}${changed(changes)}`]
    : [runLink(parent, name), ` at step ${step}${changed(changes)} `, diffLink(parent, run.id, "diff with parent")];
  $("lineage-parent").replaceChildren("Fork of ", ...parts);
  $("lineage-parent").hidden = false;
}

function showForks(run) {
  if (!run.forks.length) return;
  const items = run.forks.map((f) => el("li", {}, runLink(f.id, f.id), ` @${f.step} `, diffLink(run.id, f.id, "diff")));
  $("lineage-forks").replaceChildren(el("span", { text: `Forks of this run (${run.forks.length}):` }), el("ul", {}, items));
  $("lineage-forks").hidden = false;
}

function forkButton(run, shownStep) {
  const button = $("fork-here");
  const error = $("fork-error");
  const attached = isAttached(run) ? "an attached run's training state is its script's: forks are for built-in runs" : null;
  const label = () => {
    const step = shownStep();
    button.textContent = step === null ? "Fork from this step" : `Fork from step ${step}`;
    button.disabled = !!attached || step === null;
    button.title = attached || (step === null ? "no probe step shown yet" : `a new run going on from step ${step}'s stored state, with no changes`);
  };
  label();
  new MutationObserver(label).observe($("scrub-label"), { childList: true, characterData: true, subtree: true });
  button.addEventListener("click", async () => {
    const step = shownStep();
    button.disabled = true;
    try {
      const fork = await post(`/api/runs/${encodeURIComponent(run.id)}/fork`, { step, changes: {} });
      location.assign(`/runs/${encodeURIComponent(fork.id)}`);
    } catch (err) {
      error.textContent = err.message || String(err);
      error.hidden = false;
      label();
    }
  });
}

/** Show the run's parent and forks and set up "Fork from step k" (see the header). */
export function mountLineage(run, shownStep) {
  $("lineage").hidden = false;
  if (run.fork) showParent(run).catch((err) => Object.assign($("fork-error"), { hidden: false, textContent: err.message }));
  showForks(run);
  forkButton(run, shownStep);
}

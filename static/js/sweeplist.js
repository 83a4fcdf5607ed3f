// The dashboard's sweeps: the catalog's ready-made sweeps, each started in one click (POST
// /api/sweeps with its body; its full grid one more click away), and the sweeps so far (GET
// /api/sweeps) with their progress, each linking to its page (/sweeps/{id}).
// What this is not: the sweep page (sweep.js) or the run list (runlist.js).

import { api, el, post } from "./api.js";

const $ = (id) => document.getElementById(id);

async function start(body, button) {
  button.disabled = true;
  try {
    const sweep = await post("/api/sweeps", body);
    location.href = `/sweeps/${sweep.id}`;
  } catch (err) {
    button.disabled = false;
    const error = $("sweeps-error");
    error.hidden = false;
    error.textContent = `${err.status ?? ""}: ${err.message}`;
  }
}

const runs = (body) => Object.values(body.grid).reduce((n, values) => n * values.length, 1);

function presetButtons(preset) {
  const buttons = [el("button", { type: "button", class: "primary", "data-sweep": preset.name, onclick: (ev) => start(preset.sweep, ev.target) }, `Start ${preset.sweep.name ?? preset.name} (${runs(preset.sweep)} runs)`)];
  if (preset.full) buttons.push(el("button", { type: "button", "data-sweep-full": preset.name, onclick: (ev) => start(preset.full, ev.target) }, `the full grid (${runs(preset.full)} runs)`));
  return el("div", { class: "sweep-preset" }, el("strong", { text: preset.title }), el("br"), preset.look_for, " ", el("span", { class: "hint", text: preset.cost }), el("br"), ...buttons);
}

/** Show the ready-made sweeps and the sweeps so far in #sweeps. */
export async function startSweepList(cat) {
  $("sweep-presets").replaceChildren(...cat.sweeps.map(presetButtons));
  const sweeps = await api("/api/sweeps");
  $("sweep-list").replaceChildren(...sweeps.map((s) =>
    el("li", {}, el("a", { href: `/sweeps/${s.id}` }, s.name), ` · ${s.done} of ${s.total} done${s.counts.running ? ` · ${s.counts.running} running` : ""}`)));
}

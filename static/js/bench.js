// The run page's lab bench, for a built-in run: pause and resume training (POST .../pause,
// .../resume), the knobs it trains with now (GET .../knobs: its config with every applied
// intervention, refreshed as its status or its interventions change), an Intervene form with
// every knob (learning rate, optimizer keeping or resetting its state, clipping mode and
// threshold, truncated-BPTT window, the LSTM forget-gate bias, W_hh of a layer rescaled to a
// spectral radius, a layer re-initialised by any scheme and gain) and the interventions applied
// so far. The form starts from the current values and sends only what differs from them; the
// server's 422s are shown in the form's words (formcheck.js). A finished, queued or attached run
// gets the panel with its controls disabled and a sentence saying why.
// What this is not: the markers on the charts (curves.js `marked`) or the websocket (feed.js).

import { api, ApiError, el, fmt, isAttached, post } from "./api.js";
import { describeChanges } from "./curves.js";
import { fieldErrors, labelOf, mark, showFailure } from "./formcheck.js";

const $ = (id) => document.getElementById(id);

const KEEP = ""; // a surgery select left at "keep": no such change

const field = (label, control, extra = {}) => el("label", { class: "field", ...extra }, el("span", { text: label }), control);
const number = (name, attrs = {}) => el("input", { type: "number", name, step: "any", ...attrs });
const select = (name, choices) =>
  el("select", { name }, choices.map((c) => Object.assign(new Option(c.label ?? c.name, c.name), { title: c.title ?? "" })));
const layers = (n) => Array.from({ length: n }, (_, l) => ({ name: String(l), label: `layer ${l}` }));

// the form's fields, named as InterventionCreate names them (formcheck marks a 422's field by name)
function buildForm(form, run, cat) {
  const cfg = run.config;
  const withTitles = (choices) => choices.map((c) => ({ name: c.name, label: c.name, title: c.doc }));
  const fields = el("fieldset", { id: "bench-fields", class: "bench-fields" },
    el("div", { class: "bench-group", "aria-label": "training knobs" },
      field("learning rate", number("lr", { min: "0" })),
      field("optimizer", select("optimizer.name", withTitles(cat.optimizers))),
      field("reset its state", el("input", { type: "checkbox", name: "optimizer.reset_state" }), { class: "field check" }),
      field("clipping", select("clip.mode", withTitles(cat.clip_modes))),
      field("threshold", number("clip.threshold", { min: "0" })),
      field("truncated BPTT", number("tbptt", { min: "1", step: "1", placeholder: "full" })),
    ),
    el("div", { class: "bench-group", "aria-label": "weight surgery" },
      cfg.cell === "lstm" ? field("forget bias", number("forget_bias", { placeholder: "keep" })) : null,
      field("rescale W_hh of", select("rescale.layer", layers(cfg.num_layers))),
      field("to spectral radius", number("rescale.radius", { min: "0", placeholder: "keep" })),
      field("re-initialise", select("reinit.layer", layers(cfg.num_layers))),
      field("with scheme", select("reinit.scheme", [{ name: KEEP, label: "keep" }, ...withTitles(cat.init_schemes)])),
      field("gain", number("reinit.gain", { min: "0", value: "1" })),
    ),
    el("button", { type: "submit", class: "primary", id: "bench-apply" }, "apply"),
  );
  form.noValidate = true; // the server checks every value; its sentences name the field
  form.replaceChildren(fields);
}

// the form's values from the knobs the run trains with now (surgery fields left empty)
function fill(form, knobs) {
  const f = form.elements;
  f.namedItem("lr").value = knobs.optimizer.lr;
  f.namedItem("optimizer.name").value = knobs.optimizer.name;
  f.namedItem("optimizer.reset_state").checked = false;
  f.namedItem("clip.mode").value = knobs.clip.mode;
  f.namedItem("clip.threshold").value = knobs.clip.threshold;
  f.namedItem("tbptt").value = knobs.tbptt ?? "";
  for (const name of ["forget_bias", "rescale.radius"]) if (f.namedItem(name)) f.namedItem(name).value = "";
  f.namedItem("reinit.scheme").value = KEEP;
}

// what the form asks to change: only the values that differ from `knobs`, plus any surgery filled
// in; {changes, problems} (a field that is not a number is a problem, never silently skipped)
function readChanges(form, knobs) {
  const f = form.elements;
  const problems = [];
  const num = (name) => {
    const c = f.namedItem(name);
    if (!c) return null;
    if (c.validity.badInput) problems.push({ name, text: `${labelOf(c)} must be a number` });
    return c.value === "" ? null : Number(c.value);
  };
  const changes = {};
  const lr = num("lr");
  if (lr !== null && lr !== knobs.optimizer.lr) changes.lr = lr;
  const optimizer = { name: f.namedItem("optimizer.name").value, reset_state: f.namedItem("optimizer.reset_state").checked };
  if (optimizer.name !== knobs.optimizer.name || optimizer.reset_state) changes.optimizer = optimizer;
  const clip = { mode: f.namedItem("clip.mode").value, threshold: num("clip.threshold") ?? knobs.clip.threshold };
  if (clip.mode !== knobs.clip.mode || clip.threshold !== knobs.clip.threshold) changes.clip = clip;
  const tbptt = num("tbptt");
  if (tbptt !== knobs.tbptt) changes.tbptt = tbptt;
  const bias = num("forget_bias");
  if (bias !== null) changes.forget_bias = bias;
  const radius = num("rescale.radius");
  if (radius !== null) changes.rescale = { layer: Number(f.namedItem("rescale.layer").value), radius };
  const scheme = f.namedItem("reinit.scheme").value;
  const gain = num("reinit.gain");
  if (scheme !== KEEP) changes.reinit = { layer: Number(f.namedItem("reinit.layer").value), scheme, gain: gain ?? 1 };
  return { changes, problems };
}

// the knobs as a list: name, value, and the step after which an intervention set it
function knobList(knobs, cell) {
  const { optimizer: o, clip, tbptt, forget_bias: bias, set_at: setAt } = knobs;
  const rows = [
    ["learning rate", fmt(o.lr, 4), "lr"],
    ["optimizer", o.name === "sgd" && o.momentum ? `sgd, momentum ${o.momentum}` : o.name, "optimizer"],
    ["clipping", clip.mode === "off" ? "off" : `by ${clip.mode} at ${fmt(clip.threshold, 4)}`, "clip"],
    ["backprop through time", tbptt === null ? "full" : `truncated to ${tbptt} steps`, "tbptt"],
  ];
  if (cell === "lstm") rows.push(["forget bias", bias === null ? "as initialised" : `set to ${bias}`, "forget_bias"]);
  return rows.map(([name, value, knob]) =>
    el("li", { "data-knob": knob },
      el("span", { class: "knob-name", text: name }), " ", el("strong", { text: value }),
      knob in setAt ? el("span", { class: "hint", text: ` since step ${setAt[knob]}` }) : null,
    ),
  );
}

function interventionItem(item) {
  const when = new Date(item.applied_at).toLocaleTimeString();
  return el("li", { "data-id": item.id, "data-step": item.step },
    el("strong", { text: `after step ${item.step}` }), `: ${describeChanges(item.changes)} `,
    el("span", { class: "hint", text: `(${when})` }),
  );
}

// why the controls are off, or what they do now
function note(run, finished, pending) {
  if (isAttached(run)) return "An attached run trains in your script: pausing and changing it needs its weights on this server.";
  if (finished) return `This run has ended (${run.status}): its knobs no longer change. They are shown as it ended, with its interventions.`;
  if (run.status === "queued") return "This run is queued: it can be paused and changed once it trains.";
  if (pending) return `${pending}…`;
  if (run.status === "paused") return `Paused after step ${run.step}: it waits without using the CPU. These are the knobs it trains with now; change any, apply, then resume.`;
  return "Changes apply between two steps, while it trains. Pause first to change it at the step you choose.";
}

/** Mount the bench on the run page for `run` (its form fits the run's cell and layers); call
 * `show(run, interventions)` whenever either changes. `finished`: the catalog's finished statuses. */
export function mountBench({ runId, run, cat, finished, onError }) {
  const form = $("bench-form");
  const bench = { run, items: [], knobs: null, knobsFor: null, pending: null, sent: null };

  async function loadKnobs(run, count) {
    const key = `${run.status}|${count}`;
    if (bench.knobsFor === key) return;
    bench.knobsFor = key;
    try {
      const knobs = await api(`/api/runs/${runId}/knobs`);
      if (bench.knobsFor !== key) return; // a newer request is on its way
      bench.knobs = knobs;
      $("bench-knobs").replaceChildren(
        el("h4", { text: run.status === "paused" ? "Knobs now (paused)" : "Knobs now" }),
        el("ul", { class: "knob-list" }, knobList(knobs, run.config.cell)),
      );
      $("bench-knobs").hidden = false;
      fill(form, knobs);
    } catch (err) {
      onError(err);
    }
  }

  async function control(verb, pending) {
    bench.pending = pending;
    show(bench.run, bench.items);
    try {
      await post(`/api/runs/${runId}/${verb}`); // the status comes over the websocket once it is so
    } catch (err) {
      bench.pending = null;
      show(bench.run, bench.items);
      onError(err);
    }
  }

  async function apply(ev) {
    ev.preventDefault();
    if (!bench.knobs) return;
    const { changes, problems } = readChanges(form, bench.knobs);
    if (problems.length) return mark(form, problems);
    if (!Object.keys(changes).length) {
      return mark(form, [{ name: null, text: "Nothing to apply: every field shows what the run trains with now. Change one first." }]);
    }
    try {
      const { id } = await post(`/api/runs/${runId}/interventions`, changes);
      mark(form, []);
      bench.sent = id;
      $("bench-sent").textContent = `Sent: ${describeChanges(changes)}. It applies after the step in progress.`;
      reportApplied(); // its websocket message may have come before this answer
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && typeof err.detail === "string") {
        mark(form, fieldErrors(form, [{ msg: err.detail, loc: [] }])); // "rescale.layer must be ...": by its field
      } else showFailure(form, err);
    }
  }

  // the intervention sent from this page, once the worker applied it
  function reportApplied() {
    const applied = bench.items.find((i) => i.id === bench.sent);
    if (!applied) return;
    $("bench-sent").textContent = `Applied after step ${applied.step}: ${describeChanges(applied.changes)}.`;
    bench.sent = null;
  }

  function show(run, interventions) {
    bench.run = run;
    bench.items = interventions;
    const attached = isAttached(run);
    const done = finished.has(run.status);
    if (run.status === "paused" && bench.pending === "Pausing") bench.pending = null;
    if (run.status !== "paused" && bench.pending === "Resuming") bench.pending = null;
    if (done) bench.pending = null;
    $("bench").hidden = false;
    $("bench-note").textContent = note(run, done, bench.pending);
    const trains = !attached && (run.status === "running" || run.status === "paused");
    $("bench-fields").disabled = !trains;
    $("bench-fields").title = trains ? "" : $("bench-note").textContent;
    const pause = $("pause-run");
    const resume = $("resume-run");
    pause.hidden = run.status === "paused";
    resume.hidden = !pause.hidden;
    pause.disabled = run.status !== "running" || !!bench.pending || attached;
    resume.disabled = !!bench.pending;
    pause.title = attached ? "an attached run trains in your script" : done ? `the run has ended (${run.status})` : "pause training after the step in progress (POST /api/runs/{id}/pause)";
    reportApplied();
    $("bench-list").replaceChildren(...interventions.map(interventionItem));
    $("bench-none").hidden = interventions.length > 0;
    if (!attached && run.status !== "queued") loadKnobs(run, interventions.length);
  }

  buildForm(form, run, cat);
  form.addEventListener("submit", apply);
  $("pause-run").addEventListener("click", () => control("pause", "Pausing"));
  $("resume-run").addEventListener("click", () => control("resume", "Resuming"));
  return { show };
}

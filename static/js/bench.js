// The run page's lab bench, for a built-in run: pause and resume training (POST .../pause,
// .../resume), the knobs it trains with now (GET .../knobs: its config with every applied
// intervention, refreshed as its status or its interventions change), an Intervene form with
// every knob (learning rate, optimizer keeping or resetting its state, clipping mode and
// threshold, truncated-BPTT window, the forget-gate bias (cells with f), W_hh of a layer rescaled to a
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
  const cell = cat.cells.find((c) => c.name === cfg.cell);
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
      cell.gates.includes("f") ? field("forget bias", number("forget_bias", { placeholder: "keep" })) : null,
      cell.w_hh ? field("rescale W_hh of", select("rescale.layer", layers(cfg.num_layers))) : null,
      cell.w_hh ? field("to spectral radius", number("rescale.radius", { min: "0", placeholder: "keep" })) : null,
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
  if (cell.gates.includes("f")) rows.push(["forget bias", bias === null ? "as initialised" : `set to ${bias}`, "forget_bias"]);
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

const PAUSE_TITLE = "pause training after the step in progress (POST /api/runs/{id}/pause)";

/** The bench on the run page for `run` (its form fits the run's cell and layers); call
 * `show(run, interventions)` whenever either changes. `finished`: the catalog's finished statuses. */
export class Bench {
  constructor({ runId, run, cat, finished, onError }) {
    Object.assign(this, { runId, run, finished, onError });
    this.items = [];
    this.knobs = null; // GET .../knobs, the latest
    this.knobsFor = null; // the status and intervention count they were asked for
    this.pending = null; // "Pausing" | "Resuming", until the status says so
    this.sent = null; // the id of the intervention this page sent, until it is applied
    this.form = $("bench-form");
    this.cell = cat.cells.find((c) => c.name === run.config.cell);
    buildForm(this.form, run, cat);
    this.form.addEventListener("submit", (ev) => this.apply(ev));
    const switched = this.form.elements.namedItem("optimizer.name");
    switched.addEventListener("change", () => { // another optimizer starts afresh: the server asks for it
      if (this.knobs && switched.value !== this.knobs.optimizer.name) this.form.elements.namedItem("optimizer.reset_state").checked = true;
    });
    $("pause-run").addEventListener("click", () => this.control("pause", "Pausing"));
    $("resume-run").addEventListener("click", () => this.control("resume", "Resuming"));
  }

  show(run, interventions) {
    Object.assign(this, { run, items: interventions });
    const done = this.finished.has(run.status);
    if (done || (this.pending === "Pausing" && run.status === "paused") || (this.pending === "Resuming" && run.status !== "paused")) this.pending = null;
    $("bench").hidden = false;
    $("bench-note").textContent = note(run, done, this.pending);
    const trains = !isAttached(run) && (run.status === "running" || run.status === "paused");
    $("bench-fields").disabled = !trains;
    $("bench-fields").title = trains ? "" : $("bench-note").textContent;
    this.showButtons(run, done);
    this.reportApplied();
    $("bench-list").replaceChildren(...interventions.map(interventionItem));
    $("bench-none").hidden = interventions.length > 0;
    if (!isAttached(run) && run.status !== "queued") this.loadKnobs(run, interventions.length);
  }

  // pause while it runs, resume while it is paused; each disabled while one is on its way
  showButtons(run, done) {
    const pause = $("pause-run");
    const resume = $("resume-run");
    pause.hidden = run.status === "paused";
    resume.hidden = !pause.hidden;
    pause.disabled = run.status !== "running" || !!this.pending || isAttached(run);
    resume.disabled = !!this.pending;
    pause.title = isAttached(run) ? "an attached run trains in your script" : done ? `the run has ended (${run.status})` : PAUSE_TITLE;
  }

  async loadKnobs(run, count) {
    const key = `${run.status}|${count}`;
    if (this.knobsFor === key) return;
    this.knobsFor = key;
    try {
      const knobs = await api(`/api/runs/${this.runId}/knobs`);
      if (this.knobsFor !== key) return; // a newer request is on its way
      this.knobs = knobs;
      $("bench-knobs").replaceChildren(
        el("h4", { text: run.status === "paused" ? "Knobs now (paused)" : "Knobs now" }),
        el("ul", { class: "knob-list" }, knobList(knobs, this.cell)),
      );
      $("bench-knobs").hidden = false;
      fill(this.form, knobs);
    } catch (err) {
      this.onError(err);
    }
  }

  async control(verb, pending) {
    this.pending = pending;
    this.show(this.run, this.items);
    try {
      await post(`/api/runs/${this.runId}/${verb}`); // the status comes over the websocket once it is so
    } catch (err) {
      this.pending = null;
      this.show(this.run, this.items);
      this.onError(err);
    }
  }

  async apply(ev) {
    ev.preventDefault();
    if (!this.knobs) return;
    const { changes, problems } = readChanges(this.form, this.knobs);
    if (problems.length) return mark(this.form, problems);
    if (!Object.keys(changes).length) {
      return mark(this.form, [{ name: null, text: "Nothing to apply: every field shows what the run trains with now. Change one first." }]);
    }
    try {
      const { id } = await post(`/api/runs/${this.runId}/interventions`, changes);
      mark(this.form, []);
      this.sent = id;
      $("bench-sent").textContent = `Sent: ${describeChanges(changes)}. It applies after the step in progress.`;
      this.reportApplied(); // its websocket message may have come before this answer
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && typeof err.detail === "string") {
        mark(this.form, fieldErrors(this.form, [{ msg: err.detail, loc: [] }])); // "rescale.layer must be ...": by its field
      } else showFailure(this.form, err);
    }
  }

  // the intervention sent from this page, once the worker applied it
  reportApplied() {
    const applied = this.items.find((i) => i.id === this.sent);
    if (!applied) return;
    $("bench-sent").textContent = `Applied after step ${applied.step}: ${describeChanges(applied.changes)}.`;
    this.sent = null;
  }
}

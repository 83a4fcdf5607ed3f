// What the new-run form tells the person before and after they press start: empty fields, the
// API's 422s in the form's own words (the field's label: "hidden size must be at most 512", the
// field marked aria-invalid), and the run's estimated cost (POST /api/runs/estimate, debounced
// as they edit: time per step, memory, ETA, and the server's limit problems).
// What this is not: validation. The server checks every value; this only names the field.

import { api, ApiError, el, fmt } from "./api.js";

const $ = (id) => document.getElementById(id);

// the label a field shows (its <label>'s first span), e.g. "hidden size"
export function labelOf(control) {
  return control?.closest("label")?.querySelector("span")?.textContent ?? control?.name ?? "the form";
}

// -- a 422's errors -> {name, text} per field ---------------------------------------------------

// the field an error is about, and what it says of it: by its location (["body", "init",
// "gain"] -> "init.gain"), or, for a check that names its field ("adding.seq_len must be at most
// 2000", "init.forget_bias applies to ..."), by that name
function about(node, d) {
  const msg = String(d.msg).replace(/^Value error, /, "");
  const named = /^([a-z_]+)\.([a-z_]+) /.exec(msg);
  for (const name of named ? [`${named[1]}.${named[2]}`, `param.${named[2]}`] : []) {
    if (node.elements.namedItem(name)) return { name, rest: msg.slice(named[0].length) };
  }
  return { name: (d.loc || []).filter((p) => p !== "body" && p !== "config").join("."), rest: msg };
}

// an error's sentence, said of the field's label
function said(label, d, rest) {
  const ctx = d.ctx || {};
  if (d.input === null && /_type$/.test(d.type)) return `${label} is empty: fill it in`;
  const bound = { less_than_equal: `at most ${ctx.le}`, greater_than_equal: `at least ${ctx.ge}`, greater_than: `greater than ${ctx.gt}`, less_than: `less than ${ctx.lt}` }[d.type];
  if (bound) return `${label} must be ${bound}`;
  if (d.type === "int_parsing" || d.type === "int_from_float") return `${label} must be a whole number`;
  if (d.type === "float_parsing") return `${label} must be a number`;
  return `${label} ${rest.replace(/^Input should be/, "must be")}`;
}

/** The fields a 422's detail list names: [{name, text}] in the form's words (name null: none). */
export function fieldErrors(node, detail) {
  return detail.map((d) => {
    const { name, rest } = about(node, d);
    const control = name ? node.elements.namedItem(name) : null;
    return control ? { name, text: said(labelOf(control), d, rest) } : { name: null, text: said(name || "the config", d, rest) };
  });
}

// -- marking fields ------------------------------------------------------------------------------

export function clearMarks(node) {
  for (const c of node.querySelectorAll("[aria-invalid]")) {
    c.removeAttribute("aria-invalid");
    c.removeAttribute("aria-describedby");
    c.closest("label")?.classList.remove("invalid");
  }
  const error = $("form-error");
  error.hidden = true;
  error.textContent = "";
}

/** Show `problems` ([{name, text}]) under the form and mark each named field; [] clears. */
export function mark(node, problems) {
  clearMarks(node);
  if (!problems.length) return;
  for (const { name } of problems) {
    const control = name ? node.elements.namedItem(name) : null;
    if (!control) continue;
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", "form-error");
    control.closest("label")?.classList.add("invalid");
  }
  const error = $("form-error");
  error.textContent = problems.map((p) => p.text).join("\n");
  error.hidden = false;
}

/** Show an error from starting a run: a 422 by field, anything else as its sentence. */
export function showFailure(node, err) {
  if (err instanceof ApiError && err.status === 422 && Array.isArray(err.detail)) mark(node, fieldErrors(node, err.detail));
  else mark(node, [{ name: null, text: err instanceof ApiError ? `${err.status}: ${err.message}` : String(err.message || err) }]);
}

// -- the estimate ----------------------------------------------------------------------------------

export const seconds = (s) => (s < 1 ? `${fmt(s * 1000, 2)} ms` : s < 120 ? `${fmt(s, 2)} s` : s < 7200 ? `${fmt(s / 60, 2)} min` : `${fmt(s / 3600, 2)} h`);
const megabytes = (b) => (b < 2 ** 30 ? `${fmt(b / 2 ** 20, 3)} MB` : `${fmt(b / 2 ** 30, 3)} GB`);

function renderEstimate(line, est) {
  const within = `estimates within ×${est.factor} of measured; limits: ${seconds(est.limits.seconds_per_step)} per step, ${megabytes(est.limits.memory_bytes)}`;
  line.replaceChildren(
    el("span", { title: within }, `≈ ${seconds(est.seconds_per_step)} per step · ${megabytes(est.memory_bytes)} · ETA ${seconds(est.eta_seconds)}`),
    ...est.problems.map((p) => el("span", { class: "error limit", text: p })),
  );
  line.classList.toggle("beyond", est.problems.length > 0);
}

/** A debounced estimator writing to `line`: call it with the form's state after every edit. */
export function estimator(node, line, read, { delay = 300 } = {}) {
  let timer = null;
  let controller = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      controller?.abort();
      controller = new AbortController();
      const { config, empty } = read();
      if (empty.length) {
        mark(node, empty);
        line.replaceChildren("fill in the marked fields to see the run's cost");
        return;
      }
      try {
        const est = await api("/api/runs/estimate", { method: "POST", body: config, signal: controller.signal });
        clearMarks(node);
        renderEstimate(line, est);
      } catch (err) {
        if (err.name === "AbortError") return; // a newer edit took over
        line.replaceChildren("no estimate: see the marked fields");
        showFailure(node, err);
      }
    }, delay);
  };
}

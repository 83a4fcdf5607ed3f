// The inspect tool's readout: what the model outputs for an inspected frame, next to its
// gradients. A regression task (adding) shows the prediction at each loss step with its target;
// a classification task (char_lm: the next character) shows, at a chosen t, the softmax of the
// frame's outputs (its logits) as the top classes with their probabilities, and the target's.
// It reads a full-resolution frame (outputs per t) and draws plain HTML, no chart.
// What this is not: the inspect request (tools.js), or any view of the run's own probe frames.

import { el } from "./api.js";

const TOP_K = 5; // classes listed at a timestep (the target is added when it is not among them)
const MAX_LOSS_STEPS = 10; // regression: loss steps listed at most (the last ones)
const SHOWN = { " ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍" }; // as the core's display_char labels them

const shownChar = (ch) => SHOWN[ch] ?? ch;

/** The row of a (T, O) array at t. */
function rowAt(a, t) {
  const O = a.shape[1];
  return a.data.subarray(t * O, (t + 1) * O);
}

/** softmax of logits, in float64 and shifted by the largest (stable for any logit). */
export function softmax(logits) {
  const top = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

const lossSteps = (frame) => Array.from(frame.arrays.mask.data.keys()).filter((t) => frame.arrays.mask.data[t] > 0);

function classLabel(task, i) {
  return task.vocab ? `‘${shownChar(task.vocab[i] ?? "?")}’` : `class ${i}`;
}

// regression: the prediction (and target) at each loss step, the last few
function regression(frame) {
  const { outputs, targets } = frame.arrays;
  const steps = lossSteps(frame).slice(-MAX_LOSS_STEPS);
  const rows = steps.map((t) => {
    const y = Array.from(rowAt(outputs, t), (v) => v.toFixed(3)).join(", ");
    const target = targets ? Array.from(rowAt(targets, t), (v) => v.toFixed(3)).join(", ") : null;
    return el("tr", {}, el("td", { text: `t = ${t}` }), el("td", { class: "num", text: y }),
      el("td", { class: "num", text: target ?? "–" }));
  });
  return el("table", { class: "readout-table" },
    el("thead", {}, el("tr", {}, el("th", { text: "loss step" }), el("th", { text: "prediction" }), el("th", { text: "target" }))),
    el("tbody", {}, rows));
}

// classification at t: the top classes by probability, the target marked (and added if not among them)
function classes(frame, task, t) {
  const p = softmax(rowAt(frame.arrays.outputs, t));
  const target = frame.arrays.targets ? Math.round(frame.arrays.targets.data[t]) : null;
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]);
  const shown = order.slice(0, Math.min(TOP_K, p.length));
  if (target !== null && frame.arrays.mask.data[t] > 0 && !shown.includes(target)) shown.push(target);
  const rows = shown.map((i) => el("tr", { class: i === target ? "target" : null },
    el("td", { text: `${order.indexOf(i) + 1}.` }),
    el("td", { class: "label", text: classLabel(task, i) }),
    el("td", { class: "barcell" }, el("span", { class: "bar", style: `width: ${(100 * p[i]).toFixed(1)}%` })),
    el("td", { class: "num", text: p[i].toFixed(3) }),
    el("td", { text: i === target ? "← target" : "" })));
  return el("table", { class: "readout-table" }, el("tbody", {}, rows));
}

function caption(frame, task, t) {
  const read = frame.tokens ? ` after reading ${task.vocab ? `‘${frame.tokens[t]}’` : frame.tokens[t]}` : "";
  const what = task.name === "char_lm" ? "the next character" : "the class";
  const loss = frame.arrays.mask.data[t] > 0 ? "" : " (no loss term here)";
  return `${what} at t = ${t}${read}${loss}: probabilities (softmax of the outputs)`;
}

/**
 * Draw the readout of `frame` (full resolution) for `task` into `node`; for classification, a
 * t box (`tInput`) picks the timestep, starting at the last loss step.
 */
export function showReadout(node, tInput, frame, task) {
  const out = frame.arrays.outputs;
  const classify = task.loss_kind === "xent";
  tInput.parentElement.hidden = !classify;
  if (!out) {
    node.replaceChildren(el("p", { class: "hint", text: "This frame has no outputs." }));
    return;
  }
  if (!classify) {
    node.replaceChildren(el("p", { class: "readout-title", text: "The model's prediction at its loss steps" }), regression(frame));
    return;
  }
  const T = out.shape[0];
  Object.assign(tInput, { min: "0", max: String(T - 1), value: String(Math.min(frame.lastStep, T - 1)) });
  const draw = () => {
    const t = Math.max(0, Math.min(T - 1, Math.round(Number(tInput.value) || 0)));
    node.replaceChildren(el("p", { class: "readout-title", text: caption(frame, task, t) }), classes(frame, task, t));
  };
  tInput.oninput = draw;
  draw();
}

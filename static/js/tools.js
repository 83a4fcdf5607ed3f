// The run page's tools: "inspect" (POST /api/runs/{id}/inspect?resolution=display: the latest
// weights on your own input, a frame's bytes decoded like any other and drawn as hidden state,
// gradients and a gate) and, for char_lm runs, "sample" (POST /api/runs/{id}/sample: prime,
// length, temperature, seed -> text). The default inspect text is the run's probe line (/task).

import { bytes, post } from "./api.js";
import { decodeFrame } from "./frame.js";
import { Chart } from "./plots.js";
import { gradLinesFigure, stateFigure } from "./views.js";

const INSPECT_GATE = { lstm: "f", gru: "z" }; // the gate that decides what the cell keeps

const $ = (id) => document.getElementById(id);

function showError(node, err) {
  node.hidden = !err;
  node.textContent = err ? err.message || String(err) : "";
}

// the current probe frame's inputs as editable JSON, one timestep a line (a pooled frame's are
// bin means, not an input: then the box starts empty)
function inputsText(frame) {
  const a = frame && !frame.pool && frame.arrays.inputs;
  if (!a) return "";
  const [T, I] = a.shape;
  const lines = [];
  for (let t = 0; t < T; t++) {
    lines.push(`[${Array.from(a.data.subarray(t * I, (t + 1) * I), (v) => +v.toFixed(3)).join(", ")}]`);
  }
  return `[\n${lines.join(",\n")}\n]`;
}

// the inspect box: its label, hint and default text for this run's task
function fillInspectBox(task, frame) {
  const text = $("inspect-text");
  if (task.name === "char_lm") {
    $("inspect-label").textContent = "text";
    text.value = task.probe_text ?? "";
    $("inspect-hint").textContent = `Characters from the run's vocabulary (${(task.vocab || []).length} of them).`;
  } else {
    $("inspect-label").textContent = "inputs (JSON, one vector per timestep)";
    text.rows = 6;
    text.value = inputsText(frame);
    $("inspect-hint").textContent = `Each timestep is a vector of ${task.input_size} numbers; edit the probe's own input below (targets are placeholders: read the gradients' shape, not the loss).`;
  }
}

function inspectBody(task) {
  const text = $("inspect-text").value;
  if (task.name === "char_lm") return { text };
  try {
    return { inputs: JSON.parse(text) };
  } catch {
    throw new Error("the inputs are not valid JSON: write [[...], [...], ...]");
  }
}

function setupInspect(run, task, frame, display) {
  const cfg = run.config;
  const gate = INSPECT_GATE[cfg.cell] ?? null;
  fillInspectBox(task, frame);
  const charts = {
    hidden: new Chart($("chart-inspect-hidden"), stateFigure, { name: "inspect-hidden", legend: $("legend-inspect-hidden") }),
    grad: new Chart($("chart-inspect-grad"), gradLinesFigure, { name: "inspect-grad" }),
    gate: new Chart($("chart-inspect-gate"), stateFigure, { name: "inspect-gate", legend: $("legend-inspect-gate") }),
  };
  $("inspect-gate-name").textContent = gate ? `gate ${gate}` : "(no gates in this cell)";
  $("chart-inspect-gate").hidden = !gate;
  $("inspect-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError($("inspect-error"), null);
    try {
      const body = inspectBody(task);
      const answer = decodeFrame(await bytes(`/api/runs/${run.id}/inspect?resolution=display`, { method: "POST", body }));
      $("inspect-out").hidden = false;
      const common = { frame: answer, floor: display.floor, bidirectional: cfg.bidirectional };
      charts.hidden.update({ ...common, name: "h", relu: cfg.cell === "rnn_relu" });
      charts.grad.update({ ...common, which: ["grad_h_last", "grad_h"] });
      if (gate) charts.gate.update({ ...common, name: `gates.${gate}`, gateKinds: display.gate_kinds });
    } catch (err) {
      showError($("inspect-error"), err);
    }
  });
}

function setupSample(run, task, limits) {
  $("view-sample").hidden = false;
  $("sample-length").max = String(limits.sample_length);
  $("sample-prime").value = (task.probe_text ?? "").slice(0, 1);
  $("sample-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError($("sample-error"), null);
    const seed = $("sample-seed").value;
    const body = {
      prime: $("sample-prime").value || "\n",
      length: Number($("sample-length").value),
      temperature: Number($("sample-temp").value),
    };
    if (seed !== "") body.seed = Number(seed);
    $("sample-out").textContent = "…";
    try {
      $("sample-out").textContent = (await post(`/api/runs/${run.id}/sample`, body)).text;
    } catch (err) {
      $("sample-out").textContent = "";
      showError($("sample-error"), err);
    }
  });
}

/** The tools of one run's page: inspect always, sample for character models. `display` and
 * `limits` are the catalog's (floor, gate kinds; the longest sample). */
export function setupTools({ run, task, frame, display, limits }) {
  setupInspect(run, task, frame, display);
  if (task.name === "char_lm") setupSample(run, task, limits);
}

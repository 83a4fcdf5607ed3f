// The run page's tools: "inspect" (POST /api/runs/{id}/inspect?resolution=display: the latest
// weights on your own input, a frame's bytes decoded like any other and drawn as the model's
// outputs (readout.js), hidden state, gradients and a gate) and, for char_lm runs, "sample"
// (POST /api/runs/{id}/sample: prime, length, temperature, seed -> text). Inspect starts from the
// run's own probe input (char_lm: its probe text from /task); unchanged, it asks for the probe
// sample itself ({"probe": true}), whose targets make the loss and the target real.

import { bytes, post } from "./api.js";
import { decodeFrame } from "./frame.js";
import { Chart } from "./plots.js";
import { viewKinds } from "./gates.js";
import { showReadout } from "./readout.js";
import { gradLinesFigure, stateFigure } from "./views.js";

const INSPECT_GATE = { lstm: "f", gru: "z", mingru: "z", minlstm: "f", slstm: "f" }; // the gate that decides what the cell keeps

const $ = (id) => document.getElementById(id);

function showError(node, err) {
  node.hidden = !err;
  node.textContent = err ? err.message || String(err) : "";
}

// a frame's inputs as editable JSON, one timestep a line
function inputsText(frame) {
  const a = frame.arrays.inputs;
  const [T, I] = a.shape;
  const lines = [];
  for (let t = 0; t < T; t++) {
    lines.push(`[${Array.from(a.data.subarray(t * I, (t + 1) * I), (v) => +v.toFixed(3)).join(", ")}]`);
  }
  return `[\n${lines.join(",\n")}\n]`;
}

const pooledInTime = (frame) => !!(frame.pool && frame.pool.tWidth > 1);

// the run's own probe input at full resolution: the frame's when it is not pooled in time, else
// its step's full frame (null when the run has no frame yet)
async function probeInput(run, frame) {
  if (frame && !pooledInTime(frame)) return inputsText(frame);
  const step = frame ? frame.step : "latest";
  try {
    return inputsText(decodeFrame(await bytes(`/api/runs/${run.id}/probes/${step}?resolution=full`)));
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

// the inspect box starts with the run's own probe input (char_lm: its probe text); `probe.text`
// is that text, so that inspecting it unchanged asks for the probe sample with its targets
function fillInspectBox(run, task, frame, probe) {
  const box = $("inspect-text");
  if (task.name === "char_lm") {
    $("inspect-label").textContent = "text";
    probe.text = box.value = task.probe_text ?? "";
    $("inspect-hint").textContent = `Characters from the run's vocabulary (${(task.vocab || []).length} of them); unchanged, the run's own probe text.`;
    return;
  }
  $("inspect-label").textContent = "inputs (JSON, one vector per timestep)";
  box.rows = 6;
  $("inspect-hint").textContent = `Each timestep is a vector of ${task.input_size} numbers. Unchanged, this is the run's own probe input, inspected with its targets; an input you edit has none (read its outputs and the gradients' shape).`;
  const fill = async () => {
    if (box.value !== "") return;
    box.placeholder = "loading the run's probe input…";
    const text = await probeInput(run, frame);
    box.placeholder = text === null ? "the run's probe input comes with its first probe frame; or write your own" : "";
    if (text !== null && box.value === "") probe.text = box.value = text;
  };
  // fetched when the tool comes into view (a pooled frame's full input can be large), again on focus
  new IntersectionObserver((seen, watcher) => {
    if (seen.some((e) => e.isIntersecting)) {
      watcher.disconnect();
      fill().catch((err) => showError($("inspect-error"), err));
    }
  }).observe($("view-inspect"));
  box.addEventListener("focus", () => fill().catch((err) => showError($("inspect-error"), err)));
}

function inspectBody(task, probe) {
  const text = $("inspect-text").value;
  if (probe.text !== null && text === probe.text) return { probe: true };
  if (task.name === "char_lm") return { text };
  try {
    return { inputs: JSON.parse(text) };
  } catch {
    throw new Error("the inputs are not valid JSON: write [[...], [...], ...]");
  }
}

function setupInspect(run, task, frame, display, cell) {
  const cfg = run.config;
  const gate = INSPECT_GATE[cfg.cell] ?? null;
  const probe = { text: null };
  fillInspectBox(run, task, frame, probe);
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
      const body = inspectBody(task, probe);
      const path = `/api/runs/${run.id}/inspect`;
      const answer = decodeFrame(await bytes(`${path}?resolution=display`, { method: "POST", body }));
      // the readout reads outputs per t: a frame pooled in time has bin means, so ask for the full one
      const full = pooledInTime(answer) ? decodeFrame(await bytes(`${path}?resolution=full`, { method: "POST", body })) : answer;
      $("inspect-out").hidden = false;
      $("inspect-notes").textContent = answer.notes.join(" ");
      showReadout($("inspect-readout"), $("inspect-t"), full, task);
      const common = { frame: answer, floor: display.floor, bidirectional: cfg.bidirectional };
      charts.hidden.update({ ...common, name: "h", relu: cfg.cell === "rnn_relu" });
      charts.grad.update({ ...common, which: ["grad_h_last", "grad_h"] });
      if (gate) charts.gate.update({ ...common, name: `gates.${gate}`, gateKinds: viewKinds(cell) });
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

/** The tools of one run's page: inspect always, sample for character models. `display`, `cell`
 * and `limits` are the catalog's (the floor; the run's cell, its gates' kinds; the longest sample). */
export function setupTools({ run, task, frame, display, cell, limits }) {
  setupInspect(run, task, frame, display, cell);
  if (task.name === "char_lm") setupSample(run, task, limits);
}

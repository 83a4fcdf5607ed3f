// The run page's tools: "inspect" (POST /api/runs/{id}/inspect: the latest weights on your own
// input, drawn as hidden state, gradients and a gate) and, for char_lm runs, "sample"
// (POST /api/runs/{id}/sample: prime, length, temperature, seed -> text).

import { post } from "./api.js";
import { Chart, legend, RDBU } from "./plots.js";
import { fromPublic } from "./probe.js";
import { absMax, gradLinesFigure, stateFigure } from "./views.js";

const $ = (id) => document.getElementById(id);

function showError(node, err) {
  node.hidden = !err;
  node.textContent = err ? err.message || String(err) : "";
}

function defaultText(run, task) {
  if (run.config.probe_text) return run.config.probe_text;
  if (run.config.task.corpus === "hello") return "hello";
  if (run.config.task.corpus === "shakespeare") return "To be, or not to be, that is the question:";
  return (task.vocab || []).join("").slice(0, 40);
}

// the current probe frame's inputs as editable JSON, one timestep a line
function inputsText(frame) {
  const a = frame && frame.arrays.inputs;
  if (!a) return "[[0.5, 1], [0.2, 0], [0.7, 1]]";
  const [T, I] = a.shape;
  const lines = [];
  for (let t = 0; t < T; t++) {
    lines.push(`[${Array.from(a.data.subarray(t * I, (t + 1) * I), (v) => +v.toFixed(3)).join(", ")}]`);
  }
  return `[\n${lines.join(",\n")}\n]`;
}

export function setupTools({ run, task, state, feed }) {
  const charLM = task.name === "char_lm";
  const text = $("inspect-text");
  const gate = run.config.cell === "lstm" ? "f" : run.config.cell === "gru" ? "z" : null;
  if (charLM) {
    $("inspect-label").textContent = "text";
    text.value = defaultText(run, task);
    $("inspect-hint").textContent = `Characters from the run's vocabulary (${(task.vocab || []).length} of them).`;
  } else {
    $("inspect-label").textContent = "inputs (JSON, one vector per timestep)";
    text.rows = 6;
    text.value = inputsText(state.frame || feed.frame);
    $("inspect-hint").textContent = `Each timestep is a vector of ${task.input_size} numbers; edit the probe's own input below (targets are placeholders: read the gradients' shape, not the loss).`;
  }
  const charts = {
    hidden: new Chart($("chart-inspect-hidden"), stateFigure, { name: "inspect-hidden" }),
    grad: new Chart($("chart-inspect-grad"), gradLinesFigure, { name: "inspect-grad" }),
    gate: new Chart($("chart-inspect-gate"), stateFigure, { name: "inspect-gate" }),
  };
  $("inspect-gate-name").textContent = gate ? `gate ${gate}` : "(no gates in this cell)";
  if (!gate) $("chart-inspect-gate").hidden = true;

  $("inspect-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError($("inspect-error"), null);
    let body;
    if (charLM) body = { text: text.value };
    else {
      try {
        body = { inputs: JSON.parse(text.value) };
      } catch {
        return showError($("inspect-error"), new Error("the inputs are not valid JSON: write [[...], [...], ...]"));
      }
    }
    try {
      const frame = fromPublic(await post(`/api/runs/${run.id}/inspect`, body));
      $("inspect-out").hidden = false;
      const relu = run.config.cell === "rnn_relu";
      const m = relu ? absMax(frame, "h") : 1;
      charts.hidden.update({ frame, name: "h", zrange: [-m, m] });
      charts.grad.update({ frame, which: ["grad_h_last", "grad_h"] });
      if (gate) charts.gate.update({ frame, name: `gates.${gate}` });
      legend($("inspect-out").querySelector(".legend") || $("inspect-out").appendChild(document.createElement("div")), {
        colors: RDBU, min: -m, max: m, label: "h",
      });
    } catch (err) {
      showError($("inspect-error"), err);
    }
  });

  if (!charLM) return;
  $("view-sample").hidden = false;
  $("sample-prime").value = defaultText(run, task).slice(0, 1) || "h";
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

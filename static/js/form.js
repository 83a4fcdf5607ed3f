// The new-run form, built from /api/catalog: every knob of a RunCreate. `buildForm(form, catalog,
// onChange)` returns {get(), set(config)}: get() is the RunCreate JSON the API takes (empty
// optional fields left out), set() fills the form from one (missing fields take the defaults).

import { el } from "./api.js";

const num = (v) => (v === "" || v === null || v === undefined ? null : Number(v));

function field(label, input, { hint, show, wide } = {}) {
  const wrap = el("label", { class: wide ? "field wide" : "field", title: hint || null }, el("span", { text: label }), input);
  if (show) wrap.dataset.show = show;
  return wrap;
}

function select(name, options, value) {
  return el(
    "select",
    { name },
    options.map((o) => el("option", { value: o.name, title: o.doc || null, selected: o.name === value }, o.label || o.name)),
  );
}

function number(name, { min, max, step = "any", placeholder } = {}) {
  return el("input", { type: "number", name, min, max, step, placeholder, inputmode: "decimal" });
}

export function buildForm(form, catalog, onChange) {
  const L = catalog.limits;
  const tasks = Object.fromEntries(catalog.tasks.map((t) => [t.name, t]));
  const taskParams = {}; // remembered per task while switching
  form.replaceChildren(
    el(
      "fieldset",
      {},
      el("legend", { text: "Network" }),
      field("cell", select("cell", catalog.cells, "lstm")),
      field("hidden size", number("hidden_size", { min: 1, max: L.hidden_size, step: 1 })),
      field("layers", number("num_layers", { min: 1, max: L.num_layers, step: 1 })),
      field("bidirectional", el("input", { type: "checkbox", name: "bidirectional" })),
      field("init", select("init.scheme", catalog.init_schemes, "default")),
      field("gain", number("init.gain", { min: 0.01, max: 10, step: 0.05 }), { hint: "scale of W_hh: <1 vanishes, >1 explodes" }),
      field("forget bias", number("init.forget_bias", { min: -20, max: 20, step: 0.5, placeholder: "default" }), {
        show: "lstm",
        hint: "LSTM only: b_if + b_hf (empty: the init scheme's)",
      }),
    ),
    el(
      "fieldset",
      {},
      el("legend", { text: "Task" }),
      field("task", select("task.name", catalog.tasks.map((t) => ({ ...t, label: `${t.name} · ${t.shape.replaceAll("_", "-")}` })), "adding"), { wide: true }),
      el("div", { class: "task-params", id: "task-params" }),
      el("p", { class: "task-doc", id: "task-doc" }),
    ),
    el(
      "fieldset",
      {},
      el("legend", { text: "Training" }),
      field("optimizer", select("optimizer.name", catalog.optimizers, "adam")),
      field("learning rate", number("optimizer.lr", { min: 1e-6, max: 10 })),
      field("momentum", number("optimizer.momentum", { min: 0, max: 0.999, step: 0.05 }), { show: "sgd" }),
      field("clipping", select("clip.mode", catalog.clip_modes, "norm")),
      field("threshold", number("clip.threshold", { min: 1e-6, max: 1e6 }), { show: "clip" }),
      field("truncated BPTT", number("tbptt", { min: 1, max: L.tbptt, step: 1, placeholder: "full" }), {
        hint: "backpropagate at most this many steps (empty: through the whole sequence)",
      }),
      field("steps", number("steps", { min: 1, max: L.steps, step: 1 })),
      field("batch size", number("batch_size", { min: 1, max: L.batch_size, step: 1 })),
      field("seed", number("seed", { min: 0, max: L.seed, step: 1 })),
    ),
    el(
      "fieldset",
      {},
      el("legend", { text: "Probes" }),
      field("probe every", number("probe_every", { min: 0, max: L.probe_every, step: 1 }), {
        hint: "steps between probe frames (0: only the first and the last)",
      }),
      field("itemize", el("input", { type: "checkbox", name: "itemize" }), { hint: "itemized ‖∂ℓ_s/∂h_t‖ (T ≤ 200)" }),
      field("probe text", el("input", { type: "text", name: "probe_text", maxlength: 1000, placeholder: "the task's own sample" }), {
        show: "char_lm",
      }),
    ),
    el(
      "div",
      { class: "form-actions" },
      el("button", { type: "submit", class: "primary", id: "start-run" }, "Start run"),
      el("button", { type: "button", id: "compare-cells", title: "the same config and seed with a tanh RNN, an LSTM and a GRU" }, "Compare RNN · LSTM · GRU"),
      el("button", { type: "button", id: "copy-link", title: "a link that restores this form" }, "Copy link"),
    ),
    el("p", { class: "error", id: "form-error", role: "alert", hidden: true }),
  );
  const input = (name) => form.elements.namedItem(name);

  function renderTaskParams(name, values) {
    const task = tasks[name];
    const box = form.querySelector("#task-params");
    box.replaceChildren(
      ...task.params.map((p) => {
        let control;
        if (p.kind === "choice") control = select(`param.${p.name}`, p.choices.map((c) => ({ name: c })), p.default);
        else if (p.kind === "str") control = el("textarea", { name: `param.${p.name}`, rows: 2, maxlength: p.maximum });
        else control = number(`param.${p.name}`, { min: p.minimum, max: p.maximum, step: p.kind === "int" ? 1 : "any" });
        const v = values[p.name] ?? p.default;
        if (p.kind === "choice") control.value = v;
        else control.value = v ?? "";
        const wrap = field(p.name, control, { hint: p.doc });
        if (p.name === "text") wrap.dataset.show = "custom";
        return wrap;
      }),
    );
    form.querySelector("#task-doc").textContent = `${task.title}. Baseline loss at the defaults: ${task.baseline_loss.toPrecision(3)}.`;
  }

  function readTaskParams(name) {
    const out = {};
    for (const p of tasks[name].params) {
      const c = input(`param.${p.name}`);
      if (!c) continue;
      if (p.kind === "int" || p.kind === "float") {
        if (c.value !== "") out[p.name] = p.kind === "int" ? parseInt(c.value, 10) : Number(c.value);
      } else if (p.kind === "str") {
        if (c.value !== "") out[p.name] = c.value;
      } else out[p.name] = c.value;
    }
    return out;
  }

  function visibility() {
    const cell = input("cell").value;
    const task = input("task.name").value;
    const flags = {
      lstm: cell === "lstm",
      sgd: input("optimizer.name").value === "sgd",
      clip: input("clip.mode").value !== "off",
      char_lm: task === "char_lm",
      custom: task === "char_lm" && input("param.corpus") && input("param.corpus").value === "custom",
    };
    for (const node of form.querySelectorAll("[data-show]")) node.hidden = !flags[node.dataset.show];
  }

  function get() {
    const task = input("task.name").value;
    const cfg = {
      cell: input("cell").value,
      hidden_size: num(input("hidden_size").value),
      num_layers: num(input("num_layers").value),
      bidirectional: input("bidirectional").checked,
      init: { scheme: input("init.scheme").value, gain: num(input("init.gain").value) },
      task: { name: task, ...readTaskParams(task) },
      optimizer: { name: input("optimizer.name").value, lr: num(input("optimizer.lr").value) },
      clip: { mode: input("clip.mode").value, threshold: num(input("clip.threshold").value) },
      steps: num(input("steps").value),
      batch_size: num(input("batch_size").value),
      seed: num(input("seed").value),
      probe_every: num(input("probe_every").value),
      itemize: input("itemize").checked,
    };
    const fb = num(input("init.forget_bias").value);
    if (cfg.cell === "lstm" && fb !== null) cfg.init.forget_bias = fb;
    if (cfg.optimizer.name === "sgd") cfg.optimizer.momentum = num(input("optimizer.momentum").value) ?? 0;
    const tbptt = num(input("tbptt").value);
    if (tbptt !== null) cfg.tbptt = tbptt;
    const probeText = input("probe_text").value;
    if (task === "char_lm" && probeText) cfg.probe_text = probeText;
    return cfg;
  }

  function set(cfg) {
    const d = { hidden_size: 64, num_layers: 1, steps: 2000, batch_size: 64, seed: 0, probe_every: 10 };
    input("cell").value = cfg.cell || "lstm";
    for (const k of Object.keys(d)) input(k).value = cfg[k] ?? d[k];
    input("bidirectional").checked = !!cfg.bidirectional;
    input("itemize").checked = cfg.itemize ?? true;
    const init = cfg.init || {};
    input("init.scheme").value = init.scheme || "default";
    input("init.gain").value = init.gain ?? 1;
    input("init.forget_bias").value = init.forget_bias ?? "";
    const opt = cfg.optimizer || {};
    input("optimizer.name").value = opt.name || "adam";
    input("optimizer.lr").value = opt.lr ?? 0.003;
    input("optimizer.momentum").value = opt.momentum ?? 0;
    const clip = cfg.clip || {};
    input("clip.mode").value = clip.mode || "norm";
    input("clip.threshold").value = clip.threshold ?? 1;
    input("tbptt").value = cfg.tbptt ?? "";
    input("probe_text").value = cfg.probe_text ?? "";
    const { name = "adding", ...params } = cfg.task || {};
    input("task.name").value = tasks[name] ? name : "adding";
    taskParams[name] = params;
    renderTaskParams(input("task.name").value, params);
    visibility();
  }

  form.addEventListener("change", (ev) => {
    if (ev.target.name === "task.name") {
      renderTaskParams(ev.target.value, taskParams[ev.target.value] || {});
    } else if (ev.target.name && ev.target.name.startsWith("param.")) {
      taskParams[input("task.name").value] = readTaskParams(input("task.name").value);
    }
    visibility();
    onChange(get());
  });
  form.addEventListener("input", () => onChange(get()));
  return { get, set };
}

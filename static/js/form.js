// The new-run form, built from /api/catalog: every knob of a RunCreate. `buildForm(form, catalog,
// onChange)` returns {get(), set(config), ready(), showError(err)}: get() is the RunCreate JSON
// the API takes, set() fills the form from one; what a config lacks comes from catalog.defaults,
// the server's RunCreate defaults (no default is restated here), as the server fills it.
// One rule for an empty field: a field with a placeholder may be empty, and the placeholder says
// what that means ("full", "off", "default": the key is left out); any other empty field is
// null in get() (never a default) and named by ready() before anything is sent. As the person
// edits, the form shows the run's estimated cost and any field the server refuses
// (formcheck.js). `linkState` / `linkedConfig`: the form in a URL, a custom text by its stored
// id (text=@<id>, POST /api/texts) rather than in the link.
// What this is not: validation. The server checks every value and its 422 names the field.

import { api, el, post } from "./api.js";
import { estimator, labelOf, mark, showFailure } from "./formcheck.js";

const num = (v) => (v === "" || v === null || v === undefined ? null : Number(v));

function field(label, input, { hint, show, wide } = {}) {
  const wrap = el("label", { class: wide ? "field wide" : "field", title: hint || null }, el("span", { text: label }), input);
  if (show) wrap.dataset.show = show;
  return wrap;
}

function select(name, options) {
  return el("select", { name }, options.map((o) => el("option", { value: o.name, title: o.doc || null }, o.label || o.name)));
}

function number(name, { min, max, step = "any", placeholder } = {}) {
  return el("input", { type: "number", name, min, max, step, placeholder, inputmode: "decimal" });
}

const checkbox = (name) => el("input", { type: "checkbox", name });
const int = (name, max, extra = {}) => number(name, { min: 1, max, step: 1, ...extra });

function runFields(cat) {
  const L = cat.limits;
  return el(
    "fieldset",
    {},
    el("legend", { text: "Run" }),
    field("name", el("input", { type: "text", name: "name", maxlength: L.name_chars, placeholder: "none" }), {
      wide: true,
      hint: "what the dashboard, run and compare pages call this run (empty: no name)",
    }),
    field("tags", el("input", { type: "text", name: "tags", placeholder: "none" }), {
      hint: `comma-separated, at most ${L.tags} (empty: no tags)`,
    }),
  );
}

// a cell's own settings (catalog cells[].options: sLSTM's forget gate and stabiliser), named
// "<cell>.<option>", shown only for that cell
function cellOptionFields(cat) {
  return cat.cells.flatMap((cell) =>
    cell.options.map((o) => {
      const name = `${cell.name}.${o.name}`;
      const input = o.kind === "bool" ? checkbox(name) : select(name, o.choices.map((c) => ({ name: c })));
      return field(`${cell.name} ${o.name}`, input, { show: `cell:${cell.name}`, hint: o.doc });
    }),
  );
}

function networkFields(cat) {
  const L = cat.limits;
  return el(
    "fieldset",
    {},
    el("legend", { text: "Network" }),
    field("cell", select("cell", cat.cells)),
    field("hidden size", int("hidden_size", L.hidden_size)),
    field("layers", int("num_layers", L.num_layers)),
    field("bidirectional", checkbox("bidirectional"), { hint: "read the sequence both ways (not for the one-way cells)" }),
    ...cellOptionFields(cat),
    field("init", select("init.scheme", cat.init_schemes)),
    field("gain", number("init.gain", { step: 0.05 }), { hint: "scale of W_hh: <1 vanishes, >1 explodes" }),
    field("forget bias", number("init.forget_bias", { step: 0.5, placeholder: "default" }), {
      show: "forget",
      hint: "the forget gate's bias, for the cells with one (LSTM: b_if + b_hf; empty: the init scheme's)",
    }),
    el("p", { class: "task-doc", id: "cell-note", hidden: true }), // why a field is off for this cell
  );
}

function taskFields(cat) {
  const tasks = cat.tasks.map((t) => ({ ...t, label: `${t.name} · ${t.shape.replaceAll("_", "-")}` }));
  return el(
    "fieldset",
    {},
    el("legend", { text: "Task" }),
    field("task", select("task.name", tasks), { wide: true }),
    el("div", { class: "task-params", id: "task-params" }),
    el("p", { class: "task-doc", id: "task-doc" }),
  );
}

function trainingFields(cat) {
  const L = cat.limits;
  return el(
    "fieldset",
    {},
    el("legend", { text: "Training" }),
    field("optimizer", select("optimizer.name", cat.optimizers)),
    field("learning rate", number("optimizer.lr")),
    field("momentum", number("optimizer.momentum", { min: 0, step: 0.05 }), { show: "sgd" }),
    field("clipping", select("clip.mode", cat.clip_modes)),
    field("threshold", number("clip.threshold"), { show: "clip" }),
    field("truncated BPTT", int("tbptt", L.tbptt, { placeholder: "full" }), {
      hint: "backpropagate at most this many steps (empty: through the whole sequence)",
    }),
    field("steps", int("steps", L.steps)),
    field("batch size", int("batch_size", L.batch_size)),
    field("seed", number("seed", { min: 0, max: L.seed, step: 1 })),
  );
}

function probeFields(cat) {
  return el(
    "fieldset",
    {},
    el("legend", { text: "Probes" }),
    field("probe every", number("probe_every", { min: 0, max: cat.limits.probe_every, step: 1 }), {
      hint: "steps between probe frames (0: only the first and the last)",
    }),
    field("itemize", checkbox("itemize"), { hint: "itemized ‖∂ℓ_s/∂h_t‖ in every probe" }),
    field("probe budget", number("probe_budget", { min: 0, max: 0.5, step: 0.01, placeholder: "off" }), {
      hint: "probing's share of training time (e.g. 0.05): the engine picks when to probe and itemize; probe every is then the smallest gap",
    }),
    field("probe text", el("input", { type: "text", name: "probe_text", maxlength: cat.limits.text_chars, placeholder: "the task's own sample" }), {
      show: "char_lm",
    }),
    field("storage budget (MB)", int("storage_mb", cat.limits.storage_mb, { placeholder: "the server's" }), {
      hint: "the MB this run's probe frames and snapshots are kept within: older ones are thinned evenly (step 0, the latest and fork points stay)",
    }),
  );
}

function actions() {
  return [
    el(
      "div",
      { class: "form-actions" },
      el("button", { type: "submit", class: "primary", id: "start-run" }, "Start run"),
      el("button", { type: "button", id: "compare-cells", title: "the same config and seed with a tanh RNN, an LSTM, a GRU and a minGRU" }, "Compare RNN · LSTM · GRU · minGRU"),
      el("button", { type: "button", id: "copy-link", title: "a link that restores this form" }, "Copy link"),
    ),
    el("p", { class: "estimate", id: "form-estimate", role: "status", "aria-live": "polite" }),
    el("p", { class: "error", id: "form-error", role: "alert", hidden: true }),
  ];
}

// one task parameter's control, filled with its value (or the task's default)
function paramControl(p, value) {
  const name = `param.${p.name}`;
  let control;
  if (p.kind === "choice") control = select(name, p.choices.map((c) => ({ name: c })));
  else if (p.kind === "str") control = el("textarea", { name, rows: 2, maxlength: p.maximum });
  else control = number(name, { min: p.minimum, max: p.maximum, step: p.kind === "int" ? 1 : "any" });
  control.value = value === undefined ? (p.default ?? "") : (value ?? ""); // null (emptied) stays empty
  const wrap = field(p.name, control, { hint: p.doc });
  if (p.name === "text") wrap.dataset.show = "custom";
  return wrap;
}

// a parameter's value as the API takes it; empty is null (never the task's default)
function paramValue(p, control) {
  if (p.kind === "choice") return control.value;
  if (control.value === "") return null;
  if (p.kind === "int") return parseInt(control.value, 10);
  return p.kind === "float" ? Number(control.value) : control.value;
}

// the form's values on top of the server's defaults: nested specs merged one level deep
function withDefaults(defaults, cfg) {
  const out = { ...defaults, ...cfg };
  for (const key of ["init", "optimizer", "clip"]) out[key] = { ...defaults[key], ...cfg[key] };
  return out;
}

// One form's state: its node, the catalog's tasks and cells by name, and each task's parameters as last
// edited (kept while switching tasks); the functions below read and write the form through it.
const control = (f, name) => f.node.elements.namedItem(name);

function renderTaskParams(f, name) {
  const task = f.tasks[name];
  const values = f.taskParams[name] || {};
  f.node.querySelector("#task-params").replaceChildren(...task.params.map((p) => paramControl(p, values[p.name])));
  f.node.querySelector("#task-doc").textContent = `${task.title}. Baseline loss at the defaults: ${task.baseline_loss.toPrecision(3)}.`;
}

function readTaskParams(f, name) {
  const out = {};
  for (const p of f.tasks[name].params) {
    const c = control(f, `param.${p.name}`);
    if (c && !c.closest("[hidden]")) out[p.name] = paramValue(p, c);
  }
  return out;
}

// show only the fields that apply: forget bias for cells with a forget gate, momentum for SGD,
// a cell's own options for it; and disable what the cell cannot take (both ways, W_hh's init)
function showApplicable(f) {
  const value = (name) => control(f, name)?.value;
  const cell = f.cells[value("cell")];
  const charLM = value("task.name") === "char_lm";
  const flags = {
    forget: cell.gates.includes("f"),
    [`cell:${cell.name}`]: true,
    sgd: value("optimizer.name") === "sgd",
    clip: value("clip.mode") !== "off",
    char_lm: charLM,
    custom: charLM && value("param.corpus") === "custom",
  };
  for (const node of f.node.querySelectorAll("[data-show]")) node.hidden = !flags[node.dataset.show];
  const off = { bidirectional: !cell.bidirectional, "init.scheme": !cell.w_hh, "init.gain": !cell.w_hh };
  for (const [name, disabled] of Object.entries(off)) control(f, name).disabled = disabled;
  const why = [];
  if (!cell.bidirectional) why.push(`${cell.name} runs one way only, so bidirectional is off.`);
  if (!cell.w_hh) why.push(`${cell.name} has no recurrent weights W_hh (its gates read x_t alone), so init and gain have nothing to set.`);
  const note = f.node.querySelector("#cell-note");
  note.textContent = why.join(" ");
  note.hidden = why.length === 0;
}

// a cell's own options as the form holds them: {option: value}
function readCellOptions(f, cell) {
  const input = (o) => control(f, `${cell.name}.${o.name}`);
  return Object.fromEntries(cell.options.map((o) => [o.name, o.kind === "bool" ? input(o).checked : input(o).value]));
}

// the form -> a RunCreate (optional fields left out when empty)
function readConfig(f) {
  const input = (name) => control(f, name);
  const value = (name) => num(input(name).value);
  const task = input("task.name").value;
  const cell = f.cells[input("cell").value];
  const cfg = {
    cell: cell.name,
    hidden_size: value("hidden_size"),
    num_layers: value("num_layers"),
    bidirectional: cell.bidirectional && input("bidirectional").checked,
    init: cell.w_hh ? { scheme: input("init.scheme").value, gain: value("init.gain") } : {}, // no W_hh: the server's
    task: { name: task, ...readTaskParams(f, task) },
    optimizer: { name: input("optimizer.name").value, lr: value("optimizer.lr") },
    clip: { mode: input("clip.mode").value, threshold: value("clip.threshold") },
    steps: value("steps"),
    batch_size: value("batch_size"),
    seed: value("seed"),
    probe_every: value("probe_every"),
    itemize: input("itemize").checked,
  };
  if (cell.gates.includes("f") && value("init.forget_bias") !== null) cfg.init.forget_bias = value("init.forget_bias");
  if (cell.options.length) cfg[cell.name] = readCellOptions(f, cell); // RunCreate.slstm: only for its cell
  if (cfg.optimizer.name === "sgd") cfg.optimizer.momentum = value("optimizer.momentum");
  if (cfg.clip.mode === "off") delete cfg.clip.threshold; // not shown: not asked
  if (value("tbptt") !== null) cfg.tbptt = value("tbptt");
  if (value("probe_budget") !== null) cfg.probe_budget = value("probe_budget");
  if (value("storage_mb") !== null) cfg.storage_mb = value("storage_mb");
  if (task === "char_lm" && input("probe_text").value) cfg.probe_text = input("probe_text").value;
  if (input("name").value.trim()) cfg.name = input("name").value;
  if (input("tags").value.trim()) cfg.tags = input("tags").value.split(",").map((t) => t.trim()); // a blank tag is the server's to refuse
  return cfg;
}

// a RunCreate -> the form; what it lacks from catalog.defaults (an unknown task is an error)
function fillForm(f, config) {
  const input = (name) => control(f, name);
  const { name, ...params } = config.task ?? {};
  if (!f.tasks[name]) throw new Error(`the config's task ${JSON.stringify(name ?? null)} is none of ${Object.keys(f.tasks).join(", ")}`);
  const cfg = withDefaults(f.defaults, config);
  for (const key of ["cell", "hidden_size", "num_layers", "steps", "batch_size", "seed", "probe_every", "tbptt", "probe_text", "probe_budget", "storage_mb"]) {
    input(key).value = cfg[key] ?? "";
  }
  input("name").value = cfg.name ?? "";
  input("tags").value = (cfg.tags ?? []).join(", ");
  input("bidirectional").checked = !!cfg.bidirectional;
  input("itemize").checked = !!cfg.itemize;
  for (const cell of Object.values(f.cells)) {
    for (const o of cell.options) {
      const value = (config[cell.name] ?? {})[o.name] ?? o.default; // the spec's own default
      if (o.kind === "bool") input(`${cell.name}.${o.name}`).checked = !!value;
      else input(`${cell.name}.${o.name}`).value = value;
    }
  }
  for (const [spec, keys] of [["init", ["scheme", "gain", "forget_bias"]], ["optimizer", ["name", "lr", "momentum"]], ["clip", ["mode", "threshold"]]]) {
    for (const k of keys) input(`${spec}.${k}`).value = cfg[spec][k] ?? "";
  }
  input("task.name").value = name;
  f.taskParams[name] = params;
  renderTaskParams(f, name);
  showApplicable(f);
}

// the shown fields without a placeholder that are empty: [{name, text}] in the form's words
function emptyFields(f) {
  const controls = [...f.node.querySelectorAll("input[type=number], input[type=text], textarea")];
  return controls
    .filter((c) => c.value === "" && !c.placeholder && !c.closest("[hidden]"))
    .map((c) => ({ name: c.name, text: `${labelOf(c)} is empty: fill it in` }));
}

export function buildForm(node, catalog, onChange) {
  const f = {
    node,
    tasks: Object.fromEntries(catalog.tasks.map((t) => [t.name, t])),
    cells: Object.fromEntries(catalog.cells.map((c) => [c.name, c])),
    defaults: catalog.defaults,
    taskParams: {},
  };
  node.replaceChildren(runFields(catalog), networkFields(catalog), taskFields(catalog), trainingFields(catalog), probeFields(catalog), ...actions());
  const line = node.querySelector("#form-estimate");
  const estimate = estimator(node, line, () => ({ config: readConfig(f), empty: emptyFields(f) }));
  node.addEventListener("change", (ev) => {
    const task = control(f, "task.name").value;
    if (ev.target.name === "task.name") renderTaskParams(f, task);
    else if (ev.target.name && ev.target.name.startsWith("param.")) f.taskParams[task] = readTaskParams(f, task);
    showApplicable(f);
    onChange(readConfig(f));
    estimate();
  });
  node.addEventListener("input", () => {
    onChange(readConfig(f));
    estimate();
  });
  return {
    get: () => readConfig(f),
    set: (config) => {
      fillForm(f, config);
      estimate();
    },
    ready: () => {
      const empty = emptyFields(f);
      mark(node, empty);
      return empty.length === 0;
    },
    showError: (err) => showFailure(node, err),
  };
}

// -- the form in a link -------------------------------------------------------------------------

let lastText = { text: null, id: null }; // the last custom text stored, so an unchanged one is not sent again

/** The URL state of a config: {config: without its custom text, text: "@<id>" of the stored text, or null}. */
export async function linkState(config) {
  const text = config.task?.text;
  if (!text) return { config, text: null };
  if (lastText.text !== text) lastText = { text, id: (await post("/api/texts", { text })).id };
  const { text: _, ...task } = config.task;
  return { config: { ...config, task }, text: `@${lastText.id}` };
}

/** The config a link holds (?config=<json>[&text=@<id>]), its text fetched; null if it has none. */
export async function linkedConfig(params) {
  if (!params.get("config")) return null;
  const config = JSON.parse(params.get("config"));
  const ref = params.get("text");
  if (ref === null) return config;
  const id = /^@([0-9a-f]+)$/.exec(ref); // the server checks the id's length
  if (!id) throw new Error(`text=${ref.slice(0, 40)} names no stored text (text=@<id>)`);
  const { text } = await api(`/api/texts/${id[1]}`);
  lastText = { text, id: id[1] };
  return { ...config, task: { ...config.task, text } };
}

// The dashboard (/): runs with status and loss sparklines, the new-run form with the presets,
// one-click comparisons. The form lives in the URL (?config=<json>, or ?preset=<name>), so a
// configuration can be shared as a link.

import { api, ApiError, catalog, describeModule, describeRun, el, fmt, isAttached, post, setStatus, upload } from "./api.js";
import { buildForm } from "./form.js";

const state = { runs: [], selected: new Set(), sparks: {}, timer: null, finished: new Set() };
const $ = (id) => document.getElementById(id);

function showError(node, err) {
  node.hidden = !err;
  node.textContent = err ? (err instanceof ApiError ? `${err.status}: ${err.message}` : String(err)) : "";
}

// -- the runs table ------------------------------------------------------------------------

function sparkline(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 120 28");
  svg.setAttribute("class", "spark");
  if (!points || points.loss.length < 2) return svg;
  const ys = points.loss;
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const xs = points.steps;
  const x0 = xs[0];
  const dx = xs[xs.length - 1] - x0 || 1;
  const path = ys
    .map((y, i) => `${((xs[i] - x0) / dx) * 118 + 1},${hi > lo ? 26 - ((y - lo) / (hi - lo)) * 24 : 14}`)
    .join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", path);
  svg.append(line);
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = `loss ${fmt(ys[0])} → ${fmt(ys[ys.length - 1])}`;
  svg.append(title);
  return svg;
}

// an attached run: its badge, name, module and shape, script; a built-in run: its task
function whatCell(run) {
  if (!isAttached(run)) return el("td", { text: describeRun(run).split(" · ")[1], class: "task", title: describeRun(run) });
  const c = run.config;
  const title = `attached: ${c.name ?? "unnamed"} · ${describeModule(c)}${c.script ? ` · ${c.script}` : ""}`;
  return el(
    "td",
    { class: "task attached", title },
    el("span", { class: "line" }, el("span", { class: "badge", text: "attached" }), c.name ? el("strong", { text: ` ${c.name}` }) : null),
    el("span", { class: "line module", text: describeModule(c, true) }),
    c.script ? el("span", { class: "line script", text: c.script }) : null,
  );
}

const short = (n) => (n >= 10000 ? `${+(n / 1000).toPrecision(3)}k` : String(n));

// an attached run has no total: the script decides how many steps it trains
function stepCell(run) {
  if (isAttached(run)) return el("td", { text: `step ${short(run.step)}`, class: "num", title: `${run.step} steps so far; the script decides how many` });
  return el("td", { text: `${short(run.step)}/${short(run.steps)}`, class: "num", title: `${run.step} of ${run.steps} steps` });
}

// stop a built-in run; ask an attached run's script to stop (once asked, say so)
function stopControl(run) {
  if (state.finished.has(run.status)) return null;
  const onclick = () => act(post(`/api/runs/${run.id}/stop`));
  if (!isAttached(run)) return el("button", { type: "button", title: "stop training", "aria-label": `stop ${run.id}`, onclick }, "■");
  if (run.config.stop_requested) return el("span", { class: "stop-requested", title: "the script sees watch.should_stop; the run ends when the script ends it", text: "stop requested" });
  return el("button", { type: "button", title: "ask the script to stop (watch.should_stop becomes true)", "aria-label": `stop ${run.id}`, onclick }, "■");
}

function renderRuns() {
  const body = $("runs").querySelector("tbody");
  $("runs-empty").hidden = state.runs.length > 0;
  body.replaceChildren(
    ...state.runs.map((run) => {
      const status = el("span");
      setStatus(status, run.status);
      const pick = el("input", { type: "checkbox", "aria-label": `select ${run.id}`, checked: state.selected.has(run.id) });
      pick.addEventListener("change", () => {
        if (pick.checked) state.selected.add(run.id);
        else state.selected.delete(run.id);
        $("compare-selected").disabled = state.selected.size < 1;
      });
      const spark = state.sparks[run.id];
      const last = spark && spark.loss.length ? fmt(spark.loss[spark.loss.length - 1], 2) : "";
      return el(
        "tr",
        { "data-run": run.id, "data-kind": run.kind ?? "built-in" },
        el("td", {}, pick),
        el("td", {}, el("a", { href: `/runs/${run.id}` }, run.id), run.group ? el("span", { class: "tag", title: `${isAttached(run) ? "the runs of one watch" : "comparison group"} ${run.group}` }, "g") : null),
        el("td", {}, status),
        el("td", { text: run.config.cell }),
        whatCell(run),
        stepCell(run),
        el("td", { class: "spark-cell" }, sparkline(spark), el("span", { class: "num", text: last })),
        el(
          "td",
          { class: "row-actions" },
          stopControl(run),
          el("button", { type: "button", title: "delete this run and its data", "aria-label": `delete ${run.id}`, onclick: () => confirm(`Delete run ${run.id}?`) && act(api(`/api/runs/${run.id}`, { method: "DELETE" })) }, "✕"),
        ),
      );
    }),
  );
}

async function act(promise) {
  try {
    await promise;
  } catch (err) {
    showError($("runs-error"), err);
  }
  refresh();
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    const list = await api("/api/runs?limit=50");
    state.runs = list.items;
    const ids = state.runs.filter((r) => !state.finished.has(r.status) || !state.sparks[r.id]).map((r) => r.id);
    if (ids.length) Object.assign(state.sparks, await api(`/api/sparklines?ids=${ids.join(",")}&points=60`));
    showError($("runs-error"), null);
    renderRuns();
  } catch (err) {
    showError($("runs-error"), err);
  }
  const active = state.runs.some((r) => !state.finished.has(r.status));
  state.timer = setTimeout(refresh, active ? 2000 : 10000);
}

// -- importing a run file (gatescope.watch(..., server=None) wrote it) -------------------------

// POST the file's bytes to /api/import; open the run (or its group) it became
async function importFile(file) {
  const note = $("import-note");
  showError($("import-error"), null);
  note.textContent = `importing ${file.name} (${fmt(file.size / 1e6, 3)} MB)…`;
  try {
    const group = await upload("/api/import", file);
    const ids = group.runs.map((r) => r.id);
    note.textContent = `imported ${file.name}`;
    location.href = ids.length > 1 ? `/compare?runs=${ids.join(",")}` : `/runs/${ids[0]}`;
  } catch (err) {
    note.textContent = "";
    const why = err instanceof ApiError ? `(${err.status}): ${err.message}` : `: ${err.message || err}`;
    showError($("import-error"), `${file.name} was not imported ${why}`); // its own line: refresh() clears runs-error
  }
}

// -- starting runs ---------------------------------------------------------------------------

async function start(what, form) {
  showError($("form-error"), null);
  try {
    if (what === "run") {
      const run = await post("/api/runs", form.get());
      location.href = `/runs/${run.id}`;
    } else {
      const group = await post("/api/compare", { config: form.get() }); // the server's cells: tanh RNN, LSTM, GRU
      location.href = `/compare?runs=${group.runs.map((r) => r.id).join(",")}`;
    }
  } catch (err) {
    showError($("form-error"), err);
  }
}

async function startPreset(preset) {
  showError($("form-error"), null);
  try {
    let ids;
    if (preset.compare) {
      const group = await post("/api/compare", { config: preset.config, cells: preset.compare });
      ids = group.runs.map((r) => r.id);
    } else {
      ids = [];
      for (const config of [preset.config, ...preset.variants]) ids.push((await post("/api/runs", config)).id);
    }
    location.href = ids.length > 1 ? `/compare?runs=${ids.join(",")}` : `/runs/${ids[0]}`;
  } catch (err) {
    showError($("form-error"), err);
  }
}

function renderPresets(cat, form) {
  const note = $("preset-note");
  $("presets").replaceChildren(
    ...cat.presets.map((p) =>
      el("button", {
        type: "button",
        class: "preset",
        title: p.title,
        "data-preset": p.name,
        onclick: () => choosePreset(p, form, note),
      }, p.name),
    ),
  );
}

function choosePreset(p, form, note) {
  form.set(p.config);
  syncUrl(form.get(), p.name);
  const runs = p.compare ? `compare ${p.compare.join(" · ")}` : p.variants.length ? `${p.variants.length + 1} runs` : "one run";
  note.replaceChildren(
    el("strong", { text: p.title }),
    el("br"),
    p.look_for,
    " ",
    el("button", { type: "button", class: "primary", id: "start-preset", onclick: () => startPreset(p) }, `Start preset (${runs})`),
  );
}

let urlTimer = null;
function syncUrl(config, preset = null) {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const url = new URL(location.href);
    url.searchParams.delete("preset");
    url.searchParams.set("config", JSON.stringify(config));
    if (preset) url.searchParams.set("preset", preset);
    history.replaceState(null, "", url);
  }, 150);
}

async function main() {
  $("import-file").addEventListener("change", (ev) => { // needs no catalog: bound at once
    const file = ev.target.files[0];
    ev.target.value = ""; // the same file again is a new choice
    if (file) importFile(file);
  });
  const cat = await catalog();
  state.finished = new Set(cat.statuses.finished);
  refresh();
  $("compare-selected").addEventListener("click", () => {
    location.href = `/compare?runs=${[...state.selected].join(",")}`;
  });
  const formNode = $("run-form");
  const form = buildForm(formNode, cat, (cfg) => syncUrl(cfg));
  renderPresets(cat, form);
  const params = new URLSearchParams(location.search);
  const preset = cat.presets.find((p) => p.name === params.get("preset"));
  const initial = preset ? preset.config : cat.presets.find((p) => p.name === "adding").config;
  form.set(initial);
  if (params.get("config")) {
    try {
      form.set(JSON.parse(params.get("config")));
    } catch (err) {
      form.set(initial);
      showError($("form-error"), `the config in the link cannot be shown (${err.message}); showing the ${preset ? preset.name : "adding"} preset`);
    }
  }
  if (preset) choosePreset(preset, form, $("preset-note"));
  formNode.addEventListener("submit", (ev) => {
    ev.preventDefault();
    start("run", form);
  });
  $("compare-cells").addEventListener("click", () => start("compare", form));
  $("copy-link").addEventListener("click", async () => {
    syncUrl(form.get());
    const url = new URL(location.href);
    url.searchParams.set("config", JSON.stringify(form.get()));
    try {
      await navigator.clipboard.writeText(url.toString());
      $("copy-link").textContent = "Link copied";
    } catch {
      $("copy-link").textContent = "Link in the address bar";
    }
    setTimeout(() => ($("copy-link").textContent = "Copy link"), 2000);
  });
}

main();

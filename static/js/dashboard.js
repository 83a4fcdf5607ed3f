// The dashboard (/): the run list (runlist.js), the new-run form with the presets, one-click
// comparisons, importing a run file, the sweeps (sweeplist.js). The form lives in the URL (?config=<json>, or
// ?preset=<name>), so a configuration can be shared as a link. A preset's runs are named by
// its label: its own run names, else the preset's name (a comparison adds each run's cell).

import { ApiError, catalog, fmt, el, post, upload } from "./api.js";
import { buildForm, linkedConfig, linkState } from "./form.js";
import { startRunList } from "./runlist.js";
import { startSweepList } from "./sweeplist.js";

const $ = (id) => document.getElementById(id);

function showError(node, err) {
  node.hidden = !err;
  node.textContent = err ? (err instanceof ApiError ? `${err.status}: ${err.message}` : String(err)) : "";
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
    showError($("import-error"), `${file.name} was not imported ${why}`); // its own line: the list's refresh clears runs-error
  }
}

// -- starting runs ---------------------------------------------------------------------------

async function start(what, form) {
  if (!form.ready()) return; // an empty field: named and marked, nothing sent
  try {
    if (what === "run") {
      const run = await post("/api/runs", form.get());
      location.href = `/runs/${run.id}`;
    } else {
      const group = await post("/api/compare", { config: form.get() }); // the server's default cells: tanh RNN, LSTM, GRU, minGRU
      location.href = `/compare?runs=${group.runs.map((r) => r.id).join(",")}`;
    }
  } catch (err) {
    form.showError(err); // a 422 in the form's words, its fields marked
  }
}

async function startPreset(preset) {
  showError($("form-error"), null);
  try {
    const named = (config) => ({ ...config, name: config.name ?? preset.name });
    let ids;
    if (preset.compare) {
      const group = await post("/api/compare", { config: named(preset.config), cells: preset.compare });
      ids = group.runs.map((r) => r.id);
    } else {
      ids = [];
      for (const config of [preset.config, ...preset.variants]) ids.push((await post("/api/runs", named(config))).id);
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
// the form in the address bar; a custom text goes in as text=@<id> of the stored text
async function formUrl(config, preset = null) {
  const link = await linkState(config);
  const url = new URL(location.href);
  url.searchParams.delete("preset");
  url.searchParams.set("config", JSON.stringify(link.config));
  if (link.text) url.searchParams.set("text", link.text);
  else url.searchParams.delete("text");
  if (preset) url.searchParams.set("preset", preset);
  return url;
}

let urlVersion = 0; // a slower, older update (storing a long text) must not overwrite a newer one
function syncUrl(config, preset = null) {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(async () => {
    const version = ++urlVersion;
    try {
      const url = await formUrl(config, preset);
      if (version === urlVersion) history.replaceState(null, "", url);
    } catch (err) {
      showError($("form-error"), `the link cannot hold this form (${err.message})`);
    }
  }, 150);
}

async function main() {
  $("import-file").addEventListener("change", (ev) => { // needs no catalog: bound at once
    const file = ev.target.files[0];
    ev.target.value = ""; // the same file again is a new choice
    if (file) importFile(file);
  });
  const cat = await catalog();
  startRunList(cat);
  startSweepList(cat);
  const formNode = $("run-form");
  const form = buildForm(formNode, cat, (cfg) => syncUrl(cfg));
  renderPresets(cat, form);
  const params = new URLSearchParams(location.search);
  const preset = cat.presets.find((p) => p.name === params.get("preset"));
  const initial = preset ? preset.config : cat.presets.find((p) => p.name === "adding").config;
  form.set(initial);
  if (params.get("config")) {
    try {
      form.set(await linkedConfig(params));
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
    try {
      const url = await formUrl(form.get());
      history.replaceState(null, "", url);
      await navigator.clipboard.writeText(url.toString());
      $("copy-link").textContent = "Link copied";
    } catch {
      $("copy-link").textContent = "Link in the address bar";
    }
    setTimeout(() => ($("copy-link").textContent = "Copy link"), 2000);
  });
}

main();

// The dashboard's run list: one page of GET /api/runs at a time (newest first, PAGE runs) with
// the count, filters (a search over name, id and tags; status, cell, task, tag), each run's name
// and tags (editable in place, runedit.js), status, step, loss sparkline, stop and delete, and a
// selection to compare or to delete at once (POST /api/runs/delete: all or none). The choices of
// the filters come from the catalog. The page refreshes every 2 s while one of its runs is
// active (10 s otherwise), but not while a name is being edited.
// What this is not: the new-run form, the presets or the import (dashboard.js).

import { api, ApiError, describeModule, describeRun, el, fmt, isAttached, post, setStatus, statusLabel } from "./api.js";
import { runEditor } from "./runedit.js";

const PAGE = 25;
const FILTERS = ["q", "status", "cell", "task", "tag"];
const state = {
  items: [], total: 0, offset: 0, filters: {}, selected: new Set(), sparks: {},
  timer: null, seq: 0, finished: new Set(), editing: false,
};
const $ = (id) => document.getElementById(id);

function showError(err) {
  const node = $("runs-error");
  node.hidden = !err;
  node.textContent = err ? (err instanceof ApiError ? `${err.status}: ${err.message}` : String(err)) : "";
}

// -- one row ----------------------------------------------------------------------------------

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

// the run: its name (or id) as the link, then its id, group, tags and the edit button
function runCell(run) {
  const named = Boolean(run.name);
  const group = run.group ? el("span", { class: "tag", title: `${isAttached(run) ? "the runs of one watch" : "comparison group"} ${run.group}` }, "g") : null;
  return el(
    "td",
    { class: "run" },
    el("span", { class: "line" }, el("a", { href: `/runs/${run.id}`, class: named ? "run-name" : "run-id" }, run.name || run.id), group),
    el("span", { class: "line sub" }, named ? el("code", { class: "run-id", text: run.id }) : null, runEditor(run, {
      showName: false,
      onPickTag: (tag) => setFilter("tag", tag),
      onEditing: (on) => (state.editing = on),
      onSaved: () => refresh(),
    })),
  );
}

// an attached run: its badge, module and shape, script; a built-in run: its task
function whatCell(run) {
  if (!isAttached(run)) return el("td", { text: describeRun(run).split(" · ")[1], class: "task", title: describeRun(run) });
  const c = run.config;
  const title = `attached: ${c.name ?? "unnamed"} · ${describeModule(c)}${c.script ? ` · ${c.script}` : ""}`;
  return el(
    "td",
    { class: "task attached", title },
    el("span", { class: "line" }, el("span", { class: "badge", text: "attached" })),
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

function row(run) {
  const status = el("span");
  setStatus(status, run.status, statusLabel(run));
  const pick = el("input", { type: "checkbox", class: "pick", "aria-label": `select ${run.id}`, checked: state.selected.has(run.id) });
  pick.addEventListener("change", () => select([run.id], pick.checked));
  const spark = state.sparks[run.id];
  const last = spark && spark.loss.length ? fmt(spark.loss[spark.loss.length - 1], 2) : "";
  const remove = () => confirm(`Delete run ${run.name || run.id}?`) && act(api(`/api/runs/${run.id}`, { method: "DELETE" }));
  return el(
    "tr",
    { "data-run": run.id, "data-kind": run.kind ?? "built-in" },
    el("td", {}, pick),
    runCell(run),
    el("td", {}, status),
    el("td", { text: run.config.cell }),
    whatCell(run),
    stepCell(run),
    el("td", {}, el("span", { class: "spark-cell" }, sparkline(spark), el("span", { class: "num", text: last }))),
    el("td", { class: "row-actions" }, stopControl(run), el("button", { type: "button", title: "delete this run and its data", "aria-label": `delete ${run.id}`, onclick: remove }, "✕")),
  );
}

// -- the page ---------------------------------------------------------------------------------

const filtered = () => FILTERS.some((f) => state.filters[f]);
const plural = (n) => `${n} run${n === 1 ? "" : "s"}`;

function render() {
  $("runs").querySelector("tbody").replaceChildren(...state.items.map(row));
  const { total, offset, items } = state;
  $("runs-count").textContent = filtered() ? `${plural(total)} match` : plural(total);
  $("runs-empty").hidden = total > 0;
  $("runs-empty").textContent = filtered() ? "No run matches these filters." : "No runs yet: start one with the form or a preset.";
  $("runs-pager").hidden = total <= PAGE;
  $("page-info").textContent = items.length ? `${offset + 1}–${offset + items.length} of ${total}` : "";
  $("page-newer").disabled = offset === 0;
  $("page-older").disabled = offset + PAGE >= total;
  renderSelection();
}

function renderSelection() {
  const n = state.selected.size;
  $("compare-selected").disabled = n < 1;
  $("delete-selected").disabled = n < 1;
  $("delete-selected").textContent = n ? `Delete selected (${n})` : "Delete selected";
  const picks = state.items.map((r) => state.selected.has(r.id));
  const all = $("select-page");
  all.checked = picks.length > 0 && picks.every(Boolean);
  all.indeterminate = !all.checked && picks.some(Boolean);
}

function select(ids, on) {
  for (const id of ids) on ? state.selected.add(id) : state.selected.delete(id);
  for (const box of $("runs").querySelectorAll("tbody input.pick")) box.checked = state.selected.has(box.closest("tr").dataset.run);
  renderSelection();
}

function listUrl() {
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(state.offset) });
  for (const f of FILTERS) if (state.filters[f]) params.set(f, state.filters[f]);
  return `/api/runs?${params}`;
}

async function refresh() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  try {
    if (!state.editing) {
      const page = await api(listUrl());
      if (seq !== state.seq) return; // a newer refresh (a filter changed) is under way
      if (page.items.length === 0 && page.total > 0 && state.offset > 0) { // the page emptied (deletes)
        state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
        return refresh();
      }
      Object.assign(state, { items: page.items, total: page.total });
      const ids = state.items.filter((r) => !state.finished.has(r.status) || !state.sparks[r.id]).map((r) => r.id);
      if (ids.length) Object.assign(state.sparks, await api(`/api/sparklines?ids=${ids.join(",")}&points=60`));
      if (seq !== state.seq || state.editing) return;
      showError(null);
      render();
    }
  } catch (err) {
    if (seq === state.seq) showError(err);
  }
  if (seq !== state.seq) return;
  const active = state.items.some((r) => !state.finished.has(r.status));
  state.timer = setTimeout(refresh, active ? 2000 : 10000);
}

async function act(promise) {
  try {
    await promise;
  } catch (err) {
    showError(err);
  }
  refresh();
}

function setFilter(name, value) {
  state.filters[name] = value;
  $(`runs-${name}`).value = value;
  state.offset = 0;
  state.selected.clear();
  refresh();
}

async function deleteSelected() {
  const ids = [...state.selected];
  if (!ids.length || !confirm(`Delete ${plural(ids.length)} and all their data?`)) return;
  try {
    await post("/api/runs/delete", { ids });
    state.selected.clear();
  } catch (err) {
    showError(err);
  }
  refresh();
}

const option = (value, text) => el("option", { value }, text);

/** Fill the filters from the catalog, bind the controls and start refreshing. */
export function startRunList(cat) {
  state.finished = new Set(cat.statuses.finished);
  $("runs-status").append(...cat.statuses.all.map((s) => option(s, s)));
  $("runs-cell").append(...cat.cells.map((c) => option(c.name, c.name)));
  $("runs-task").append(...cat.tasks.map((t) => option(t.name, t.name)));
  let typing = null;
  for (const f of FILTERS) {
    const input = $(`runs-${f}`);
    const apply = () => state.filters[f] !== input.value.trim() && setFilter(f, input.value.trim());
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => {
      clearTimeout(typing);
      typing = setTimeout(apply, input.tagName === "SELECT" ? 0 : 250);
    });
  }
  $("runs-clear").addEventListener("click", () => {
    for (const f of FILTERS) $(`runs-${f}`).value = "";
    state.filters = {};
    setFilter("q", "");
  });
  $("page-newer").addEventListener("click", () => ((state.offset = Math.max(0, state.offset - PAGE)), refresh()));
  $("page-older").addEventListener("click", () => ((state.offset += PAGE), refresh()));
  $("select-page").addEventListener("change", (ev) => select(state.items.map((r) => r.id), ev.target.checked));
  $("delete-selected").addEventListener("click", deleteSelected);
  $("compare-selected").addEventListener("click", () => {
    location.href = `/compare?runs=${[...state.selected].join(",")}`;
  });
  refresh();
  window.__gatescopeRuns = state;
}

// The compare page (/compare?runs=a,b,c): runs side by side (compareview.js: gradient flow, loss,
// hidden state and the latest step's ||dl_T/dh_t|| on SHARED colour scales and axes), each
// column drawn from its live Feed. ?kind= and ?floor= are kept in the URL; "report" downloads
// the columns as one file (GET /api/report?runs=). /compare?runs=a,b&diff=1 shows the diff of
// two runs instead (diff.js); /compare alone lists the recent comparison groups.

import { api, catalog, describeRun, el, floorOptions, isAttached, runLabel } from "./api.js";
import { mountCompareView } from "./compareview.js";
import { Feed } from "./feed.js";
import { DiffView } from "./diff.js";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const ids = (query.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean);
const diff = query.get("diff") === "1"; // the diff of two runs (diff.js) instead of the columns
const state = {
  kind: query.get("kind") === "total" ? "total" : "last",
  floor: query.get("floor") === null ? null : Number(query.get("floor")), // null: the catalog's
  defaultFloor: null,
  columns: [], // compareview.js's columns, each with its Feed as `feed`
  view: null, // compareview.js's view
  diff: null, // diff.js's view, when ?diff=1
};

// the columns, each from its Feed; a built-in run's task (its baseline) is fetched once
function showColumns() {
  const feeds = ids.map((runId, i) => new Feed(runId, (what) => onFeed(i, what), { kind: state.kind }));
  state.view = mountCompareView($("compare"), feeds, { kind: state.kind, floor: state.floor, controls: false, link: (run) => `/runs/${run.id}` });
  state.columns = state.view.columns;
}

function onFeed(i, what) {
  const col = state.columns[i]; // a Feed calls back only after the view is mounted
  if (what === "run" && !col.task && !isAttached(col.feed.run)) { // an attached run has no task
    api(`/api/runs/${col.runId}/task`).then((task) => {
      col.task = task;
      state.view.schedule();
    });
  }
  if (what === "refused") {
    const { code, reason } = col.feed.refused;
    col.error = reason;
    col.head.replaceChildren(el("p", { class: "error", role: "alert", text: `${col.runId}: the server refused to stream this run (${code}): ${reason}` }));
    return;
  }
  state.view.schedule();
}

function syncUrl() {
  const url = new URL(location.href);
  if (state.kind === "last") url.searchParams.delete("kind");
  else url.searchParams.set("kind", state.kind);
  if (state.floor === state.defaultFloor) url.searchParams.delete("floor");
  else url.searchParams.set("floor", state.floor);
  history.replaceState(null, "", url);
}

async function listGroups() {
  $("compare-empty").hidden = false;
  const runs = (await api("/api/runs?limit=500")).items;
  const groups = new Map();
  for (const r of runs) if (r.group) (groups.get(r.group) || groups.set(r.group, []).get(r.group)).push(r);
  const items = [...groups.values()].slice(0, 20).map((rs) => {
    const idsOf = rs.map((r) => r.id).reverse().join(",");
    return el("li", {}, el("a", { href: `/compare?runs=${idsOf}` }, rs.map(runLabel).reverse().join(" | ")), ` ${describeRun(rs[0]).split(" · ")[1]}`);
  });
  $("groups").replaceChildren(...(items.length ? items : [el("li", { text: "no comparison groups yet" })]));
}

// ?diff=1: two runs against each other (diff.js); any other count of runs gets a sentence
function showDiff() {
  document.querySelector(".compare-head h1").textContent = "Diff of two runs";
  document.querySelector(".compare-head .desc").textContent = "Run b against run a, aligned by training step: gradient flow, hidden state and loss.";
  if (ids.length !== 2) {
    $("compare").append(el("p", { class: "error", role: "alert", text: `A diff is of exactly two runs (?runs=a,b&diff=1); this address names ${ids.length}.` }));
    return;
  }
  state.diff = new DiffView(ids, { kind: state.kind, floor: state.floor });
  window.__gatescopeCompare = state;
}

async function main() {
  const cat = await catalog();
  state.defaultFloor = cat.display.floor;
  state.floor ??= cat.display.floor;
  for (const radio of document.querySelectorAll('input[name="kind"]')) {
    radio.checked = radio.value === state.kind;
    radio.addEventListener("change", () => {
      state.kind = radio.value;
      if (state.view) state.view.setKind(state.kind);
      if (state.diff) state.diff.setKind(state.kind);
      syncUrl();
    });
  }
  floorOptions($("floor"), state.defaultFloor, state.floor);
  $("floor").addEventListener("change", (ev) => {
    state.floor = Number(ev.target.value);
    syncUrl();
    if (state.diff) state.diff.setFloor(state.floor);
    if (state.view) state.view.setFloor(state.floor);
  });
  if (!ids.length) return listGroups();
  if (diff) return showDiff();
  const most = cat.limits.compare_runs;
  if (ids.length > most) {
    $("compare").before(el("p", { class: "error", role: "alert", text: `This address names ${ids.length} runs; a comparison shows at most ${most}: the first ${most} are shown.` }));
    ids.splice(most);
  }
  if (ids.length === 2) { // two runs: their diff is one click away
    document.querySelector(".compare-head .opts").append(el("a", { class: "button", id: "to-diff", href: `/compare?runs=${ids.join(",")}&diff=1` }, "diff these two"));
  }
  $("report").href = `/api/report?runs=${ids.join(",")}`;
  $("report").hidden = false;
  showColumns();
  window.__gatescopeCompare = state;
}

main();

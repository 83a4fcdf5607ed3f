// Talking to the Gatescope server: JSON and frame bytes over fetch, the run websocket's URL, the
// catalog (the server's constants: statuses, defaults, display sizes, lessons), small formatters.
// A server started with GATESCOPE_TOKEN needs the token: open any page once with ?token=...
// and it is kept for the tab (sessionStorage) and sent as a Bearer header / ?token= on sockets.

const TOKEN_KEY = "gatescope.token";

function token() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
  return fromUrl || sessionStorage.getItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : describe(detail));
    this.status = status;
    this.detail = detail;
  }
}

// FastAPI's 422 body lists {loc, msg}: name each field and what is wrong with it
function describe(detail) {
  if (Array.isArray(detail)) {
    return detail
      .map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`)
      .join("; ");
  }
  return JSON.stringify(detail);
}

// a Blob (a file the user picked) is sent as its bytes, anything else as JSON
async function request(path, { method = "GET", body, signal, accept }) {
  const headers = { Accept: accept };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const raw = body instanceof Blob;
  if (body !== undefined) headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
  const response = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined || raw ? body : JSON.stringify(body),
  });
  if (response.status === 401) throw new ApiError(401, "this server needs its token: log in at /login");
  if (!response.ok) {
    const text = await response.text();
    let detail = text || response.statusText;
    try {
      detail = JSON.parse(text).detail ?? detail;
    } catch {
      // not JSON: the text says it
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

/** JSON in, JSON out (null for 204). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const response = await request(path, { method, body, signal, accept: "application/json" });
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** A file's bytes in (application/octet-stream), JSON out: POST /api/import. */
export const upload = (path, file) => api(path, { method: "POST", body: file });

/** Frame bytes: an ArrayBuffer for decodeFrame() (GET .../probes/{step}, POST .../inspect). */
export async function bytes(path, { method = "GET", body, signal } = {}) {
  const response = await request(path, { method, body, signal, accept: "application/octet-stream" });
  return response.arrayBuffer();
}

export const post = (path, body) => api(path, { method: "POST", body: body ?? {} });

export function wsUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  if (t) url.searchParams.set("token", t);
  return url.toString();
}

let catalogPromise = null;
/** GET /api/catalog, once per page: every constant the pages share with the server. */
export function catalog() {
  catalogPromise ??= api("/api/catalog");
  return catalogPromise;
}

/** The floor choices (log10 of the smallest norm drawn): the catalog's floor and a few higher. */
export function floorOptions(select, floor, value) {
  const floors = [...new Set([floor, -20, -12, -6])].filter((f) => f >= floor).sort((a, b) => a - b);
  if (!floors.includes(value)) floors.push(value);
  select.replaceChildren(...floors.map((f) => new Option(`1e${f}`, String(f), false, f === value)));
}

export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toString();
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const isAttached = (run) => run.kind === "attached";

// an attached module's class as torch names it: LSTM, GRU, RNN (tanh), RNN (relu)
const torchCell = (cell) => (cell.startsWith("rnn_") ? `RNN (${cell.slice(4)})` : cell.toUpperCase());

/** An attached run's module: "encoder.rnn · LSTM 2×256 bidirectional" ("bi" if `short`; the
 * model itself: "model"). */
export function describeModule(c, short = false) {
  const bi = c.bidirectional ? (short ? " bi" : " bidirectional") : "";
  return `${c.module || "model"} · ${torchCell(c.cell)} ${c.num_layers}×${c.hidden_size}${bi}`;
}

/** "<cell> H=.. L=.. bi · <task> (params)" for a built-in run, "<module> · <shape>" for an attached one. */
export function describeRun(run) {
  const c = run.config;
  if (isAttached(run)) return describeModule(c);
  const task = c.task;
  const extras = Object.entries(task)
    .filter(([k, v]) => k !== "name" && k !== "text" && v !== null && v !== "")
    .map(([k, v]) => `${k === "seq_len" ? "T" : k}=${v}`); // T, as the pages write a sequence length
  const own = c.slstm ? `${c.slstm.forget === "sigmoid" ? " σ-forget" : ""}${c.slstm.stabilizer ? "" : " no stabiliser"}` : "";
  return `${c.cell}${own} H=${c.hidden_size}${c.num_layers > 1 ? ` L=${c.num_layers}` : ""}${
    c.bidirectional ? " bi" : ""
  } · ${task.name}${extras.length ? ` (${extras.join(", ")})` : ""}`;
}

/** What to call a run everywhere: its name, else what it is (describeRun). The runs of one watch
 * share its name, so an attached run's name comes with its module. */
export function runLabel(run) {
  if (!run.name) return describeRun(run);
  return isAttached(run) ? `${run.name} · ${run.config.module || "model"}` : run.name;
}

/** A run's status as the pages say it: "queued (2 ahead)" when the server knows its place. */
export const statusLabel = (run) =>
  run.status === "queued" && Number.isInteger(run.queue_position) ? `queued (${run.queue_position} ahead)` : run.status;

export function setStatus(node, status, label = status) {
  node.textContent = label;
  node.className = `status status-${status}`;
}

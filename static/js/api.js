// Talking to the Gatescope server: JSON over fetch, the run websocket's URL, small formatters.
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

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (response.status === 401) throw new ApiError(401, "this server needs its token: log in at /login");
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
  return data;
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
export function catalog() {
  catalogPromise ??= api("/api/catalog");
  return catalogPromise;
}

export const FINISHED = new Set(["completed", "stopped", "diverged", "failed", "interrupted"]);

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

export function describeRun(run) {
  const c = run.config;
  const task = c.task;
  const extras = Object.entries(task)
    .filter(([k, v]) => k !== "name" && k !== "text" && v !== null && v !== "")
    .map(([k, v]) => `${k}=${v}`);
  return `${c.cell} H=${c.hidden_size}${c.num_layers > 1 ? ` L=${c.num_layers}` : ""}${
    c.bidirectional ? " bi" : ""
  } · ${task.name}${extras.length ? ` (${extras.join(", ")})` : ""}`;
}

export function setStatus(node, status) {
  node.textContent = status;
  node.className = `status status-${status}`;
}

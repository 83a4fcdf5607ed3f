// One run, live: the websocket and what it accumulates. `new Feed(runId, onChange, {kind, layer})`
// keeps `run`, `metrics`, `probeSteps`, the run's applied `interventions` (the snapshot's, then
// each "intervention" message; in the order applied), the newest `frame` (decoded only when
// read) and the gradient-flow history `gradflow`, which is built on the server only: GET .../gradflow once,
// then `?since=<last row's step>` appended as newer frames arrive (debounced, one request in
// flight), replaced only when the view changes or the server says it thinned the rows.
// onChange(what): "run" | "metrics" | "interventions" | "frame" | "gradflow" | "end" | "refused". A socket the
// server refuses (4401 token, 4403 origin, 4404 no such run) is final: `refused` = {code, reason}
// and the feed stops; any other close (a server restart) reconnects with backoff.
// What this is not: a renderer; data flows one way, message -> feed state -> the page draws.

import { api, wsUrl } from "./api.js";
import { decodeFrame, frameHeader } from "./frame.js";

const REFUSED = {
  4401: "this server needs its token: log in at /login",
  4403: "the server refused this page's origin",
  4404: "there is no such run",
};
const FLOW_ROWS = 2000; // gradient-flow rows a page asks for (the server thins evenly to these)
const FLOW_DEBOUNCE_MS = 250;
const FLOW_RETRY_MS = 1000;
const FLOW_RETRIES = 5;
const RETRY_MS = [1000, 10000]; // first and longest wait before reconnecting

export class Metrics {
  constructor() {
    this.reset();
  }

  reset() {
    this.step = [];
    this.loss = [];
    this.metric = [];
    this.gradNorm = [];
    this.gradNormClipped = [];
    this.clipped = [];
    this.updateRatio = [];
    this.lr = [];
    this.params = {};
    this.version = 0;
  }

  add(rows) {
    for (const m of rows) {
      if (this.step.length && m.step <= this.step[this.step.length - 1]) continue;
      this.step.push(m.step);
      this.loss.push(m.loss);
      this.metric.push(m.metric);
      this.gradNorm.push(m.grad_norm);
      this.gradNormClipped.push(m.grad_norm_clipped);
      this.clipped.push(m.clipped);
      this.updateRatio.push(m.update_ratio ?? null);
      this.lr.push(m.lr ?? null);
      for (const [name, v] of Object.entries(m.param_grad_norms || {})) {
        (this.params[name] ??= { step: [], value: [] }).step.push(m.step);
        this.params[name].value.push(v);
      }
    }
    this.version += 1;
  }

  get length() {
    return this.step.length;
  }
}

function emptyFlow(kind, layer, reset = 0) {
  return { kind, layer, T: 0, width: 1, t: [], steps: [], rows: [], saturation: {}, lastStep: null, thinned: false, version: 0, reset };
}

// a step into a sorted list of distinct steps (almost always at the end)
function insertStep(steps, step) {
  let i = steps.length;
  while (i > 0 && steps[i - 1] > step) i -= 1;
  if (steps[i - 1] !== step) steps.splice(i, 0, step);
}

export class Feed {
  constructor(runId, onChange, { kind = "last", layer = 0, maxRows = FLOW_ROWS } = {}) {
    this.runId = runId;
    this.onChange = onChange;
    this.maxRows = maxRows;
    this.run = null;
    this.metrics = new Metrics();
    this.probeSteps = [];
    this.interventions = []; // [{id, step, changes, applied_at}], as GET .../interventions lists them
    this.gradflow = emptyFlow(kind, layer);
    this.ended = false;
    this.refused = null;
    this.closed = false;
    this.latest = null; // {step, buffer, frame}: the newest frame's bytes, decoded on first read
    this.flow = { timer: null, inFlight: false, again: false, full: true, retries: 0 };
    this.retry = RETRY_MS[0];
    this.connect();
  }

  /** The newest frame, decoded the first time it is read (frames never drawn are never decoded). */
  get frame() {
    const latest = this.latest;
    if (!latest) return null;
    latest.frame ??= decodeFrame(latest.buffer);
    return latest.frame;
  }

  connect() {
    const ws = new WebSocket(wsUrl(`/ws/runs/${encodeURIComponent(this.runId)}`));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (ev) => (typeof ev.data === "string" ? this.onText(JSON.parse(ev.data)) : this.onFrame(ev.data));
    ws.onclose = (ev) => this.onClose(ev);
  }

  onClose(ev) {
    if (this.closed || this.ended) return;
    if (REFUSED[ev.code]) {
      this.refused = { code: ev.code, reason: ev.reason || REFUSED[ev.code] };
      this.close();
      this.onChange("refused");
      return;
    }
    setTimeout(() => !this.closed && this.connect(), this.retry); // the server restarted
    this.retry = Math.min(this.retry * 2, RETRY_MS[1]);
  }

  close() {
    this.closed = true;
    clearTimeout(this.flow.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }

  onText(msg) {
    if (msg.type === "snapshot") {
      this.retry = RETRY_MS[0];
      this.run = msg.run;
      this.metrics.reset();
      this.metrics.add(msg.metrics);
      for (const step of msg.probe_steps) insertStep(this.probeSteps, step);
      this.interventions = msg.interventions;
      this.onChange("run");
      this.onChange("metrics");
      this.onChange("interventions");
      this.fetchFlow();
    } else if (msg.type === "step") {
      this.metrics.add(msg.steps);
      this.onChange("metrics");
    } else if (msg.type === "intervention") {
      const item = { ...msg };
      delete item.type;
      this.interventions = [...this.interventions, item]; // a new array: figures key on it
      this.onChange("interventions");
    } else if (msg.type === "status") {
      this.run = msg.run;
      this.onChange("run");
    } else if (msg.type === "end") {
      this.run = msg.run;
      this.ended = true;
      this.onChange("end");
      this.completeSteps();
      this.fetchFlow(); // the rows the coalescing hub never sent as frames
    }
  }

  onFrame(buffer) {
    const step = frameHeader(buffer).step;
    insertStep(this.probeSteps, step);
    if (this.latest && step < this.latest.step) return;
    this.latest = { step, buffer, frame: null };
    this.onChange("frame");
    if (this.gradflow.steps.at(-1) !== step) this.fetchFlow();
  }

  // every stored step, once the run has ended (live, the hub may have skipped some frames)
  async completeSteps() {
    try {
      for (const step of await api(this.path("/probes"))) insertStep(this.probeSteps, step);
      this.onChange("run");
    } catch (err) {
      console.warn("probe steps", err.message);
    }
  }

  path(suffix) {
    return `/api/runs/${encodeURIComponent(this.runId)}${suffix}`;
  }

  setView(kind, layer) {
    const g = this.gradflow;
    if (kind === g.kind && layer === g.layer) return;
    this.gradflow = emptyFlow(kind, layer, g.reset + 1);
    this.flow.full = true;
    this.onChange("gradflow");
    this.fetchFlow(0);
  }

  // debounced: at most one request in flight; a wish during one is served after it
  fetchFlow(delay = FLOW_DEBOUNCE_MS) {
    const f = this.flow;
    if (this.closed) return;
    if (f.inFlight) {
      f.again = true;
      return;
    }
    if (!f.timer) f.timer = setTimeout(() => this.loadFlow(), delay);
  }

  async loadFlow() {
    const f = this.flow;
    f.timer = null;
    f.inFlight = true;
    const { kind, layer } = this.gradflow;
    const since = f.full ? null : this.gradflow.steps.at(-1) ?? null;
    const query = new URLSearchParams({ kind, layer });
    query.set("max_rows", this.maxRows);
    if (since !== null) query.set("since", since);
    try {
      const answer = await api(this.path(`/gradflow?${query}`));
      if (kind === this.gradflow.kind && layer === this.gradflow.layer) this.adoptFlow(answer, since);
    } catch (err) {
      console.warn("gradflow", err.message); // the next frame asks again
    } finally {
      f.inFlight = false;
      if (f.again) {
        f.again = false;
        this.fetchFlow();
      }
    }
  }

  // the server's answer -> this.gradflow: a full answer replaces the rows, a `since` answer is
  // appended; the whole history is fetched again (thinned evenly by the server) when the server
  // thinned the new rows, or when the page holds a quarter more rows than a full answer would
  adoptFlow(answer, since) {
    const old = this.gradflow;
    const appended = old.steps.length + answer.steps.length;
    const lost = !old.thinned && appended !== answer.total_rows;
    const tooMany = appended > 1.25 * this.maxRows;
    if (since !== null && (lost || tooMany)) {
      this.flow.full = true;
      this.flow.again = true;
      return;
    }
    if (since !== null && !answer.steps.length) {
      // the newest frame is not stored yet (frames are sent first): ask again a little later
      if (this.latest && this.latest.step > since && this.flow.retries++ < FLOW_RETRIES) this.fetchFlow(FLOW_RETRY_MS);
      return;
    }
    this.flow.retries = 0;
    const g = since === null ? { ...emptyFlow(old.kind, old.layer, old.reset + 1), version: old.version } : old;
    Object.assign(g, { T: answer.T, width: answer.width, t: answer.t, lastStep: answer.last_step });
    g.thinned = since === null ? answer.steps.length < answer.total_rows : old.thinned;
    g.steps.push(...answer.steps);
    g.rows.push(...answer.z.map((r) => Float32Array.from(r)));
    for (const [gate, sides] of Object.entries(answer.saturation)) {
      const entry = (g.saturation[gate] ??= { low: [], high: [] });
      entry.low.push(...sides.low);
      entry.high.push(...sides.high);
    }
    for (const step of answer.steps) insertStep(this.probeSteps, step);
    g.version += 1;
    this.gradflow = g;
    this.flow.full = false;
    this.onChange("gradflow");
    if (this.latest && this.latest.step > (g.steps.at(-1) ?? -1)) this.fetchFlow(); // frames came meanwhile
  }
}

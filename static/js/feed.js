// One run, live: the websocket feed and what it accumulates. `new Feed(runId, onChange)`:
// snapshot -> metrics, probe steps, the latest frame; then step batches, newer probe frames,
// status changes and the end. It also keeps the gradient-flow history (one row per probe frame,
// fetched from /api/runs/{id}/gradflow, then one row appended per live frame; refetched when
// the hub coalesced frames away). onChange(what) is called with "run" | "metrics" | "frame" |
// "gradflow" | "end" | "error". Data flows one way: message -> feed state -> the page renders.

import { api, FINISHED, wsUrl } from "./api.js";
import { decodeProbe, fromPublic, isLarge, poolMax, row } from "./probe.js";

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

export class Feed {
  constructor(runId, onChange, { kind = "last", layer = 0, maxRows = 400, maxCols = 500 } = {}) {
    this.runId = runId;
    this.onChange = onChange;
    this.kind = kind;
    this.layer = layer;
    this.maxRows = maxRows;
    this.maxCols = maxCols;
    this.run = null;
    this.metrics = new Metrics();
    this.probeSteps = [];
    this.frame = null; // the latest frame
    this.gradflow = emptyFlow();
    this.ended = false;
    this.closed = false;
    this.retry = 1000;
    this.refetchTimer = null;
    this.fetching = null;
    this.connect();
  }

  connect() {
    const ws = new WebSocket(wsUrl(`/ws/runs/${encodeURIComponent(this.runId)}`));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") this.text(JSON.parse(ev.data));
      else this.probe(decodeProbe(ev.data));
    };
    ws.onclose = (ev) => {
      if (this.closed || this.ended) return;
      if (ev.code === 4404 || ev.code === 4401) {
        this.error = ev.reason || `closed (${ev.code})`;
        this.onChange("error");
        return;
      }
      setTimeout(() => !this.closed && this.connect(), this.retry); // the server restarted
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.refetchTimer);
    if (this.ws) this.ws.close(1000);
  }

  text(msg) {
    if (msg.type === "snapshot") {
      this.retry = 1000;
      this.run = msg.run;
      this.metrics.reset();
      this.metrics.add(msg.metrics);
      this.probeSteps = msg.probe_steps.slice();
      this.onChange("run");
      this.onChange("metrics");
      this.fetchGradflow();
    } else if (msg.type === "step") {
      this.metrics.add(msg.steps);
      this.onChange("metrics");
    } else if (msg.type === "status" || msg.type === "end") {
      this.run = msg.run;
      if (msg.type === "end" || FINISHED.has(msg.run.status)) {
        this.ended = true;
        this.fetchGradflow(); // every frame, now that they are all stored
      }
      this.onChange(msg.type === "end" ? "end" : "run");
    }
  }

  async probe(frame) {
    if (isLarge(frame)) {
      try {
        frame = fromPublic(await api(this.path(`/display/${frame.step}`)));
      } catch (err) {
        console.warn("display frame", err.message); // the next frame will do
        return;
      }
    }
    if (!this.probeSteps.includes(frame.step)) {
      this.probeSteps.push(frame.step);
      this.probeSteps.sort((a, b) => a - b);
    }
    if (!this.frame || frame.step >= this.frame.step) this.frame = frame;
    this.appendRow(frame);
    this.onChange("frame");
  }

  path(suffix) {
    return `/api/runs/${encodeURIComponent(this.runId)}${suffix}`;
  }

  appendRow(frame) {
    const g = this.gradflow;
    const last = g.steps.length ? g.steps[g.steps.length - 1] : -1;
    if (frame.step <= last || this.fetching) {
      if (this.fetching) this.pendingRefetch = true;
      return;
    }
    const values = row(frame, this.kind === "last" ? "grad_h_last" : "grad_h", this.layer);
    if (!values || frame.fullT !== frame.T) return this.scheduleRefetch(0); // pooled: let the server do it
    const width = Math.max(1, Math.ceil(values.length / this.maxCols));
    if (g.steps.length && g.width !== width) return this.scheduleRefetch(0);
    const every = this.run ? this.run.config.probe_every : 0;
    if (last >= 0 && every > 0 && frame.step - last > every) this.scheduleRefetch(1000); // frames skipped
    g.width = width;
    g.T = values.length;
    g.t = Array.from({ length: Math.ceil(values.length / width) }, (_, i) => i * width);
    g.steps.push(frame.step);
    g.z.push(poolMax(values, width));
    for (const [gate, sides] of Object.entries(frame.saturation || {})) {
      const entry = (g.saturation[gate] ??= { low: [], high: [] });
      const l = Math.min(this.layer, sides.low.length - 1);
      entry.low.push(sides.low[l]);
      entry.high.push(sides.high[l]);
    }
    g.version += 1;
    if (g.steps.length > 1.25 * this.maxRows) this.scheduleRefetch(0); // let the server downsample
    this.onChange("gradflow");
  }

  scheduleRefetch(delay) {
    if (this.refetchTimer) return;
    this.refetchTimer = setTimeout(() => {
      this.refetchTimer = null;
      this.fetchGradflow();
    }, delay);
  }

  setView(kind, layer) {
    if (kind === this.kind && layer === this.layer) return;
    this.kind = kind;
    this.layer = layer;
    this.gradflow = emptyFlow();
    this.onChange("gradflow");
    this.fetchGradflow();
  }

  async fetchGradflow() {
    if (this.fetching) {
      this.pendingRefetch = true;
      return;
    }
    const query = `?kind=${this.kind}&layer=${this.layer}&max_rows=${this.maxRows}&max_cols=${this.maxCols}`;
    // the step list too: the hub sends only the newest frame, so live frames can skip steps
    this.fetching = Promise.all([api(this.path(`/gradflow${query}`)), api(this.path("/probes"))]);
    try {
      const [g, steps] = await this.fetching;
      this.gradflow = { ...g, version: this.gradflow.version + 1 };
      this.probeSteps = [...new Set([...steps, ...this.probeSteps])].sort((a, b) => a - b);
      this.onChange("gradflow");
    } catch (err) {
      console.warn("gradflow", err.message);
    } finally {
      this.fetching = null;
      if (this.pendingRefetch) {
        this.pendingRefetch = false;
        this.scheduleRefetch(500);
      }
    }
  }
}

function emptyFlow() {
  return { steps: [], t: [], z: [], width: 1, T: 0, saturation: {}, version: 0 };
}

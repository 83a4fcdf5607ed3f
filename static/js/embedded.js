// The embedded data source: what a page reads when there is no server (the one-file report; the
// notebook widget next, whose data come kernel -> widget). `new EmbeddedSource(data)` takes the
// plain object the report embeds (gatescope/report.py: run, task, catalog, metrics rows,
// gradient flows by "kind|layer" as GET .../gradflow answers them, frames as base64 of the one
// frame format, `report`: what was kept) and offers what the API side (feed.js + scrubber.js)
// offers the views: `run`, `task`, `catalog`, `metrics` (a Metrics), `probeSteps` (the steps with
// a frame), `gradflow(kind, layer)` (the Feed's flow shape) and `frame(step)` (a Promise of the
// decoded frame of the kept step nearest `step`, decoded once). `add(part)` appends more of the
// same (a live widget's new metrics rows, frames and flows).
// What this is not: a renderer or a decoder (frame.js decodes); nothing here fetches.

import { decodeFrame } from "./frame.js";
import { Metrics } from "./feed.js";

const fromBase64 = (text) => {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
};

/** A GET .../gradflow answer as the Feed keeps it (rows as Float32Array). */
export function flowOf(answer, reset = 0) {
  return {
    kind: answer.kind, layer: answer.layer, T: answer.T, width: answer.width, t: answer.t,
    steps: [...answer.steps], rows: answer.z.map((r) => Float32Array.from(r)), saturation: answer.saturation,
    lastStep: answer.last_step, thinned: answer.steps.length < answer.total_rows, version: 1, reset,
  };
}

export class EmbeddedSource {
  constructor(data, { kind = "last", layer = 0 } = {}) {
    this.kind = kind;
    this.layer = layer;
    this.run = data.run;
    this.task = data.task ?? null;
    this.catalog = data.catalog;
    this.interventions = data.interventions ?? [];
    this.report = data.report ?? null;
    this.metrics = new Metrics();
    this.encoded = new Map(); // step -> base64 bytes (dropped once decoded)
    this.decoded = new Map(); // step -> frame
    this.flows = new Map(); // "kind|layer" -> flow
    this.probeSteps = [];
    this.add(data);
  }

  add({ metrics = [], frames = {}, gradflow = {} }) {
    this.metrics.add(metrics);
    for (const [step, text] of Object.entries(frames)) this.encoded.set(Number(step), text);
    for (const [key, answer] of Object.entries(gradflow)) this.flows.set(key, flowOf(answer, this.flows.size));
    this.probeSteps = [...new Set([...this.encoded.keys(), ...this.decoded.keys()])].sort((a, b) => a - b);
  }

  get gradflow() {
    return this.flows.get(`${this.kind}|${this.layer}`) ?? this.flows.get(`${this.kind}|0`) ?? null;
  }

  setView(kind, layer) {
    this.kind = kind;
    this.layer = layer;
  }

  get kept() {
    return this.probeSteps;
  }

  get frame() {
    return this.probeSteps.length ? this.decode(this.probeSteps.at(-1)) : null;
  }

  /** The stored step nearest `step` (the earlier on a tie), or null when there is no frame. */
  nearest(step) {
    let best = null;
    for (const s of this.probeSteps) if (best === null || Math.abs(s - step) < Math.abs(best - step)) best = s;
    return best;
  }

  async show(step) {
    const s = this.nearest(step);
    return s === null ? null : this.decode(s);
  }

  decode(step) {
    if (!this.decoded.has(step)) {
      this.decoded.set(step, decodeFrame(fromBase64(this.encoded.get(step))));
      this.encoded.delete(step);
    }
    return this.decoded.get(step);
  }
}

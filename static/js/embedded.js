// The embedded data source: what a page reads when there is no server (the one-file report, and
// the notebook widget, whose data come kernel -> widget). `new EmbeddedSource(data)` takes the
// plain object a snapshot holds (docs: /work/notes/proto13.md; gatescope/report.py embeds one:
// run, task, catalog, metrics rows, gradient flows by "kind|layer" as GET .../gradflow answers
// them, frames of the one frame format as base64 text (the report) or as bytes (ArrayBuffer, a
// typed array or a DataView: the widget's buffers), `report`: what was kept) and offers what the
// API side (feed.js + scrubber.js) offers the views: `run`, `task`, `catalog`, `metrics` (a
// Metrics), `probeSteps` (the steps with a frame), `gradflow` (the Feed's flow shape, of the view
// set with setView(kind, layer)), `frame` (the newest) and `show(step)` (a Promise of the decoded
// frame of the kept step nearest `step`, decoded once). `add(part)` takes a live widget's next
// increment: newer metrics rows and frames, the run as it is now, and flow answers `since` the
// last row, which are APPENDED (as Feed.adoptFlow appends a `since` answer); `keep(steps, report)`
// drops the frames a later snapshot of the run thinned away.
// What this is not: a renderer or a decoder (frame.js decodes); nothing here fetches.

import { decodeFrame } from "./frame.js";
import { Metrics } from "./feed.js";

/** A frame's bytes as an ArrayBuffer of their own (frame offsets count from its start). */
const bufferOf = (bytes) => {
  if (typeof bytes === "string") return Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0)).buffer;
  if (bytes instanceof ArrayBuffer) return bytes;
  if (ArrayBuffer.isView(bytes)) return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  throw new TypeError(`a frame must be base64 text or bytes, not ${Object.prototype.toString.call(bytes)}`);
};

/** A GET .../gradflow answer as the Feed keeps it (rows as Float32Array). */
export function flowOf(answer, reset = 0) {
  return {
    kind: answer.kind, layer: answer.layer, T: answer.T, width: answer.width, t: answer.t,
    steps: [...answer.steps], rows: answer.z.map((r) => Float32Array.from(r)),
    saturation: Object.fromEntries(Object.entries(answer.saturation).map(([g, s]) => [g, { low: [...s.low], high: [...s.high] }])),
    lastStep: answer.last_step, thinned: answer.steps.length < answer.total_rows, version: 1, reset,
  };
}

/** Append the rows of `answer` (a GET .../gradflow answer `since` the last row of `flow`) to `flow`;
 * rows at or before its last step are skipped (they are there already). */
function appendFlow(flow, answer) {
  const last = flow.steps.length ? flow.steps.at(-1) : -Infinity;
  const fresh = answer.steps.map((s, i) => [s, i]).filter(([s]) => s > last).map(([, i]) => i);
  if (!fresh.length) return;
  Object.assign(flow, { T: answer.T, width: answer.width, t: answer.t, lastStep: answer.last_step });
  for (const i of fresh) {
    flow.steps.push(answer.steps[i]);
    flow.rows.push(Float32Array.from(answer.z[i]));
  }
  for (const [gate, sides] of Object.entries(answer.saturation)) {
    const entry = (flow.saturation[gate] ??= { low: [], high: [] });
    for (const i of fresh) {
      entry.low.push(sides.low[i]);
      entry.high.push(sides.high[i]);
    }
  }
  flow.version += 1;
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
    this.encoded = new Map(); // step -> base64 text or bytes (dropped once decoded)
    this.decoded = new Map(); // step -> frame
    this.flows = new Map(); // "kind|layer" -> flow
    this.probeSteps = [];
    this.metrics.add(data.metrics ?? []);
    this.addFrames(data.frames ?? {});
    for (const [key, answer] of Object.entries(data.gradflow ?? {})) this.flows.set(key, flowOf(answer, this.flows.size));
  }

  /** A live increment: {run?, metrics?, frames?: {step: bytes}, gradflow?: {"kind|layer": answer since the last row}}. */
  add({ run = null, metrics = [], frames = {}, gradflow = {} }) {
    if (run) this.run = run;
    this.metrics.add(metrics);
    this.addFrames(frames);
    if (this.report) {
      // frames that came live are kept (the budget thins the next snapshot, not what is drawn)
      const steps = Object.keys(frames).map(Number);
      const more = (list) => [...new Set([...list, ...steps])].sort((a, b) => a - b);
      this.report = { ...this.report, stored_steps: more(this.report.stored_steps), kept_steps: more(this.report.kept_steps) };
    }
    for (const [key, answer] of Object.entries(gradflow)) {
      const old = this.flows.get(key);
      if (old) appendFlow(old, answer);
      else this.flows.set(key, flowOf(answer, this.flows.size));
    }
  }

  /** Keep only the frames of `steps` (a later snapshot of this run, thinned to its budget, holds
   * just those) and take that snapshot's `report` of what it kept. */
  keep(steps, report) {
    const kept = new Set(steps.map(Number));
    for (const map of [this.encoded, this.decoded]) for (const s of [...map.keys()]) if (!kept.has(s)) map.delete(s);
    this.probeSteps = this.probeSteps.filter((s) => kept.has(s));
    this.report = report ?? this.report;
  }

  addFrames(frames) {
    for (const [step, bytes] of Object.entries(frames)) if (!this.decoded.has(Number(step))) this.encoded.set(Number(step), bytes);
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
      this.decoded.set(step, decodeFrame(bufferOf(this.encoded.get(step))));
      this.encoded.delete(step);
    }
    return this.decoded.get(step);
  }
}

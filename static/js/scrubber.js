// The run page's recorded frames: `new FrameStore(runId)`; `get(step)` -> a Promise of the decoded
// display frame of that step (GET /api/runs/{id}/probes/{step}?resolution=display, frame bytes
// -> decodeFrame), one request per step however often it is asked for, kept in a least recently
// used cache within a budget of decoded bytes; `prefetch(steps)` loads the first of those steps
// not yet here while no other request waits (the scrubber's neighbours, so a drag finds them).
// What this is not: the scrubber's control or its rendering (run.js).

import { bytes } from "./api.js";
import { decodeFrame } from "./frame.js";

const BUDGET_BYTES = 200e6;
const size = (frame) => Object.values(frame.arrays).reduce((n, a) => n + a.data.byteLength, 0);

export class FrameStore {
  constructor(runId, budget = BUDGET_BYTES) {
    this.path = `/api/runs/${encodeURIComponent(runId)}/probes`;
    this.budget = budget;
    this.byStep = new Map(); // least recently used first
    this.bytes = 0;
    this.loading = new Map(); // step -> Promise
  }

  get(step) {
    const frame = this.byStep.get(step);
    if (frame) {
      this.byStep.delete(step); // now the most recently used
      this.byStep.set(step, frame);
      return Promise.resolve(frame);
    }
    if (!this.loading.has(step)) this.loading.set(step, this.load(step));
    return this.loading.get(step);
  }

  async load(step) {
    try {
      const frame = decodeFrame(await bytes(`${this.path}/${step}?resolution=display`));
      this.byStep.set(step, frame);
      this.bytes += size(frame);
      for (const [old, f] of this.byStep) {
        if (this.bytes <= this.budget || this.byStep.size <= 2) break;
        this.byStep.delete(old);
        this.bytes -= size(f);
      }
      return frame;
    } finally {
      this.loading.delete(step);
    }
  }

  prefetch(steps) {
    if (this.loading.size) return;
    const step = steps.find((s) => s !== undefined && !this.byStep.has(s));
    if (step !== undefined) this.get(step).catch(() => {}); // a failed prefetch costs a later fetch only
  }
}

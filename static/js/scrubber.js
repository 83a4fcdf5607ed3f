// The run page's recorded frames: `new FrameStore(runId)`; `get(step)` -> a Promise of the decoded
// display frame of that step (GET /api/runs/{id}/probes/{step}?resolution=display, frame bytes
// -> decodeFrame), one request per step however often it is asked for, kept in a least recently
// used cache within a budget of decoded bytes; `prefetch(steps)` loads the first of those steps
// not yet here while no other request waits (the scrubber's neighbours, so a drag finds them).
// The page lists probe steps whose frames are not stored (the history's and the live ones: a
// frame thinned to the run's storage budget, or not recorded below the disk's floor), so
// `nearest(step)` says which stored step to show for a step (itself if stored), from `kept`, the
// stored steps (GET .../probes, read again when a step is not among them, unless it is older than
// the last one and the list is under KEPT_MS old: thinning only removes); only kept steps are
// fetched or prefetched, so a step without a frame costs no failed request (on a live run being
// thinned, a step kept when the list was read may go within KEPT_MS: then its request fails).
// What this is not: the scrubber's control or its rendering (run.js).

import { api, bytes } from "./api.js";
import { decodeFrame } from "./frame.js";

const BUDGET_BYTES = 200e6;
const KEPT_MS = 2000;
const size = (frame) => Object.values(frame.arrays).reduce((n, a) => n + a.data.byteLength, 0);

export class FrameStore {
  constructor(runId, budget = BUDGET_BYTES) {
    this.path = `/api/runs/${encodeURIComponent(runId)}/probes`;
    this.budget = budget;
    this.byStep = new Map(); // least recently used first
    this.bytes = 0;
    this.loading = new Map(); // step -> Promise
    this.kept = []; // the steps with a stored frame, as last read (at keptAt)
    this.keptAt = -Infinity;
  }

  /** The stored step nearest `step` (the earlier on a tie; `step` itself if stored), or null if
   * none is; `held`: a step the page has in memory (the newest live frame), stored or not. */
  async nearest(step, held = null) {
    if (step === held || this.byStep.has(step)) return step;
    const fresh = performance.now() - this.keptAt < KEPT_MS && step < this.kept.at(-1);
    if (!this.kept.includes(step) && !fresh) {
      this.kept = await api(this.path);
      this.keptAt = performance.now();
    }
    const steps = held === null ? this.kept : [...this.kept, held];
    const distance = (s) => Math.abs(s - step);
    return steps.reduce((best, s) => (best === null || distance(s) < distance(best) || (distance(s) === distance(best) && s < best) ? s : best), null);
  }

  /** The frame to show for `step`: its own, or the nearest kept step's (null: none is stored);
   * `held`: {step, frame()} of a frame the page has in memory (the newest live one), or null. */
  async show(step, held) {
    const shown = await this.nearest(step, held ? held.step : null);
    return shown === null ? null : held && shown === held.step ? held.frame() : this.get(shown);
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
    const step = steps.find((s) => this.kept.includes(s) && !this.byStep.has(s));
    if (step !== undefined) this.get(step).catch(() => {}); // a failed prefetch costs a later fetch only
  }
}

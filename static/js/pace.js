// Live redraws, coalesced: `const pace = new Pacer(draw)`; `pace.add(what)` for every live message;
// `draw(changed)` is then called with the set of what changed, at most every LIVE_MS (the latest
// data wins) and never more often than keeps drawing under LOAD of the main thread: the wait is
// the charts' drawing time since the last live redraw (plots.js stats) divided by LOAD. So a page
// that streams stays responsive however fast the run probes. User actions draw at once instead.
// What this is not: a renderer or a scheduler of animation frames (plots.js does those).

import { stats } from "./plots.js";

const LIVE_MS = 250;
const LOAD = 0.35;
const LONGEST_WAIT_MS = 4000;

export class Pacer {
  constructor(draw) {
    this.draw = draw;
    this.changed = new Set();
    this.timer = null;
    this.last = 0;
    this.spentAtLast = 0;
  }

  add(what) {
    this.changed.add(what);
    if (!this.timer) this.timer = setTimeout(() => this.due(), Math.max(0, this.last + LIVE_MS - performance.now()));
  }

  due() {
    // the drawing since the last live redraw (its animation frames have run by now) sets the pace
    const since = performance.now() - this.last;
    const owed = Math.min(LONGEST_WAIT_MS, (stats.totalMs - this.spentAtLast) / LOAD);
    if (since < owed) {
      this.timer = setTimeout(() => this.due(), owed - since);
      return;
    }
    this.timer = null;
    this.last = performance.now();
    this.spentAtLast = stats.totalMs;
    const changed = this.changed;
    this.changed = new Set();
    this.draw(changed);
  }
}

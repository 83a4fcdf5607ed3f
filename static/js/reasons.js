// Why a view has nothing to draw, in a sentence: what the figure functions (views.js, curves.js)
// return as `{empty}`, which Chart.empty (plots.js) shows in place of empty axes. Each sentence
// reads the run (a RunPublic; absent where a page has none) to say what happened to it: queued,
// waiting for its first probe frame, diverged at step n, a vanilla RNN without gates... and,
// where the page knows it, how many probe frames the run has recorded (`probes`), so frames that
// are still loading are not called missing.
// What this is not: a figure or a renderer.

// "(2 ahead)" for a queued run whose position the server knows
const ahead = (run) => (Number.isInteger(run.queue_position) ? ` (${run.queue_position} ahead)` : "");

const divergedAt = (run) => run.step + 1; // the step that went non-finite: run.step is the last one trained

/** No probe frame to show (yet); `probes`: how many the run has recorded, when known. */
export function noFrame(run, probes = 0) {
  if (!run) return "Waiting for the first probe frame…";
  if (probes > 0) return "Loading the recorded probe frames…";
  if (run.status === "queued") return `Queued${ahead(run)}: the run has not started, so it has no probe frame yet.`;
  if (run.status === "running") {
    const every = run.config && run.config.probe_every;
    return every ? `Waiting for the first probe frame (one every ${every} steps)…` : "Waiting for the first probe frame…";
  }
  if (run.status === "paused") return "Paused before its first probe frame: resume the run to record one.";
  if (run.status === "diverged") return `The run diverged at step ${divergedAt(run)} before a probe frame was recorded.`;
  return `This run recorded no probe frame${run.error ? ` (${run.error})` : ""}.`;
}

/** No training step with a finite `what` ("loss", "gradient norm", ...) to draw. */
export function noSteps(run, what) {
  if (!run) return `No ${what} yet.`;
  if (run.status === "queued") return `Queued${ahead(run)}: no training step has run yet.`;
  if (run.status === "diverged") {
    const unstabilised = run.config?.slstm && !run.config.slstm.stabilizer;
    const fix = unstabilised ? "This sLSTM runs without its stabiliser m_t, so exp() overflowed: with it, the same run stays finite." : "A smaller learning rate or init gain keeps it finite.";
    return `The run diverged at step ${divergedAt(run)}: its loss or gradient was not finite (NaN or ∞) there, so there is no ${what} to draw. ${fix}`;
  }
  if (run.kind === "attached" && what === "loss") return "No loss yet: pass it with watch.step(loss=loss) to see it here.";
  if (run.status === "running") return `Waiting for the first training step's ${what}…`;
  if (run.status === "paused" && !run.step) return `Paused before its first training step: resume the run to see its ${what}.`;
  if (run.step > 0) return "Loading the training curves…"; // the run trained: its rows are on their way
  return `This run recorded no ${what}.`;
}

export const NO_GATES =
  "A vanilla RNN has no gates: its only path through time is W_hh, multiplied in at every step, so nothing here can open, close or saturate.";

export const NO_CELL_STATE = "Only an LSTM has a cell state c: this cell carries h alone.";

/** A probe frame whose loss was not finite has no gradient to draw (its norms all came out 0). */
export const NO_FINITE_GRADIENT =
  "No gradient to draw at this step: the probe's loss was not finite (NaN or ∞), so its gradients are not numbers. They are not a vanished gradient.";

/** A frame without the step Jacobian norms: its own note says why (the stack's size), else it predates them. */
export function noTheory(frame) {
  const told = (frame.notes || []).find((n) => n.includes("Jacobian"));
  return told || "This frame carries no step Jacobian norms: it was recorded before probe frames carried them.";
}

/** No W_hh spectra to draw over training (yet: the run has not `finished`). */
export function noSpectra(finished) {
  return finished ? "No probe frame of this run carries the spectra of W_hh." : "The spectra of W_hh come with the probe frames…";
}

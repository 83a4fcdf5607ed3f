// Training-curve figures: a Metrics store (feed.js) -> {key, data, layout} of the loss (against
// the task's baseline), the metric, the global gradient norm before and after clipping, each
// parameter's gradient norm, the update ratio ||dtheta||/||theta|| with the learning rate, and
// (from the gradient-flow history) gate saturation. `key` is the store's version, so a chart
// is redrawn only when rows came in. With nothing to draw a figure says why ({empty}, reasons.js):
// the run is queued, diverged at its first step, has no gates, ...
// Every chart over training marks the run's interventions (`interventions`: feed.js's list): a
// dotted vertical line at each, hover text naming the change (`marked`, also used by the
// gradient flow in views.js, whose training steps run up its rows).
// What this is not: frame or gradient-flow heatmaps (views.js) or a renderer (plots.js).

import { stepPosition } from "./axes.js";
import { line, LINES, logAxis, stepAxis, thin } from "./plots.js";
import { NO_GATES, noFrame, noSteps } from "./reasons.js";

const some = (values) => values.some((v) => v !== null && v !== undefined);

// -- interventions --------------------------------------------------------------------------

const CHANGE_WORDS = {
  lr: (v) => `learning rate ${v}`,
  optimizer: (v) => `optimizer ${v.name} (${v.reset_state ? "fresh state" : "state kept"})`,
  clip: (v) => (v.mode === "off" ? "no clipping" : `clip by ${v.mode} at ${v.threshold}`),
  tbptt: (v) => (v === null ? "full BPTT" : `truncated BPTT, window ${v}`),
  forget_bias: (v) => `forget-gate bias set to ${v}`,
  rescale: (v) => `W_hh of layer ${v.layer} rescaled to spectral radius ${v.radius}`,
  reinit: (v) => `layer ${v.layer} re-initialised (${v.scheme}, gain ${v.gain})`,
};

/** An intervention's changes in words: "learning rate 0.01; truncated BPTT, window 20". */
export const describeChanges = (changes) =>
  Object.entries(changes).map(([k, v]) => (CHANGE_WORDS[k] ? CHANGE_WORDS[k](v) : `${k} ${JSON.stringify(v)}`)).join("; ");

const MARK_LINE = { color: LINES[3], width: 1.5, dash: "dot" };
const MARK_FONT = { size: 10, color: "#8f3f72" };

// where an intervention after step s goes: s + 0.5 (it acts from step s + 1 on); on a row axis
// (`rows`: the probe steps of the rows) between the rows around it, or above the newest
function markAt(step, rows) {
  const at = step + 0.5;
  if (!rows) return at;
  return at > rows.at(-1) ? rows.length - 0.5 : stepPosition(rows, at);
}

/** `fig` with the run's interventions marked: dotted lines across the plot at their steps, each
 * labelled with the knobs it changed and hover text naming the change; on a training-step x axis,
 * or, with `rows` (the probe steps of a heatmap's rows), across its row axis. */
export function marked(fig, interventions, rows = null) {
  if (fig.empty || !interventions || !interventions.length || (rows && !rows.length)) return fig;
  const shapes = [...(fig.layout.shapes || [])];
  const annotations = [...(fig.layout.annotations || [])];
  for (const { step, changes } of interventions) {
    const at = markAt(step, rows);
    const words = { text: Object.keys(changes).join("+"), hovertext: `after step ${step}: ${describeChanges(changes)}` };
    const label = { ...words, showarrow: false, font: MARK_FONT, bgcolor: "rgba(255,255,255,0.75)", name: "intervention" };
    if (rows) {
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: at, y1: at, line: { ...MARK_LINE, width: 2 }, name: "intervention" });
      annotations.push({ ...label, xref: "paper", x: 1, xanchor: "right", yref: "y", y: at, yanchor: "bottom" });
    } else {
      shapes.push({ type: "line", xref: "x", x0: at, x1: at, yref: "paper", y0: 0, y1: 1, line: MARK_LINE, name: "intervention" });
      annotations.push({ ...label, xref: "x", x: at, xanchor: "right", yref: "paper", y: 1, yanchor: "top" }); // left of it: the newest is at the edge
    }
  }
  const ids = interventions.map((i) => i.id).join(",");
  return { ...fig, key: `${fig.key}|${ids}`, layout: { ...fig.layout, shapes, annotations } };
}

// loss against the task's baseline (dashed), the baseline named above the plot area where no
// curve runs; a sentence while no step has one (queued, diverged at step 1, a script that passes
// no loss to watch.step)
export function lossFigure({ metrics: m, baseline, yRange, xRange, field = "loss", title = "loss", run, interventions }) {
  if (!some(m[field])) return { empty: noSteps(run, title) };
  const [x, y] = thin(m.step, m[field]);
  const shapes = [];
  const annotations = [];
  if (baseline !== null && baseline !== undefined) {
    shapes.push({
      type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: baseline, y1: baseline,
      line: { color: "#555", width: 1.5, dash: "dash" },
    });
    annotations.push({
      xref: "paper", x: 1, xanchor: "right", yref: "paper", y: 1, yanchor: "bottom",
      text: `- - baseline ${+baseline.toPrecision(3)}`, showarrow: false, font: { size: 10, color: "#555" },
    });
  }
  return marked({
    key: `${m.version}|${baseline}|${yRange}|${xRange}|${field}`,
    data: [line(x, y, title, LINES[0])],
    layout: {
      xaxis: stepAxis(xRange), yaxis: { title: { text: title, standoff: 4 }, ...(yRange ? { range: yRange } : {}) },
      shapes, annotations, margin: { l: 48, r: 12, t: shapes.length ? 20 : 8, b: 36 },
    },
  }, interventions);
}

// the clipping threshold as it was at each step (an intervention may change it after step s): a
// dashed line for each stretch of steps clipped by norm, from `first` to `last` step
function thresholds(clip, interventions, first, last) {
  if (!clip) return [];
  const stretches = [{ from: first, clip }];
  for (const i of interventions || []) if (i.changes.clip) stretches.push({ from: i.step + 0.5, clip: i.changes.clip });
  return stretches.flatMap(({ from, clip: c }, k) => {
    const to = k + 1 < stretches.length ? stretches[k + 1].from : last;
    if (c.mode !== "norm" || !(to > from)) return [];
    return [{ type: "line", xref: "x", x0: from, x1: to, yref: "y", y0: c.threshold, y1: c.threshold, line: { color: "#555", width: 1, dash: "dash" } }];
  });
}

// global gradient norm before and after clipping, log axis; clip events marked; the threshold as
// it was at each step (the run's config, then its interventions')
export function gradNormFigure({ metrics: m, clip, yRange, run, interventions }) {
  if (!some(m.gradNorm)) return { empty: noSteps(run, "gradient norm") };
  const [x, before] = thin(m.step, m.gradNorm);
  const [, after] = thin(m.step, m.gradNormClipped);
  const cx = [];
  const cy = [];
  for (let i = 0; i < m.step.length; i++) {
    if (m.clipped[i]) {
      cx.push(m.step[i]);
      cy.push(m.gradNorm[i]);
    }
  }
  const [ex, ey] = thin(cx, cy, 600);
  const shapes = thresholds(clip, interventions, x[0], x.at(-1));
  return marked({
    key: `${m.version}|${yRange}|${clip ? `${clip.mode}|${clip.threshold}` : ""}`,
    data: [
      line(x, before, "before clipping", LINES[0]),
      line(x, after, "after clipping", LINES[1], { line: { dash: "dot" } }),
      {
        type: "scatter", mode: "markers", x: ex, y: ey, name: "clipped",
        marker: { symbol: "x-thin", size: 7, line: { width: 1.5, color: LINES[5] } },
        hovertemplate: "clipped at step %{x}: %{y:.3g}<extra></extra>",
      },
    ],
    layout: {
      xaxis: stepAxis(), yaxis: logAxis("‖g‖", yRange), shapes, showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  }, interventions);
}

// one line per parameter tensor, log axis
export function paramNormsFigure({ metrics: m, run, interventions }) {
  if (!Object.keys(m.params).length) return { empty: noSteps(run, "per-parameter gradient norm") };
  const data = Object.entries(m.params).map(([name, s], i) => {
    const [x, y] = thin(s.step, s.value, 1500);
    return line(x, y, name.replace(/^rnn\./, ""), LINES[i % LINES.length]);
  });
  return marked({
    key: `${m.version}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: logAxis("‖∂L/∂θ‖"), showlegend: true,
      legend: { font: { size: 10 }, x: 1.02, xanchor: "left", y: 1 },
      margin: { l: 48, r: 110, t: 8, b: 36 },
    },
  }, interventions);
}

// gate saturation over training: fraction > 0.9 (solid) and < 0.1 (dashed) per gate
export function saturationFigure({ flow, run, probes, interventions }) {
  if (!flow.steps.length) return { empty: noFrame(run, probes) };
  if (!Object.keys(flow.saturation || {}).length) return { empty: NO_GATES };
  const data = [];
  Object.entries(flow.saturation || {}).forEach(([gate, s], i) => {
    const color = LINES[i % LINES.length];
    data.push(line(flow.steps, s.high, `${gate} > 0.9`, color));
    data.push(line(flow.steps, s.low, `${gate} < 0.1`, color, { line: { dash: "dash" } }));
  });
  return marked({
    key: `${flow.reset}|${flow.version}|${flow.steps.length}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: { title: { text: "fraction of values", standoff: 4 }, range: [0, 1] },
      showlegend: true, legend: { font: { size: 10 }, x: 1.02, xanchor: "left", y: 1 },
      margin: { l: 48, r: 90, t: 8, b: 36 },
    },
  }, interventions);
}

// the update ratio ||theta_k - theta_(k-1)|| / ||theta_(k-1)|| (solid) and the learning rate (dotted)
export function updateFigure({ metrics: m, run, interventions }) {
  if (!some(m.updateRatio)) return { empty: noSteps(run, "update ratio") };
  const [x, ratio] = thin(m.step, m.updateRatio);
  const [, lr] = thin(m.step, m.lr);
  const data = [line(x, ratio, "‖Δθ‖/‖θ‖", LINES[0])];
  if (lr.some((v) => v !== null)) data.push(line(x, lr, "learning rate", LINES[1], { line: { dash: "dot" } }));
  return marked({
    key: `${m.version}`,
    data,
    layout: {
      xaxis: stepAxis(), yaxis: logAxis(""), showlegend: true, // the legend names the lines
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 48, r: 12, t: 22, b: 36 },
    },
  }, interventions);
}

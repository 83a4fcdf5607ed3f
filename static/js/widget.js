// The notebook widget's front end (anywidget; gatescope/notebook.py RunWidget is its kernel side,
// gatescope/bundle.py packs this module with its imports and plotly.js into the widget's `_esm`).
// `render({model, el})` reads the model as the kernel writes it: `_snapshot` (bytes: uint32 LE
// json_length | json {runs: [snapshot...], seq} | frame bytes, each snapshot's frames as
// {step: [offset, length]} into the bytes after the JSON), `_mode` ("run": one run's views,
// runview.js; "compare": the runs side by side, compareview.js) and "add" messages ({type: "add",
// seq, index (which run), run?, metrics, frames: [step...], gradflow: flow answers since the last
// row sent} with buffers[i] the bytes of frames[i]). An "add" is applied only when its seq is the
// next after what is drawn; any other waits for a snapshot newer than what is drawn, which
// replaces everything (messages sent before the view loaded are lost; the snapshot is what a
// saved notebook keeps); a snapshot of just what is drawn only drops the frames its budget left
// out, so the browser holds no more frames than the kernel keeps. Nothing is sent to the kernel.
// What this is not: the views (runview.js, compareview.js) nor a data source (embedded.js).

import { mountCompareView } from "./compareview.js";
import { EmbeddedSource } from "./embedded.js";
import { mountRunView } from "./runview.js";

export const ROOT_CLASS = "gatescope-widget"; // widget_css() scopes the styles to it (gatescope/bundle.py reads it here)

const asBytes = (value) => {
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`the widget's snapshot must be bytes, not ${Object.prototype.toString.call(value)}`);
};

/** `_snapshot` bytes -> {seq, runs: [snapshot with frames {step: Uint8Array}]}, or null when empty. */
export function decodeSnapshot(value) {
  const bytes = asBytes(value);
  if (!bytes.byteLength) return null;
  if (bytes.byteLength < 4) throw new Error(`a widget snapshot of ${bytes.byteLength} bytes is cut short`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  if (4 + n > bytes.byteLength) throw new Error(`a widget snapshot says its JSON has ${n} bytes, but it holds ${bytes.byteLength - 4}`);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n)));
  const rest = bytes.subarray(4 + n);
  for (const run of json.runs) {
    const frames = {};
    for (const [step, [offset, length]] of Object.entries(run.frames ?? {})) {
      if (offset + length > rest.byteLength) throw new Error(`frame ${step} of run ${run.run && run.run.id} lies past the snapshot's end`);
      frames[step] = rest.subarray(offset, offset + length);
    }
    run.frames = frames;
  }
  return json;
}

/** One mounted state: the sources of a snapshot and the view drawing them. */
function mount(root, snapshot, mode) {
  root.replaceChildren();
  const sources = snapshot.runs.map((data) => new EmbeddedSource(data));
  if (!sources.length) {
    root.textContent = "No run to show yet.";
    return { seq: snapshot.seq, sources, refresh: () => {} };
  }
  if (mode === "compare") {
    const view = mountCompareView(root, sources, { link: null });
    return { seq: snapshot.seq, sources, view, refresh: () => view.schedule() };
  }
  const views = sources.map((source) => {
    const box = document.createElement("div");
    root.append(box);
    return mountRunView(box, source);
  });
  return { seq: snapshot.seq, sources, views, refresh: () => views.forEach((v) => v.refresh()) };
}

/** Apply one "add" message to the mounted state (the frames' bytes come as `buffers`). */
function apply(current, msg, buffers) {
  const frames = {};
  (msg.frames ?? []).forEach((step, i) => (frames[step] = buffers[i]));
  const { sources } = current;
  const source = Number.isInteger(msg.index) ? sources[msg.index] : sources.length === 1 ? sources[0] : null;
  if (!source) return; // which run it extends is unsaid: the next snapshot says
  source.add({ run: msg.run ?? null, metrics: msg.metrics ?? [], frames, gradflow: msg.gradflow ?? {} });
  current.seq = msg.seq;
  current.refresh();
}

/** A snapshot of what the "add" messages drew already: not redrawn (that would lose the user's
 * step and zoom), but its thinning to the budget is followed (the frames it left out are dropped). */
function thin(current, snapshot) {
  if (snapshot.runs.length !== current.sources.length) return;
  snapshot.runs.forEach((run, i) => current.sources[i].keep(Object.keys(run.frames), run.report));
  current.refresh();
}

function render({ model, el }) {
  el.classList.add(ROOT_CLASS);
  const root = document.createElement("div");
  el.replaceChildren(root);
  let current = null;
  const fail = (err) => {
    root.replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: `Gatescope widget: ${err.message || err}` }));
    current = el.gatescope = null;
  };
  const load = () => {
    try {
      const snapshot = decodeSnapshot(model.get("_snapshot"));
      const mode = model.get("_mode");
      if (!snapshot) root.textContent = "Waiting for the run's first data.";
      else if (!current || current.mode !== mode || snapshot.seq > current.seq) current = { ...mount(root, snapshot, mode), mode };
      else if (snapshot.seq === current.seq) thin(current, snapshot);
      el.gatescope = current; // what is drawn (the browser tests read it)
    } catch (err) {
      fail(err);
    }
  };
  const onMessage = (msg, buffers = []) => {
    if (!msg || msg.type !== "add" || !current || msg.seq !== current.seq + 1) return; // the next snapshot catches up
    try {
      apply(current, msg, buffers);
    } catch (err) {
      fail(err);
    }
  };
  model.on("change:_snapshot", load);
  model.on("change:_mode", load);
  model.on("msg:custom", onMessage);
  load();
  return () => {
    model.off("change:_snapshot", load);
    model.off("change:_mode", load);
    model.off("msg:custom", onMessage);
  };
}

export default { render };

// Probe frames in the browser: decode the websocket's binary frame, or adopt the REST JSON of one,
// into one shape: {step, loss, tokens, T, L, U, tIndex, unitIndex, arrays: {name: {shape, data}}}
// with Float32Array data. Layout of the binary frame (docs/protocol.md): uint32 LE header length
// N, N bytes of JSON header, padding to 8, then each array at header.arrays[i].offset.

const hasFloat16 = typeof globalThis.Float16Array === "function";
let halfTable = null;

// float16 -> float32 for browsers without Float16Array: one 64K-entry table, built once
function halfToFloat(bits) {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const f = h & 0x3ff;
      halfTable[h] =
        e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
    }
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfTable[bits[i]];
  return out;
}

export function decodeProbe(buffer) {
  const view = new DataView(buffer);
  const n = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  const arrays = {};
  for (const spec of header.arrays) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    let data;
    if (spec.dtype === "float32") data = new Float32Array(buffer.slice(spec.offset, spec.offset + count * 4));
    else if (hasFloat16) data = Float32Array.from(new globalThis.Float16Array(buffer, spec.offset, count));
    else data = halfToFloat(new Uint16Array(buffer, spec.offset, count));
    arrays[spec.name] = { shape: spec.shape, data };
  }
  return finish({
    step: header.step,
    loss: header.loss,
    tokens: header.tokens,
    lastStep: header.last_step,
    saturation: header.saturation,
    arrays,
  });
}

// nested lists -> {shape, data}
function packed(nested) {
  if (nested === null || nested === undefined) return null;
  const shape = [];
  for (let x = nested; Array.isArray(x); x = x[0]) shape.push(x.length);
  const flat = shape.length > 1 ? nested.flat(shape.length - 1) : nested;
  return { shape, data: Float32Array.from(flat) };
}

// the REST JSON of a frame (GET .../probes/{step}, .../display/{step}, POST .../inspect)
export function fromPublic(p) {
  const arrays = {};
  const put = (name, value) => {
    const a = packed(value);
    if (a && a.data.length) arrays[name] = a;
  };
  for (const name of ["inputs", "targets", "mask", "outputs", "h", "c", "grad_h", "grad_c"]) put(name, p[name]);
  put("grad_h_last", p.grad_h_last_layers ?? (p.grad_h_last ? [p.grad_h_last] : null));
  put("itemized", p.itemized ? [p.itemized] : null);
  put("connectivity", p.connectivity);
  put("connectivity_total", p.connectivity_total);
  put("connectivity_itemized", p.connectivity_itemized);
  for (const [g, v] of Object.entries(p.gates || {})) put(`gates.${g}`, v);
  for (const [g, v] of Object.entries(p.unit_means || {})) put(`unit_means.${g}`, v);
  return finish({
    step: p.step,
    loss: p.loss,
    tokens: p.tokens,
    lastStep: p.last_step,
    saturation: p.saturation,
    arrays,
    tIndex: p.t_index,
    unitIndex: p.unit_index,
    fullT: p.T,
    fullU: p.units,
  });
}

function finish(frame) {
  const h = frame.arrays.h;
  frame.L = h.shape[0];
  frame.T = h.shape[1];
  frame.U = h.shape[2];
  frame.tIndex ??= range(frame.T);
  frame.unitIndex ??= range(frame.U);
  frame.fullT ??= frame.T;
  frame.fullU ??= frame.U;
  frame.gates = Object.keys(frame.arrays)
    .filter((k) => k.startsWith("gates."))
    .map((k) => k.slice(6));
  return frame;
}

export const range = (n) => Array.from({ length: n }, (_, i) => i);

export const isLarge = (frame, maxT = 500, maxU = 256) => frame.T > maxT || frame.U > maxU;

// (L, T, U) -> rows [unit][t] of one layer, for a units x time heatmap
export function unitsByTime(frame, name, layer = 0) {
  const a = frame.arrays[name];
  if (!a) return null;
  const [L, T, U] = a.shape;
  const base = Math.min(layer, L - 1) * T * U;
  const rows = [];
  for (let u = 0; u < U; u++) {
    const row = new Array(T);
    for (let t = 0; t < T; t++) row[t] = a.data[base + t * U + u];
    rows.push(row);
  }
  return rows;
}

// (L, T) -> one layer's row; (T,) -> the row
export function row(frame, name, layer = 0) {
  const a = frame.arrays[name];
  if (!a) return null;
  if (a.shape.length === 1) return Array.from(a.data);
  const T = a.shape[1];
  const l = Math.min(layer, a.shape[0] - 1);
  return Array.from(a.data.subarray(l * T, (l + 1) * T));
}

// (S, T) or (1, S, T) -> rows [s][t]
export function matrix(frame, name) {
  const a = frame.arrays[name];
  if (!a) return null;
  const [S, T] = a.shape.slice(-2);
  const rows = [];
  for (let s = 0; s < S; s++) rows.push(Array.from(a.data.subarray(s * T, (s + 1) * T)));
  return rows;
}

// max-pool a row into bins of `width` (the server's gradflow columns pool the same way)
export function poolMax(values, width) {
  if (width <= 1) return values;
  const out = [];
  for (let i = 0; i < values.length; i += width) {
    let m = -Infinity;
    for (let j = i; j < Math.min(i + width, values.length); j++) m = Math.max(m, values[j]);
    out.push(m);
  }
  return out;
}

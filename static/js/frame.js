// The browser's one decoder of frame bytes (docs/protocol.md): `decodeFrame(buffer)` turns the
// bytes of a probe frame (websocket, GET .../probes/{step}, POST .../inspect) into the frame
// object of docs/architecture.md, and three accessors read a layer's block, row or T x T matrix.
// What this is not: a place that pools, thins or re-derives anything. The server made the frame
// at display resolution; `pool` says how it did, and the frame's indices follow from it.
//
// Layout: uint32 LE header length N | N bytes of JSON header | padding to 8 | arrays, each at
// header.arrays[i].offset (8-byte aligned, counted from the message start).

let lastId = 0; // every decoded frame gets a fresh id: figure keys use it, never `step` alone

/** The JSON header of frame bytes, as the server wrote it (snake_case), arrays left undecoded. */
export function frameHeader(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  return JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
}

// float16 -> float32 where the browser has no Float16Array (before Chrome 135): a 64K table
let halfTable = null;
function fromHalf(bits) {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const f = h & 0x3ff;
      halfTable[h] = e === 0 ? sign * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : sign * Infinity) : sign * 2 ** (e - 15) * (1 + f / 1024);
    }
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfTable[bits[i]];
  return out;
}

function decodeArray(buffer, spec) {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.dtype === "float32") return new Float32Array(buffer, spec.offset, count); // a view, no copy
  if (spec.dtype !== "float16") throw new Error(`frame array ${spec.name}: unknown dtype ${spec.dtype}`);
  if (typeof Float16Array === "function") return new Float32Array(new Float16Array(buffer, spec.offset, count));
  return fromHalf(new Uint16Array(buffer, spec.offset, count));
}

const indices = (n, width) => Int32Array.from({ length: n }, (_, i) => i * width);

/** Frame bytes -> {id, runId, step, ..., arrays: {name: {shape, data: Float32Array}}, L, T, U, ...}. */
export function decodeFrame(buffer) {
  const header = frameHeader(buffer);
  const arrays = {};
  for (const spec of header.arrays) arrays[spec.name] = { shape: spec.shape, data: decodeArray(buffer, spec) };
  const [L, T, U] = arrays.h.shape;
  const p = header.pool;
  const pool = p ? { T: p.T, units: p.units, tWidth: p.t_width, unitWidth: p.unit_width } : null;
  lastId += 1;
  return {
    id: lastId,
    runId: header.run_id,
    step: header.step,
    loss: header.loss,
    lastStep: header.last_step,
    tokens: header.tokens,
    marks: header.marks ?? [],
    markLabel: header.mark_label ?? null,
    notes: header.notes ?? [], // sentences the page shows with the frame (e.g. "computed without dropout")
    source: header.source ?? "built-in", // "built-in" | "live" (the training batch's sample 0) | "fixed" (watch's probe)
    saturation: header.saturation,
    pool,
    arrays,
    L,
    T,
    U,
    fullT: pool ? pool.T : T,
    fullU: pool ? pool.units : U,
    tIndex: indices(T, pool ? pool.tWidth : 1),
    unitIndex: indices(U, pool ? pool.unitWidth : 1),
    gates: header.arrays.filter((s) => s.name.startsWith("gates.")).map((s) => s.name.slice(6)),
  };
}

/** One layer of an (L, T, U) array as {T, U, data} with data[t * U + u]; a (T, U) array as it is. */
export function layerBlock(frame, name, layer = 0) {
  const a = frame.arrays[name];
  if (!a) return null;
  if (a.shape.length === 2) return { T: a.shape[0], U: a.shape[1], data: a.data };
  const [L, T, U] = a.shape;
  const l = Math.min(layer, L - 1);
  return { T, U, data: a.data.subarray(l * T * U, (l + 1) * T * U) };
}

/** One layer of an (L, T) array; a (T,) array itself. */
export function layerRow(frame, name, layer = 0) {
  const a = frame.arrays[name];
  if (!a) return null;
  if (a.shape.length === 1) return a.data;
  const [L, T] = a.shape;
  const l = Math.min(layer, L - 1);
  return a.data.subarray(l * T, (l + 1) * T);
}

/** One layer of an (L, S, T) array, or a (S, T) array, as {S, T, data} with data[s * T + t]. */
export function squareMatrix(frame, name, layer = 0) {
  const a = frame.arrays[name];
  if (!a) return null;
  const [S, T] = a.shape.slice(-2);
  if (a.shape.length === 2) return { S, T, data: a.data };
  const l = Math.min(layer, a.shape[0] - 1);
  return { S, T, data: a.data.subarray(l * S * T, (l + 1) * S * T) };
}

// The int8 fast mode's product: y = x @ W with W quantized per output channel and x per row (token), int32
// accumulation, then y[m, o] = f32(acc) · s_m · s_o.
//
// Weights (quantized once at load): s_o = max_k |W[o, k]| / 127, q = clamp(round-half-even(W / s_o), ±127)
// (an all-zero channel: scale 0, values 0). Words [⌈in/4⌉, S]: word [j, c] holds column c's values at K
// indices 4j..4j+3 in bytes 0..3 (so a gemv thread per output column reads consecutive words of a row), with
// scales float32 [S]. S = out, or 2·out for gate|up side by side (one dispatch for both). A prefix view (the
// first `in` rows, first `out` columns of a segment) is the same buffer read with the parent's row stride:
// the words past `in` of the last row it reads meet activation zeros, so they add nothing.
//
// Activations (per product, on the device): s_m = max |x[m, :]| / 127, q = clamp(round-half-even(x·(127 /
// max)), ±127), into words [M, ⌈K/4⌉ + 1]: the values (zero past K), then s_m's bits. The cpu twins below do
// the same float32 operations, so they produce the same integers (on adapters whose float32 division is
// correctly rounded, as lavapipe's is; one division per row) and the same output up to float32 rounding.
import * as tf from '@tensorflow/tfjs-core';
import { INT8_GEMV_MAX_ROWS, Int8GemvProgram, Int8TiledProgram, QuantizeRowsProgram } from './int8-programs';
import { type CpuBackendLike, type KernelArgs, type WebGpuBackendLike, registerTwins } from './register';

export const INT8_QUANTIZE = 'MatformerInt8QuantizeRows';
export const INT8_MATMUL = 'MatformerInt8MatMul';

export interface Int8MatMulAttrs {
  /** Rows of W used (the reduction length K; x has K columns). */
  k: number;
  /** Columns of W used (per segment). */
  n: number;
  /** Column of W where the (first) segment starts. */
  off: number;
  /** Column of W where the second segment starts, or -1 for one segment. */
  seg: number;
}

/** Round half to even (what WGSL's round does). */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantizes W given torch-style as [out, in] (row-major float32) into words [⌈in/4⌉, S] at column `at`, and
 * its per-channel scales into `scales` at `at`.
 */
export function quantizeInt8Into(
  w: Float32Array,
  out: number,
  inp: number,
  words: Int32Array,
  scales: Float32Array,
  S: number,
  at: number,
): void {
  if (w.length !== out * inp) throw new RangeError(`${w.length} weights given for a [${out}, ${inp}] matrix`);
  const q = new Int32Array(inp);
  for (let o = 0; o < out; o++) {
    const row = w.subarray(o * inp, (o + 1) * inp);
    let amax = 0;
    for (const v of row) amax = Math.max(amax, Math.abs(v));
    const s = Math.fround(amax / 127);
    scales[at + o] = s;
    for (let k = 0; k < inp; k++) q[k] = s === 0 ? 0 : Math.max(-127, Math.min(127, roundEven(row[k]! / s)));
    for (let j = 0; 4 * j < inp; j++) {
      let word = 0;
      for (let b = 0; b < 4 && 4 * j + b < inp; b++) word |= (q[4 * j + b]! & 0xff) << (8 * b);
      words[j * S + at + o] = word;
    }
  }
}

/** Bytes of an int8 weight [in, out] of its own (words and scales). */
export function int8WeightBytes(inp: number, out: number): number {
  return (Math.ceil(inp / 4) * out + out) * 4;
}

function quantizeShapes(x: tf.TensorInfo): [number, number] {
  if (x.shape.length !== 2) throw new Error(`${INT8_QUANTIZE}: x must be 2-D`);
  return [x.shape[0] ?? 0, x.shape[1] ?? 0];
}

function quantizeWebgpu(args: KernelArgs, backend: WebGpuBackendLike): tf.TensorInfo {
  const x = args.inputs.X as tf.TensorInfo;
  const [m, k] = quantizeShapes(x);
  return backend.runWebGPUProgram(new QuantizeRowsProgram(m, k), [x], 'int32', [
    { type: 'int32', data: [m] },
    { type: 'int32', data: [k] },
    { type: 'int32', data: [Math.ceil(k / 4)] },
  ]);
}

function quantizeCpu(args: KernelArgs, be: CpuBackendLike): tf.TensorInfo {
  const x = args.inputs.X as tf.TensorInfo;
  const [m, k] = quantizeShapes(x);
  const xv = be.data.get(x.dataId).values as Float32Array;
  const KW = Math.ceil(k / 4);
  const out = new Int32Array(m * (KW + 1));
  const scaleBits = new Float32Array(1);
  for (let r = 0; r < m; r++) {
    let amax = 0;
    for (let i = 0; i < k; i++) amax = Math.max(amax, Math.abs(xv[r * k + i]!));
    const inv = amax > 0 ? Math.fround(127 / amax) : 0;
    for (let j = 0; j < KW; j++) {
      let word = 0;
      for (let b = 0; b < 4 && 4 * j + b < k; b++) {
        const v = Math.max(-127, Math.min(127, roundEven(Math.fround(xv[r * k + 4 * j + b]! * inv))));
        word |= (v & 0xff) << (8 * b);
      }
      out[r * (KW + 1) + j] = word;
    }
    scaleBits[0] = amax / 127;
    out[r * (KW + 1) + KW] = new Int32Array(scaleBits.buffer)[0]!;
  }
  return be.makeTensorInfo([m, KW + 1], 'int32', out);
}

registerTwins(INT8_QUANTIZE, quantizeWebgpu, quantizeCpu);

function outCols(a: Int8MatMulAttrs): number {
  return a.seg >= 0 ? 2 * a.n : a.n;
}

function checkShapes(xq: tf.TensorInfo, w: tf.TensorInfo, sw: tf.TensorInfo, a: Int8MatMulAttrs): void {
  const KW = Math.ceil(a.k / 4);
  if (xq.shape.length !== 2 || xq.shape[1] !== KW + 1)
    throw new Error(`${INT8_MATMUL}: quantized x [${xq.shape.join(', ')}] for K = ${a.k}`);
  const S = w.shape[1] ?? 0;
  const end = Math.max(a.off + a.n, a.seg >= 0 ? a.seg + a.n : 0);
  if (w.shape.length !== 2 || KW > (w.shape[0] ?? 0) || end > S || sw.shape[0] !== S)
    throw new Error(`${INT8_MATMUL}: a [${a.k}, ${a.n}] view (segment ${a.seg}) of [${w.shape.join(', ')}]`);
}

function matmulWebgpu(args: KernelArgs, backend: WebGpuBackendLike): tf.TensorInfo {
  const { XQ: xq, W: w, SW: sw } = args.inputs as { XQ: tf.TensorInfo; W: tf.TensorInfo; SW: tf.TensorInfo };
  const a = args.attrs as unknown as Int8MatMulAttrs;
  checkShapes(xq, w, sw, a);
  const m = xq.shape[0] ?? 0;
  const cols = outCols(a);
  const program = m <= INT8_GEMV_MAX_ROWS ? new Int8GemvProgram(m, cols) : new Int8TiledProgram(m, cols);
  return backend.runWebGPUProgram(program, [xq, w, sw], 'float32', [
    { type: 'int32', data: [m] },
    { type: 'int32', data: [Math.ceil(a.k / 4)] },
    { type: 'int32', data: [a.n] },
    { type: 'int32', data: [w.shape[1] ?? 0] },
    { type: 'int32', data: [a.off] },
    { type: 'int32', data: [Math.max(0, a.seg)] },
    { type: 'int32', data: [a.seg >= 0 ? 1 : 0] },
  ]);
}

/** The signed bytes of a word, as dot4I8Packed reads them. */
function bytesOf(word: number, into: Int8Array, at: number): void {
  into[at] = (word << 24) >> 24;
  into[at + 1] = (word << 16) >> 24;
  into[at + 2] = (word << 8) >> 24;
  into[at + 3] = word >> 24;
}

/** The cpu twin: the same int32 sums (exact), then f32(acc) · s_m · s_o in float32. */
function matmulCpu(args: KernelArgs, be: CpuBackendLike): tf.TensorInfo {
  const { XQ: xq, W: w, SW: sw } = args.inputs as { XQ: tf.TensorInfo; W: tf.TensorInfo; SW: tf.TensorInfo };
  const a = args.attrs as unknown as Int8MatMulAttrs;
  checkShapes(xq, w, sw, a);
  const xw = be.data.get(xq.dataId).values as Int32Array;
  const ww = be.data.get(w.dataId).values as Int32Array;
  const scales = be.data.get(sw.dataId).values as Float32Array;
  const m = xq.shape[0] ?? 0;
  const KW = Math.ceil(a.k / 4);
  const K4 = 4 * KW;
  const S = w.shape[1] ?? 0;
  const N = outCols(a);
  const col = (c: number) => (a.seg >= 0 && c >= a.n ? a.seg + c - a.n : a.off + c);
  // Unpack once: x [m, K4] and W's used columns [N, K4] (zero-padded like the words).
  const xb = new Int8Array(m * K4);
  for (let r = 0; r < m; r++) for (let j = 0; j < KW; j++) bytesOf(xw[r * (KW + 1) + j]!, xb, r * K4 + 4 * j);
  const wb = new Int8Array(N * K4);
  for (let c = 0; c < N; c++) for (let j = 0; j < KW; j++) bytesOf(ww[j * S + col(c)]!, wb, c * K4 + 4 * j);
  const sm = new Float32Array(
    new Int32Array(Array.from({ length: m }, (_, r) => xw[r * (KW + 1) + KW]!)).buffer,
  );
  const out = new Float32Array(m * N);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < N; c++) {
      let acc = 0;
      for (let k = 0; k < K4; k++) acc += xb[r * K4 + k]! * wb[c * K4 + k]!;
      out[r * N + c] = Math.fround(Math.fround(Math.fround(acc) * sm[r]!) * scales[col(c)]!);
    }
  return be.makeTensorInfo([m, N], 'float32', out);
}

registerTwins(INT8_MATMUL, matmulWebgpu, matmulCpu);

/** x [M, K] → its int8 words and scales [M, ⌈K/4⌉ + 1] (int32) on the active backend (webgpu or cpu). */
export function quantizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.engine().runKernel(INT8_QUANTIZE, { X: x }) as tf.Tensor2D;
}

/**
 * Quantized x (from `quantizeRows`, K = k columns) @ the [k, n] block of int8 W at column `off` (default 0)
 * → [M, n]; with `seg`, also the block at column `seg`, side by side: [M, 2n].
 */
export function int8MatMul(
  xq: tf.Tensor2D,
  words: tf.Tensor2D,
  scales: tf.Tensor1D,
  k: number,
  n: number,
  opts: { off?: number; seg?: number } = {},
): tf.Tensor2D {
  const attrs: Int8MatMulAttrs = { k, n, off: opts.off ?? 0, seg: opts.seg ?? -1 };
  return tf
    .engine()
    .runKernel(
      INT8_MATMUL,
      { XQ: xq, W: words, SW: scales },
      attrs as unknown as tf.NamedAttrMap,
    ) as tf.Tensor2D;
}

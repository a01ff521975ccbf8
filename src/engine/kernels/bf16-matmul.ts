// x @ W where W is stored as bfloat16 pairs packed in 32-bit words: word [k, j] holds W[k, 2j] in its low half
// and W[k, 2j+1] in its high half. A bf16 value is the top half of a float32, so the shader decodes it with
// one shift or mask (exact): half the memory and bandwidth of float32 weights, the same float32 products.
// A prefix view (the first k rows and n columns, e.g. a narrower FFN of an elastic view) is the same buffer
// read with the parent's row stride: no copy. A segmented product reads two column ranges of one buffer
// (gate|up stored side by side): output [M, 2n] = [x @ W[:, 0:n], x @ W[:, 2·seg : 2·seg + n]].
//
// The webgpu programs (matmul-programs.ts) are chosen per shape by the table in matmul-table.ts; the cpu
// twin below is the reference in tests.
import * as tf from '@tensorflow/tfjs-core';
import { kernelFor } from './matmul-table';
import { matMulProgram } from './matmul-programs';
import { type CpuBackendLike, type KernelArgs, type WebGpuBackendLike, registerTwins } from './register';

export const BF16_MATMUL = 'MatformerBf16MatMul';

export interface Bf16MatMulAttrs {
  /** Rows of W used (the reduction length; ≤ the packed rows). */
  k: number;
  /** Columns of W used (per segment; ≤ 2 × words per row). */
  n: number;
  /** Word offset of the (first) column segment. */
  off: number;
  /** Word offset of the second column segment, or -1 for one segment. */
  seg: number;
}

/**
 * Packs W given torch-style as [out, in] row-major float32 into words [in, S] (transposed, so x @ W) at word
 * column `at` of a buffer of S words per row (S = ⌈out/2⌉ and at = 0 for a weight of its own). Returns false
 * when some value is not a bfloat16 (low 16 bits set): packing must be exact. Blocked over `in` so reads and
 * writes both stay within a few cache lines (a full E4B packs in seconds, not minutes).
 */
export function packBf16Into(
  w: Float32Array,
  out: number,
  inp: number,
  packed: Int32Array,
  S: number,
  at: number,
): boolean {
  if (w.length !== out * inp) throw new RangeError(`${w.length} weights given for a [${out}, ${inp}] matrix`);
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  let low = 0;
  const BLOCK = 64;
  for (let k0 = 0; k0 < inp; k0 += BLOCK) {
    const k1 = Math.min(inp, k0 + BLOCK);
    for (let o = 0; o < out; o += 2) {
      const r0 = o * inp;
      const r1 = r0 + inp;
      const pair = o + 1 < out;
      const col = at + (o >> 1);
      for (let k = k0; k < k1; k++) {
        const a = bits[r0 + k]!;
        const b = pair ? bits[r1 + k]! : 0;
        low |= (a | b) & 0xffff;
        packed[k * S + col] = (b & 0xffff0000) | (a >>> 16);
      }
    }
  }
  return low === 0;
}

/** W [out, in] (torch layout) as its own packed words [in, ⌈out/2⌉], or null when not all bfloat16. */
export function packBf16Transposed(w: Float32Array, out: number, inp: number): Int32Array | null {
  const S = Math.ceil(out / 2);
  const packed = new Int32Array(inp * S);
  return packBf16Into(w, out, inp, packed, S, 0) ? packed : null;
}

function checkShapes(x: tf.TensorInfo, w: tf.TensorInfo, a: Bf16MatMulAttrs): void {
  if (x.shape.length !== 2 || w.shape.length !== 2) throw new Error(`${BF16_MATMUL}: x and W must be 2-D`);
  if (x.shape[1] !== a.k) throw new Error(`${BF16_MATMUL}: x has ${x.shape[1]} columns, W uses ${a.k} rows`);
  const words = w.shape[1] ?? 0;
  const end = Math.max(2 * a.off + a.n, a.seg >= 0 ? 2 * a.seg + a.n : 0);
  if (a.k > (w.shape[0] ?? 0) || end > 2 * words || (a.seg >= 0 && a.n % 2 !== 0))
    throw new Error(
      `${BF16_MATMUL}: a [${a.k}, ${a.n}] view (segment ${a.seg}) of packed [${w.shape.join(', ')}]`,
    );
}

function outCols(a: Bf16MatMulAttrs): number {
  return a.seg >= 0 ? 2 * a.n : a.n;
}

function webgpuKernel(args: KernelArgs, backend: WebGpuBackendLike): tf.TensorInfo {
  const { X: x, W: w } = args.inputs as { X: tf.TensorInfo; W: tf.TensorInfo };
  const a = args.attrs as unknown as Bf16MatMulAttrs;
  checkShapes(x, w, a);
  const m = x.shape[0] ?? 0;
  const cols = outCols(a);
  const program = matMulProgram(kernelFor(m, a.k, cols), m, a.k, cols);
  return backend.runWebGPUProgram(program, [x, w], 'float32', [
    { type: 'int32', data: [m] },
    { type: 'int32', data: [a.k] },
    { type: 'int32', data: [a.n] },
    { type: 'int32', data: [w.shape[1] ?? 0] },
    { type: 'int32', data: [a.off] },
    { type: 'int32', data: [Math.max(0, a.seg)] },
    { type: 'int32', data: [a.seg >= 0 ? 1 : 0] },
  ]);
}

/** The cpu twin: the same product in plain JavaScript (float32 operands, k ascending). */
function cpuKernel(args: KernelArgs, be: CpuBackendLike): tf.TensorInfo {
  const { X: x, W: w } = args.inputs as { X: tf.TensorInfo; W: tf.TensorInfo };
  const a = args.attrs as unknown as Bf16MatMulAttrs;
  checkShapes(x, w, a);
  const xv = be.data.get(x.dataId).values as Float32Array;
  const words = new Uint32Array((be.data.get(w.dataId).values as Int32Array).buffer);
  const S = w.shape[1] ?? 0;
  const m = x.shape[0] ?? 0;
  const K = a.k;
  const N = outCols(a);
  const wf = new Float32Array(K * N);
  const wb = new Uint32Array(wf.buffer);
  for (let k = 0; k < K; k++)
    for (let c = 0; c < N; c++) {
      const src = a.seg >= 0 && c >= a.n ? 2 * a.seg + c - a.n : 2 * a.off + c;
      const u = words[k * S + (src >> 1)]!;
      wb[k * N + c] = (src & 1) === 1 ? u & 0xffff0000 : (u << 16) >>> 0;
    }
  const out = new Float32Array(m * N);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < N; c++) {
      let s = 0;
      for (let k = 0; k < K; k++) s = Math.fround(s + Math.fround(xv[r * K + k]! * wf[k * N + c]!));
      out[r * N + c] = s;
    }
  return be.makeTensorInfo([m, N], 'float32', out);
}

registerTwins(BF16_MATMUL, webgpuKernel, cpuKernel);

/**
 * x [M, k] @ (the [k, n] block of packed W at word column `off`, default 0: a prefix) → [M, n] on the active
 * backend (webgpu or cpu); with `seg`, also the [k, n] block at word column `seg`, side by side: [M, 2n].
 * A segmented product needs an even n (each word's two columns in one segment).
 */
export function bf16MatMul(
  x: tf.Tensor2D,
  packed: tf.Tensor2D,
  k: number,
  n: number,
  opts: { off?: number; seg?: number } = {},
): tf.Tensor2D {
  const attrs: Bf16MatMulAttrs = { k, n, off: opts.off ?? 0, seg: opts.seg ?? -1 };
  return tf
    .engine()
    .runKernel(BF16_MATMUL, { X: x, W: packed }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

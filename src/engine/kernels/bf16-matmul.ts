// x @ W where W is stored as bfloat16 pairs packed in 32-bit words: word [k, j] holds W[k, 2j] in its low half
// and W[k, 2j+1] in its high half. A bf16 value is the top half of a float32, so the shader decodes it with
// one shift or mask (exact): half the memory and bandwidth of float32 weights, the same float32 products.
// A prefix view (the first k rows and n columns, e.g. a narrower FFN of an elastic view) is the same buffer
// read with the parent's row stride: no copy.
//
// Two programs of one family: the webgpu one (register-tiled, both operands staged in workgroup memory,
// vec4 loads of x where the reduction length allows) and its cpu-backend twin, the reference in tests.
import * as tf from '@tensorflow/tfjs-core';
import { type CpuBackendLike, type KernelArgs, type WebGpuBackendLike, registerTwins } from './register';

export const BF16_MATMUL = 'MatformerBf16MatMul';

export interface Bf16MatMulAttrs {
  /** Rows of W used (the reduction length; ≤ the packed rows). */
  k: number;
  /** Columns of W used (≤ 2 × words per row). */
  n: number;
}

/**
 * Packs W given torch-style as [out, in] row-major float32 into [in, ⌈out/2⌉] words (transposed, so x @ W).
 * Returns null when some value is not a bfloat16 (low 16 bits set): packing must be exact.
 */
export function packBf16Transposed(w: Float32Array, out: number, inp: number): Int32Array | null {
  if (w.length !== out * inp) throw new RangeError(`${w.length} weights given for a [${out}, ${inp}] matrix`);
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0xffff) !== 0) return null;
  const words = Math.ceil(out / 2);
  const packed = new Int32Array(inp * words);
  for (let o = 0; o < out; o++) {
    const row = o * inp;
    const j = o >> 1;
    const high = (o & 1) === 1;
    for (let k = 0; k < inp; k++) {
      const b = bits[row + k]!; // row + k < out·inp = bits.length
      const at = k * words + j;
      packed[at] = high ? packed[at]! | (b & 0xffff0000) : packed[at]! | (b >>> 16);
    }
  }
  return packed;
}

/** Workgroup shape and per-thread work: threads wx × wy, each `rows` × `cols` outputs; `tk` rows of W per step. */
export interface MatMulTile {
  readonly wx: number;
  readonly wy: number;
  readonly rows: number;
  readonly cols: number;
  readonly tk: number;
}

/**
 * The tile table: per adapter family, one tile for skinny products (decode, the MMLU head: a few rows) and
 * one for wide ones (prefill). Workgroup memory stays ≤ 16 KiB (WebGPU's guaranteed minimum).
 */
const TILE_TABLE: Record<string, { skinny: MatMulTile; wide: MatMulTile }> = {
  // Discrete GPUs: 256 threads, 64×64 output tiles.
  gpu: {
    skinny: { wx: 64, wy: 1, rows: 4, cols: 4, tk: 8 },
    wide: { wx: 16, wy: 16, rows: 4, cols: 4, tk: 16 },
  },
  // CPU adapters (lavapipe, SwiftShader): a workgroup runs on one core, so fewer threads per workgroup.
  software: {
    skinny: { wx: 32, wy: 1, rows: 4, cols: 4, tk: 16 },
    wide: { wx: 8, wy: 8, rows: 4, cols: 4, tk: 16 },
  },
};

let tileFamily: keyof typeof TILE_TABLE = 'gpu';

/** Chooses the tile table row for the active adapter (called when the webgpu backend starts). */
export function setTileFamily(software: boolean): void {
  tileFamily = software ? 'software' : 'gpu';
}

export function tileFor(m: number): MatMulTile {
  const t = TILE_TABLE[tileFamily]!;
  return m <= t.skinny.rows * t.skinny.wy * 2 ? t.skinny : t.wide;
}

/** Bytes of workgroup memory a tile uses (x tile + decoded W tile, float32). */
export function tileWorkgroupBytes(t: MatMulTile): number {
  return 4 * (t.wy * t.rows * t.tk + t.tk * t.wx * t.cols);
}

class Bf16MatMulProgram {
  readonly variableNames = ['X', 'W'];
  readonly outputShape: number[];
  readonly shaderKey: string;
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number];
  readonly uniforms = 'm : i32, k : i32, n : i32, rowStride : i32,';
  readonly variableComponents: number[];
  private readonly vec4: boolean;

  constructor(
    m: number,
    k: number,
    n: number,
    private readonly tile: MatMulTile,
  ) {
    this.outputShape = [m, n];
    this.vec4 = k % 4 === 0 && tile.tk % 4 === 0;
    this.variableComponents = [this.vec4 ? 4 : 1, 1];
    const tm = tile.wy * tile.rows;
    const tn = tile.wx * tile.cols;
    this.workgroupSize = [tile.wx, tile.wy, 1];
    this.dispatch = [Math.ceil(n / tn), Math.ceil(m / tm), 1];
    this.shaderKey = `bf16mm_${tile.wx}_${tile.wy}_${tile.rows}_${tile.cols}_${tile.tk}_${this.vec4}`;
  }

  getUserCode(): string {
    const { wx, wy, rows: R, cols: C, tk: TK } = this.tile;
    const TM = wy * R;
    const TN = wx * C;
    const loadX = this.vec4
      ? `for (var i = tid; i < ${(TM * TK) / 4}; i += ${wx * wy}) {
          let r = i / ${TK / 4};
          let kk = (i % ${TK / 4}) * 4;
          let gr = row0 + r;
          let gk = k0 + kk;
          var v = vec4<f32>(0.0);
          if (gr < M && gk < K) { v = X[(gr * K + gk) / 4]; }
          xs[r * ${TK} + kk] = v.x;
          xs[r * ${TK} + kk + 1] = v.y;
          xs[r * ${TK} + kk + 2] = v.z;
          xs[r * ${TK} + kk + 3] = v.w;
        }`
      : `for (var i = tid; i < ${TM * TK}; i += ${wx * wy}) {
          let r = i / ${TK};
          let kk = i % ${TK};
          let gr = row0 + r;
          let gk = k0 + kk;
          var v = 0.0;
          if (gr < M && gk < K) { v = X[gr * K + gk]; }
          xs[i] = v;
        }`;
    return `
      var<workgroup> xs : array<f32, ${TM * TK}>;
      var<workgroup> ws : array<f32, ${TK * TN}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let tid = ty * ${wx} + tx;
        let row0 = i32(workgroupId.y) * ${TM};
        let col0 = i32(workgroupId.x) * ${TN};
        let M = uniforms.m;
        let K = uniforms.k;
        let N = uniforms.n;
        let S = uniforms.rowStride;
        var acc : array<array<f32, ${C}>, ${R}>;
        for (var k0 = 0; k0 < K; k0 += ${TK}) {
          ${loadX}
          for (var i = tid; i < ${(TK * TN) / 2}; i += ${wx * wy}) {
            let kk = i / ${TN / 2};
            let j = i % ${TN / 2};
            let gk = k0 + kk;
            let gc = col0 + 2 * j;
            var lo = 0.0;
            var hi = 0.0;
            if (gk < K && gc < N) {
              let u = bitcast<u32>(W[gk * S + col0 / 2 + j]);
              lo = bitcast<f32>(u << 16u);
              if (gc + 1 < N) { hi = bitcast<f32>(u & 0xffff0000u); }
            }
            ws[kk * ${TN} + 2 * j] = lo;
            ws[kk * ${TN} + 2 * j + 1] = hi;
          }
          workgroupBarrier();
          for (var kk = 0; kk < ${TK}; kk++) {
            var a : array<f32, ${R}>;
            for (var r = 0; r < ${R}; r++) { a[r] = xs[(ty * ${R} + r) * ${TK} + kk]; }
            for (var c = 0; c < ${C}; c++) {
              let w = ws[kk * ${TN} + tx * ${C} + c];
              for (var r = 0; r < ${R}; r++) { acc[r][c] = acc[r][c] + a[r] * w; }
            }
          }
          workgroupBarrier();
        }
        for (var r = 0; r < ${R}; r++) {
          let gr = row0 + ty * ${R} + r;
          for (var c = 0; c < ${C}; c++) {
            let gc = col0 + tx * ${C} + c;
            if (gr < M && gc < N) { result[gr * N + gc] = acc[r][c]; }
          }
        }
      }
    `;
  }
}

function checkShapes(x: tf.TensorInfo, w: tf.TensorInfo, a: Bf16MatMulAttrs): void {
  if (x.shape.length !== 2 || w.shape.length !== 2) throw new Error(`${BF16_MATMUL}: x and W must be 2-D`);
  if (x.shape[1] !== a.k) throw new Error(`${BF16_MATMUL}: x has ${x.shape[1]} columns, W uses ${a.k} rows`);
  if (a.k > w.shape[0]! || a.n > 2 * w.shape[1]!)
    throw new Error(`${BF16_MATMUL}: a [${a.k}, ${a.n}] view of packed [${w.shape.join(', ')}]`);
}

function webgpuKernel(args: KernelArgs, backend: WebGpuBackendLike): tf.TensorInfo {
  const { X: x, W: w } = args.inputs as { X: tf.TensorInfo; W: tf.TensorInfo };
  const a = args.attrs as unknown as Bf16MatMulAttrs;
  checkShapes(x, w, a);
  const m = x.shape[0]!;
  const program = new Bf16MatMulProgram(m, a.k, a.n, tileFor(m));
  return backend.runWebGPUProgram(program, [x, w], 'float32', [
    { type: 'int32', data: [m] },
    { type: 'int32', data: [a.k] },
    { type: 'int32', data: [a.n] },
    { type: 'int32', data: [w.shape[1]!] },
  ]);
}

/** The cpu twin: the same product in plain JavaScript (float32 operands, k ascending). */
function cpuKernel(args: KernelArgs, be: CpuBackendLike): tf.TensorInfo {
  const { X: x, W: w } = args.inputs as { X: tf.TensorInfo; W: tf.TensorInfo };
  const a = args.attrs as unknown as Bf16MatMulAttrs;
  checkShapes(x, w, a);
  const xv = be.data.get(x.dataId).values as Float32Array;
  const words = new Uint32Array((be.data.get(w.dataId).values as Int32Array).buffer);
  const S = w.shape[1]!;
  const m = x.shape[0]!;
  const { k: K, n: N } = a;
  const wf = new Float32Array(K * N);
  const wb = new Uint32Array(wf.buffer);
  for (let k = 0; k < K; k++)
    for (let c = 0; c < N; c++) {
      const u = words[k * S + (c >> 1)]!;
      wb[k * N + c] = (c & 1) === 1 ? u & 0xffff0000 : (u << 16) >>> 0;
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

/** x [M, k] @ (the [k, n] prefix of packed W) → [M, n] on the active backend (webgpu or cpu). */
export function bf16MatMul(x: tf.Tensor2D, packed: tf.Tensor2D, k: number, n: number): tf.Tensor2D {
  const attrs: Bf16MatMulAttrs = { k, n };
  return tf
    .engine()
    .runKernel(BF16_MATMUL, { X: x, W: packed }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

// Fused per-row programs: one workgroup per row, one dispatch instead of a chain of element-wise ops.
//   RMSNorm (+ scale): x / sqrt(mean(x²) + eps) · w                                    (6 ops → 1)
//   GeluGate: gelu_tanh(sparsify(gate)) ⊙ up, with the gaussian top-k shift of §3.5      (~20 ops → 1)
//   NormRope: per head, RMSNorm (+scale), NeoX RoPE, and [B, T, heads, D] → [B, heads, T, D]  (7 ops → 1)
// Each has its cpu twin; both follow the op order of the TF.js composition in gemma3n.ts.
import * as tf from '@tensorflow/tfjs-core';
import {
  type CpuBackendLike,
  type KernelArgs,
  ROW_INDEX,
  type WebGpuBackendLike,
  registerTwins,
  rowDispatch,
  workgroupSum,
} from './register';

export const RMS_NORM = 'MatformerRmsNorm';
export const GELU_GATE = 'MatformerGeluGate';
export const NORM_ROPE = 'MatformerNormRope';
export const STREAMS_ADD = 'MatformerStreamsAdd';

const WG = 64;
const SQRT_2_OVER_PI = 0.7978845608028654;

/** tanh as TF.js's webgpu backend writes it (no overflow for large |a|). */
export const TANH = `
  fn tanhSafe(a : f32) -> f32 {
    let e = exp(-2.0 * abs(a));
    return sign(a) * (1.0 - e) / (1.0 + e);
  }`;

abstract class RowProgram {
  abstract readonly variableNames: string[];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WG, 1, 1];
  abstract readonly shaderKey: string;
  abstract readonly uniforms: string;

  constructor(rows: number, width: number) {
    this.outputShape = [rows, width];
    this.dispatch = rowDispatch(rows);
  }

  abstract body(): string;

  getUserCode(): string {
    return `
      var<workgroup> red : array<f32, ${WG}>;
      ${TANH}
      fn main(index : i32) {
        let row = ${ROW_INDEX};
        let lid = i32(localId.x);
        let W = uniforms.width;
        // No early return: barriers must stay in uniform control flow (row is per workgroup anyway).
        let valid = row < uniforms.rows;
        let base = select(0, row * W, valid);
        ${this.body()}
      }`;
  }
}

/**
 * RMSNorm (+ scale) of X, and with `residuals` ≥ 1 the residual sum around it: ((R1 + y) + R2) / divisor, the
 * order of the TF.js adds it replaces (LAuReL's n + y, the layer's (a + y) + laurel over √2, h1 + y).
 */
class RmsNormProgram extends RowProgram {
  readonly variableNames: string[];
  readonly shaderKey: string;
  readonly uniforms = 'rows : i32, width : i32, eps : f32, divisor : f32,';

  constructor(
    rows: number,
    width: number,
    private readonly scaled: boolean,
    private readonly residuals: 0 | 1 | 2 = 0,
  ) {
    super(rows, width);
    this.variableNames = ['X', ...(scaled ? ['G'] : []), ...['R1', 'R2'].slice(0, residuals)];
    this.shaderKey = `mf_rmsnorm_${scaled}_${residuals}`;
  }

  body(): string {
    const y = `X[base + i] / denom${this.scaled ? ' * G[i]' : ''}`;
    const value =
      this.residuals === 0
        ? y
        : `(${this.residuals === 2 ? '(R1[base + i] + y) + R2[base + i]' : 'R1[base + i] + y'}) / uniforms.divisor`;
    return `
      var acc = 0.0;
      for (var i = lid; i < W; i += ${WG}) { let v = X[base + i]; acc = acc + v * v; }
      ${workgroupSum(WG, 'acc', 'total')}
      let denom = sqrt(total / f32(W) + uniforms.eps);
      for (var i = lid; valid && i < W; i += ${WG}) {
        let y = ${y};
        result[base + i] = ${value};
      }`;
  }
}

/**
 * The per-layer input's last step: streams S [rows, N, W] + RMSNorm(X)·G on every stream but the first (the
 * `[1:]` of transformers), instead of a norm, an outer product with [0, 1, …, 1] and an add.
 */
class StreamsAddProgram {
  readonly variableNames = ['X', 'G', 'S'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly shaderKey = 'mf_streams_add';
  readonly uniforms = 'rows : i32, width : i32, eps : f32, n : i32,';

  constructor(rows: number, n: number, width: number) {
    this.outputShape = [rows * n, width];
    this.dispatch = rowDispatch(rows);
  }

  getUserCode(): string {
    return `
      var<workgroup> red : array<f32, ${WG}>;
      fn main(index : i32) {
        let row = ${ROW_INDEX};
        let lid = i32(localId.x);
        let W = uniforms.width;
        let N = uniforms.n;
        let valid = row < uniforms.rows;
        let base = select(0, row * W, valid);
        var acc = 0.0;
        for (var i = lid; i < W; i += ${WG}) { let v = X[base + i]; acc = acc + v * v; }
        ${workgroupSum(WG, 'acc', 'total')}
        let denom = sqrt(total / f32(W) + uniforms.eps);
        for (var j = 0; valid && j < N; j++) {
          let at = (row * N + j) * W;
          for (var i = lid; i < W; i += ${WG}) {
            let s = S[at + i];
            result[at + i] = select(s, s + X[base + i] / denom * G[i], j >= 1);
          }
        }
      }`;
  }
}

registerTwins(
  STREAMS_ADD,
  (args, be: WebGpuBackendLike) => {
    const { X: x, G: g, S: st } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = (args.attrs as { eps: number }).eps;
    const [rows = 0, N = 0, W = 0] = st!.shape;
    return be.runWebGPUProgram(new StreamsAddProgram(rows, N, W), [x!, g!, st!], 'float32', [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [W] },
      { type: 'float32', data: [eps] },
      { type: 'int32', data: [N] },
    ]);
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { X: x, G: g, S: st } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = (args.attrs as { eps: number }).eps;
    const v = (t: tf.TensorInfo | undefined) => be.data.get(t!.dataId).values as Float32Array;
    const [xv, gv, sv] = [v(x), v(g), v(st)];
    const [rows = 0, N = 0, W = 0] = st!.shape;
    const out = Float32Array.from(sv);
    for (let row = 0; row < rows; row++) {
      const base = row * W;
      let s = 0;
      for (let i = 0; i < W; i++) s = fr(s + fr(xv[base + i]! * xv[base + i]!));
      const denom = fr(Math.sqrt(fr(fr(s / W) + eps)));
      for (let j = 1; j < N; j++)
        for (let i = 0; i < W; i++) {
          const at = (row * N + j) * W + i;
          out[at] = fr(sv[at]! + fr(fr(xv[base + i]! / denom) * gv[i]!));
        }
    }
    return be.makeTensorInfo([rows * N, W], 'float32', out);
  },
);

/** Gate and up as two tensors [rows, W], or `fused`: one [rows, 2W] tensor, gate then up in each row. */
class GeluGateProgram extends RowProgram {
  readonly variableNames: string[];
  readonly shaderKey: string;
  /** `upOffset`: where Up's rows begin, a slab of a larger [L, rows, W] tensor (the per-layer inputs). */
  readonly uniforms = 'rows : i32, width : i32, z : f32, upOffset : i32,';

  constructor(
    rows: number,
    width: number,
    private readonly sparse: boolean,
    private readonly fused: boolean,
  ) {
    super(rows, width);
    this.variableNames = fused ? ['Gate'] : ['Gate', 'Up'];
    this.shaderKey = `mf_gelugate_${sparse}_${fused}`;
  }

  body(): string {
    const shift = this.sparse
      ? `
      var s1 = 0.0;
      for (var i = lid; i < W; i += ${WG}) { s1 = s1 + Gate[gb + i]; }
      ${workgroupSum(WG, 's1', 'sum')}
      let mean = sum / f32(W);
      var s2 = 0.0;
      for (var i = lid; i < W; i += ${WG}) { let d = Gate[gb + i] - mean; s2 = s2 + d * d; }
      ${workgroupSum(WG, 's2', 'sq')}
      let cut = mean + sqrt(sq / f32(W)) * uniforms.z;`
      : '';
    return `
      let gb = ${this.fused ? 'select(0, row * 2 * W, valid)' : 'base'};
      ${shift}
      for (var i = lid; valid && i < W; i += ${WG}) {
        var x = Gate[gb + i];
        ${this.sparse ? 'x = max(x - cut, 0.0);' : ''}
        let inner = (x + x * x * x * 0.044715) * ${SQRT_2_OVER_PI};
        result[base + i] = x * 0.5 * (tanhSafe(inner) + 1.0) * ${this.fused ? 'Gate[gb + W + i]' : 'Up[uniforms.upOffset + base + i]'};
      }`;
  }
}

class NormRopeProgram extends RowProgram {
  readonly variableNames: string[];
  readonly shaderKey: string;
  readonly uniforms = 'rows : i32, width : i32, eps : f32, heads : i32, T : i32,';

  constructor(
    rows: number,
    width: number,
    private readonly scaled: boolean,
    private readonly rope: boolean,
  ) {
    super(rows, width);
    this.variableNames = ['X', ...(scaled ? ['G'] : []), ...(rope ? ['Cos', 'Sin'] : [])];
    this.shaderKey = `mf_normrope_${scaled}_${rope}`;
  }

  body(): string {
    const n = (i: string) => `(X[base + ${i}] / denom${this.scaled ? ` * G[${i}]` : ''})`;
    const value = this.rope
      ? `${n('i')} * Cos[base + i] + select(${n('i - half')}, -${n('i + half')}, i < half) * Sin[base + i]`
      : n('i');
    return `
      var acc = 0.0;
      for (var i = lid; i < W; i += ${WG}) { let v = X[base + i]; acc = acc + v * v; }
      ${workgroupSum(WG, 'acc', 'total')}
      let denom = sqrt(total / f32(W) + uniforms.eps);
      let half = W / 2;
      // Row (b, t, h) of the input goes to row (b, h, t) of the output.
      let h = row % uniforms.heads;
      let bt = row / uniforms.heads;
      let t = bt % uniforms.T;
      let b = bt / uniforms.T;
      let outBase = ((b * uniforms.heads + h) * uniforms.T + t) * W;
      for (var i = lid; valid && i < W; i += ${WG}) {
        result[outBase + i] = ${value};
      }`;
  }
}

const rowsOf = (x: tf.TensorInfo) => x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
const widthOf = (x: tf.TensorInfo) => x.shape[x.shape.length - 1]!;
const fr = Math.fround;

registerTwins(
  RMS_NORM,
  (args, be: WebGpuBackendLike) => {
    const { X: x, G: g, R1: r1, R2: r2 } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { eps, divisor = 1 } = args.attrs as { eps: number; divisor?: number };
    const rows = rowsOf(x!);
    const W = widthOf(x!);
    const residuals = r2 ? 2 : r1 ? 1 : 0;
    const inputs = [x!, ...(g ? [g] : []), ...(r1 ? [r1] : []), ...(r2 ? [r2] : [])];
    return be.runWebGPUProgram(new RmsNormProgram(rows, W, !!g, residuals), inputs, 'float32', [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [W] },
      { type: 'float32', data: [eps] },
      { type: 'float32', data: [divisor] },
    ]);
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { X: x, G: g, R1: r1, R2: r2 } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { eps, divisor = 1 } = args.attrs as { eps: number; divisor?: number };
    const v = (t: tf.TensorInfo | undefined) => (t ? (be.data.get(t.dataId).values as Float32Array) : null);
    const xv = v(x)!;
    const [gv, r1v, r2v] = [v(g), v(r1), v(r2)];
    const W = widthOf(x!);
    const out = new Float32Array(xv.length);
    for (let base = 0; base < xv.length; base += W) {
      let s = 0;
      for (let i = 0; i < W; i++) s = fr(s + fr(xv[base + i]! * xv[base + i]!));
      const denom = fr(Math.sqrt(fr(fr(s / W) + eps)));
      for (let i = 0; i < W; i++) {
        const q = fr(xv[base + i]! / denom);
        const y = gv ? fr(q * gv[i]!) : q;
        if (!r1v) out[base + i] = y;
        else {
          const t = fr(r1v[base + i]! + y);
          out[base + i] = fr((r2v ? fr(t + r2v[base + i]!) : t) / divisor);
        }
      }
    }
    return be.makeTensorInfo(x!.shape, 'float32', out);
  },
);

function geluTanh(x: number): number {
  const inner = fr(fr(x + fr(fr(fr(x * x) * x) * 0.044715)) * SQRT_2_OVER_PI);
  return fr(fr(x * 0.5) * fr(Math.tanh(inner) + 1));
}

registerTwins(
  GELU_GATE,
  (args, be: WebGpuBackendLike) => {
    const { Gate: g, Up: u } = args.inputs as { Gate: tf.TensorInfo; Up?: tf.TensorInfo };
    const { z, upRow } = args.attrs as unknown as GeluGateAttrs;
    const rows = rowsOf(g);
    const W = u ? widthOf(g) : widthOf(g) / 2;
    const program = new GeluGateProgram(rows, W, z !== 0, !u);
    return be.runWebGPUProgram(program, u ? [g, u] : [g], 'float32', [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [W] },
      { type: 'float32', data: [z] },
      { type: 'int32', data: [upRow * rows * W] },
    ]);
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { Gate: g, Up: u } = args.inputs as { Gate: tf.TensorInfo; Up?: tf.TensorInfo };
    const { z, upRow } = args.attrs as unknown as GeluGateAttrs;
    const fused = be.data.get(g.dataId).values as Float32Array;
    const W = u ? widthOf(g) : widthOf(g) / 2;
    const rows = rowsOf(g);
    // Fused [rows, 2W] input: split into the two halves the loop below reads.
    const gv = u ? fused : new Float32Array(rows * W);
    const uv = u
      ? (be.data.get(u.dataId).values as Float32Array).subarray(upRow * rows * W, (upRow + 1) * rows * W)
      : new Float32Array(rows * W);
    if (!u)
      for (let r = 0; r < rows; r++) {
        gv.set(fused.subarray(2 * r * W, (2 * r + 1) * W), r * W);
        uv.set(fused.subarray((2 * r + 1) * W, (2 * r + 2) * W), r * W);
      }
    const out = new Float32Array(rows * W);
    for (let base = 0; base < gv.length; base += W) {
      let cut = -Infinity;
      if (z !== 0) {
        let s = 0;
        for (let i = 0; i < W; i++) s = fr(s + gv[base + i]!);
        const mean = fr(s / W);
        let q = 0;
        for (let i = 0; i < W; i++) q = fr(q + fr((gv[base + i]! - mean) ** 2));
        cut = fr(mean + fr(fr(Math.sqrt(fr(q / W))) * z));
      }
      for (let i = 0; i < W; i++) {
        const x = z !== 0 ? Math.max(fr(gv[base + i]! - cut), 0) : gv[base + i]!;
        out[base + i] = fr(geluTanh(x) * uv[base + i]!);
      }
    }
    return be.makeTensorInfo([rows, W], 'float32', out);
  },
);

interface GeluGateAttrs {
  z: number;
  /** The slab of Up read (0 for a [rows, W] Up). */
  upRow: number;
}

interface NormRopeAttrs {
  eps: number;
  heads: number;
  T: number;
}

registerTwins(
  NORM_ROPE,
  (args, be: WebGpuBackendLike) => {
    const { X: x, G: g, Cos: cos, Sin: sin } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const a = args.attrs as unknown as NormRopeAttrs;
    const rows = rowsOf(x!);
    const W = widthOf(x!);
    const inputs = [x!, ...(g ? [g] : []), ...(cos && sin ? [cos, sin] : [])];
    return be.runWebGPUProgram(new NormRopeProgram(rows, W, !!g, !!cos), inputs, 'float32', [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [W] },
      { type: 'float32', data: [a.eps] },
      { type: 'int32', data: [a.heads] },
      { type: 'int32', data: [a.T] },
    ]);
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { X: x, G: g, Cos: cos, Sin: sin } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const a = args.attrs as unknown as NormRopeAttrs;
    const v = (t: tf.TensorInfo | undefined) => (t ? (be.data.get(t.dataId).values as Float32Array) : null);
    const xv = v(x)!;
    const [gv, cv, sv] = [v(g), v(cos), v(sin)];
    const W = widthOf(x!);
    const half = W / 2;
    const out = new Float32Array(xv.length);
    const n = new Float32Array(W);
    for (let row = 0; row * W < xv.length; row++) {
      const base = row * W;
      let s = 0;
      for (let i = 0; i < W; i++) s = fr(s + fr(xv[base + i]! * xv[base + i]!));
      const denom = fr(Math.sqrt(fr(fr(s / W) + a.eps)));
      for (let i = 0; i < W; i++)
        n[i] = gv ? fr(fr(xv[base + i]! / denom) * gv[i]!) : fr(xv[base + i]! / denom);
      const h = row % a.heads;
      const bt = Math.floor(row / a.heads);
      const t = bt % a.T;
      const b = Math.floor(bt / a.T);
      const outBase = ((b * a.heads + h) * a.T + t) * W;
      for (let i = 0; i < W; i++) {
        const rot = i < half ? -n[i + half]! : n[i - half]!;
        out[outBase + i] = cv && sv ? fr(fr(n[i]! * cv[base + i]!) + fr(rot * sv[base + i]!)) : n[i]!;
      }
    }
    return be.makeTensorInfo(x!.shape, 'float32', out);
  },
);

/**
 * x [B, T, heads, D] → RMSNorm over D (scaled by w if given), RoPE with the [B, T, heads, D] tables if
 * given, transposed to [B, heads, T, D]: what attention does to q, k and v before the scores.
 */
export function fusedNormRope(
  x: tf.Tensor4D,
  w: tf.Tensor1D | null,
  eps: number,
  rope: { cos: tf.Tensor4D; sin: tf.Tensor4D } | null,
): tf.Tensor4D {
  const [B, T, heads, D] = x.shape;
  const inputs: tf.NamedTensorMap = { X: tf.reshape(x, [-1, D]) };
  if (w) inputs.G = w;
  if (rope) {
    inputs.Cos = tf.reshape(rope.cos, [-1, D]);
    inputs.Sin = tf.reshape(rope.sin, [-1, D]);
  }
  const y = tf.engine().runKernel(NORM_ROPE, inputs, { eps, heads, T }) as tf.Tensor;
  return tf.reshape(y, [B, heads, T, D]);
}

/** x / sqrt(mean(x², last) + eps) · w over the last axis, in one dispatch. */
export function fusedRmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D | null, eps: number): T {
  const W = x.shape[x.shape.length - 1]!;
  const x2 = tf.reshape(x, [-1, W]);
  const inputs: tf.NamedTensorMap = w ? { X: x2, G: w } : { X: x2 };
  const y = tf.engine().runKernel(RMS_NORM, inputs, { eps }) as tf.Tensor;
  return tf.reshape(y, x.shape) as T;
}

/** ((r1 + RMSNorm(x)·w) [+ r2]) / divisor over the last axis, in one dispatch (x, w, r1, r2 of one shape). */
export function fusedNormAdd(
  x: tf.Tensor2D,
  w: tf.Tensor1D,
  eps: number,
  r1: tf.Tensor2D,
  r2: tf.Tensor2D | null = null,
  divisor = 1,
): tf.Tensor2D {
  const inputs: tf.NamedTensorMap = r2 ? { X: x, G: w, R1: r1, R2: r2 } : { X: x, G: w, R1: r1 };
  return tf.engine().runKernel(RMS_NORM, inputs, { eps, divisor }) as tf.Tensor2D;
}

/** streams [M, N, H] + RMSNorm(x [M, H])·w on streams 1.. (stream 0 unchanged), in one dispatch. */
export function fusedStreamsAdd(
  streams: tf.Tensor3D,
  x: tf.Tensor2D,
  w: tf.Tensor1D,
  eps: number,
): tf.Tensor3D {
  const y = tf.engine().runKernel(STREAMS_ADD, { X: x, G: w, S: streams }, { eps }) as tf.Tensor;
  return tf.reshape(y, streams.shape);
}

/** gelu_tanh(gate, shifted by mean + z·std and relu'd when z ≠ 0) ⊙ up, row by row. */
/**
 * `up` is [rows, W], or with `upRow` the slab `upRow` of an [L, rows, W] tensor (a layer's per-layer input,
 * read in place instead of sliced out by a dispatch of its own).
 */
export function fusedGeluGate(
  gate: tf.Tensor2D,
  up: tf.Tensor2D | tf.Tensor3D,
  z: number,
  upRow = 0,
): tf.Tensor2D {
  const rows = gate.shape[0];
  const W = gate.shape[1];
  const slabs = up.rank === 3 ? up.shape[0] : 1;
  if (up.size !== slabs * rows * W || up.shape[up.rank - 1] !== W || upRow < 0 || upRow >= slabs)
    throw new RangeError(`GeluGate: up ${JSON.stringify(up.shape)} has no slab ${upRow} of [${rows}, ${W}]`);
  return tf.engine().runKernel(GELU_GATE, { Gate: gate, Up: up }, { z, upRow }) as tf.Tensor2D;
}

/** The same of one [rows, 2W] tensor holding gate then up in each row (the fused gate|up matmul's output). */
export function fusedGeluGateOf(gateUp: tf.Tensor2D, z: number): tf.Tensor2D {
  return tf.engine().runKernel(GELU_GATE, { Gate: gateUp }, { z, upRow: 0 }) as tf.Tensor2D;
}

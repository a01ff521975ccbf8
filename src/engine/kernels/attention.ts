// Attention of a few new tokens (decode steps) in one program: scores against the cached keys, the additive
// mask, a softmax and the weighted sum of values, written as [B, T, A, D] so o_proj reads it directly
// (instead of two batched matmuls, an add, a softmax and a transpose). One workgroup per query row
// (b, h, t), keys in chunks of WG: chunk max and sum in workgroup memory, a running (online) softmax, each
// thread accumulating its dimensions of the output. GQA: query head h reads K/V head h / (A / Kh).
import * as tf from '@tensorflow/tfjs-core';
import {
  type CpuBackendLike,
  type KernelArgs,
  ROW_INDEX,
  type WebGpuBackendLike,
  registerTwins,
  rowDispatch,
} from './register';

export const ATTENTION = 'MatformerAttention';

const WG = 64;

class AttentionProgram {
  readonly variableNames = ['Q', 'K', 'V', 'Mask'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly shaderKey: string;
  readonly variableComponents = [4, 4, 1, 1];
  readonly uniforms = 'rows : i32, T : i32, S : i32, A : i32, Kh : i32,';

  constructor(
    B: number,
    T: number,
    A: number,
    private readonly d: number,
  ) {
    this.outputShape = [B * T, A * d];
    this.dispatch = rowDispatch(B * A * T);
    this.shaderKey = `mf_attention_${d}`;
  }

  getUserCode(): string {
    const D = this.d;
    const D4 = D / 4;
    const per = Math.ceil(D / WG);
    const dims = Array.from({ length: per }, (_, j) => j);
    const tree = (op: string) => `
        for (var w = ${WG / 2}; w > 0; w = w / 2) {
          if (lid < w) { red[lid] = ${op}; }
          workgroupBarrier();
        }`;
    return `
      var<workgroup> red : array<f32, ${WG}>;
      var<workgroup> prob : array<f32, ${WG}>;
      fn main(index : i32) {
        let row = ${ROW_INDEX};
        let lid = i32(localId.x);
        let T = uniforms.T;
        let S = uniforms.S;
        let A = uniforms.A;
        // No early return: barriers must stay in uniform control flow.
        let valid = row < uniforms.rows;
        let r = select(0, row, valid);
        let t = r % T;
        let h = (r / T) % A;
        let b = r / (T * A);
        let kv = ((b * uniforms.Kh + h / (A / uniforms.Kh)) * S) * ${D};
        let maskAt = (b * T + t) * S;
        var m = -3.0e38;
        var l = 0.0;
        ${dims.map((j) => `var acc${j} = 0.0;`).join(' ')}
        for (var s0 = 0; s0 < S; s0 += ${WG}) {
          let s = s0 + lid;
          var score = -3.0e38;
          if (s < S) {
            var qk = 0.0;
            for (var i = 0; i < ${D4}; i++) { qk = qk + dot(Q[r * ${D4} + i], K[(kv + s * ${D}) / 4 + i]); }
            score = qk + Mask[maskAt + s];
          }
          red[lid] = score;
          workgroupBarrier();
          ${tree('max(red[lid], red[lid + w])')}
          let mNew = max(m, red[0]);
          workgroupBarrier();
          let p = select(0.0, exp(score - mNew), s < S);
          prob[lid] = p;
          red[lid] = p;
          workgroupBarrier();
          ${tree('red[lid] + red[lid + w]')}
          let scale = exp(m - mNew);
          l = l * scale + red[0];
          let n = min(${WG}, S - s0);
          ${dims
            .map(
              (j) => `{
            let d = lid + ${j * WG};
            var a = acc${j} * scale;
            if (d < ${D}) {
              for (var c = 0; c < n; c++) { a = a + prob[c] * V[kv + (s0 + c) * ${D} + d]; }
            }
            acc${j} = a;
          }`,
            )
            .join('\n          ')}
          m = mNew;
          workgroupBarrier();
        }
        let out = ((b * T + t) * A + h) * ${D};
        ${dims.map((j) => `if (valid && lid + ${j * WG} < ${D}) { result[out + lid + ${j * WG}] = acc${j} / l; }`).join('\n        ')}
      }`;
  }
}

const fr = Math.fround;

registerTwins(
  ATTENTION,
  (args: KernelArgs, be: WebGpuBackendLike) => {
    const { Q: q, K: k, V: v, Mask: mask } = args.inputs as Record<string, tf.TensorInfo>;
    const [B = 0, A = 0, T = 0, D = 0] = q!.shape;
    const [, Kh = 0, S = 0] = k!.shape;
    return be.runWebGPUProgram(new AttentionProgram(B, T, A, D), [q!, k!, v!, mask!], 'float32', [
      { type: 'int32', data: [B * A * T] },
      { type: 'int32', data: [T] },
      { type: 'int32', data: [S] },
      { type: 'int32', data: [A] },
      { type: 'int32', data: [Kh] },
    ]);
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { Q: q, K: k, V: v, Mask: mask } = args.inputs as Record<string, tf.TensorInfo>;
    const val = (t: tf.TensorInfo | undefined) => be.data.get(t!.dataId).values as Float32Array;
    const [qv, kv, vv, mv] = [val(q), val(k), val(v), val(mask)];
    const [B = 0, A = 0, T = 0, D = 0] = q!.shape;
    const [, Kh = 0, S = 0] = k!.shape;
    const G = A / Kh;
    const out = new Float32Array(B * T * A * D);
    const score = new Float32Array(S);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < A; h++)
        for (let t = 0; t < T; t++) {
          const qAt = ((b * A + h) * T + t) * D;
          const kvAt = (b * Kh + Math.floor(h / G)) * S * D;
          let max = -Infinity;
          for (let s = 0; s < S; s++) {
            let dot = 0;
            for (let i = 0; i < D; i++) dot = fr(dot + fr(qv[qAt + i]! * kv[kvAt + s * D + i]!));
            score[s] = fr(dot + mv[(b * T + t) * S + s]!);
            max = Math.max(max, score[s]!);
          }
          let sum = 0;
          for (let s = 0; s < S; s++) {
            score[s] = fr(Math.exp(fr(score[s]! - max)));
            sum = fr(sum + score[s]!);
          }
          const at = ((b * T + t) * A + h) * D;
          for (let i = 0; i < D; i++) {
            let acc = 0;
            for (let s = 0; s < S; s++) acc = fr(acc + fr(fr(score[s]! / sum) * vv[kvAt + s * D + i]!));
            out[at + i] = acc;
          }
        }
    return be.makeTensorInfo([B * T, A * D], 'float32', out);
  },
);

/**
 * softmax(q·kᵀ + mask)·v for q [B, A, T, D], k and v [B, Kh, S, D], mask [B, 1, T, S] → [B·T, A·D] (the
 * token-major rows o_proj multiplies). D must be a multiple of 4.
 */
export function fusedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  mask: tf.Tensor4D,
): tf.Tensor2D {
  return tf.engine().runKernel(ATTENTION, { Q: q, K: k, V: v, Mask: mask }) as tf.Tensor2D;
}

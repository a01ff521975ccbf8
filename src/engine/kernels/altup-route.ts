// AltUp's routing (§3.4) in one program per token row: the modalities m = tanh(router(RMSNorm(x)·w / H)) and
// the coefficients c = m @ C (prediction [N, N²] or correction [N, N] coefficients), instead of six dispatches
// (norm, divide, matmul, tanh, matmul). The cpu twin is the reference; both follow that op order.
import * as tf from '@tensorflow/tfjs-core';
import { TANH } from './row-ops';
import {
  type CpuBackendLike,
  type KernelArgs,
  ROW_INDEX,
  type WebGpuBackendLike,
  registerTwins,
  rowDispatch,
  workgroupSum,
} from './register';

export const ALTUP_ROUTE = 'MatformerAltUpRoute';

const WG = 64;

class AltUpRouteProgram {
  readonly variableNames = ['X', 'G', 'R', 'C'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly shaderKey: string;
  readonly uniforms = 'rows : i32, width : i32, k : i32, eps : f32,';

  constructor(
    rows: number,
    k: number,
    private readonly n: number,
  ) {
    this.outputShape = [rows, k];
    this.dispatch = rowDispatch(rows);
    this.shaderKey = `mf_altup_route_${n}`;
  }

  getUserCode(): string {
    const N = this.n;
    return `
      var<workgroup> red : array<f32, ${WG}>;
      ${TANH}
      fn main(index : i32) {
        let row = ${ROW_INDEX};
        let lid = i32(localId.x);
        let W = uniforms.width;
        let K = uniforms.k;
        // No early return: barriers must stay in uniform control flow.
        let valid = row < uniforms.rows;
        let base = select(0, row * W, valid);
        var acc = 0.0;
        for (var i = lid; i < W; i += ${WG}) { let v = X[base + i]; acc = acc + v * v; }
        ${workgroupSum(WG, 'acc', 'total')}
        let denom = sqrt(total / f32(W) + uniforms.eps);
        var modality : array<f32, ${N}>;
        for (var n = 0; n < ${N}; n++) {
          var d = 0.0;
          for (var i = lid; i < W; i += ${WG}) { d = d + X[base + i] / denom * G[i] / f32(W) * R[i * ${N} + n]; }
          ${workgroupSum(WG, 'd', 'dot')}
          modality[n] = tanhSafe(dot);
        }
        for (var k = lid; valid && k < K; k += ${WG}) {
          var s = 0.0;
          for (var n = 0; n < ${N}; n++) { s = s + modality[n] * C[n * K + k]; }
          result[row * K + k] = s;
        }
      }`;
  }
}

const fr = Math.fround;

registerTwins(
  ALTUP_ROUTE,
  (args: KernelArgs, be: WebGpuBackendLike) => {
    const { X: x, G: g, R: r, C: c } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = (args.attrs as { eps: number }).eps;
    const rows = x!.shape[0] ?? 0;
    const W = x!.shape[1] ?? 0;
    const N = r!.shape[1] ?? 0;
    const K = c!.shape[1] ?? 0;
    return be.runWebGPUProgram(new AltUpRouteProgram(rows, K, N), [x!, g!, r!, c!], 'float32', [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [W] },
      { type: 'int32', data: [K] },
      { type: 'float32', data: [eps] },
    ]);
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { X: x, G: g, R: r, C: c } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = (args.attrs as { eps: number }).eps;
    const v = (t: tf.TensorInfo | undefined) => be.data.get(t!.dataId).values as Float32Array;
    const [xv, gv, rv, cv] = [v(x), v(g), v(r), v(c)];
    const rows = x!.shape[0] ?? 0;
    const W = x!.shape[1] ?? 0;
    const N = r!.shape[1] ?? 0;
    const K = c!.shape[1] ?? 0;
    const out = new Float32Array(rows * K);
    const y = new Float32Array(W);
    const modality = new Float32Array(N);
    for (let row = 0; row < rows; row++) {
      const base = row * W;
      let s = 0;
      for (let i = 0; i < W; i++) s = fr(s + fr(xv[base + i]! * xv[base + i]!));
      const denom = fr(Math.sqrt(fr(fr(s / W) + eps)));
      for (let i = 0; i < W; i++) y[i] = fr(fr(fr(xv[base + i]! / denom) * gv[i]!) / W);
      for (let n = 0; n < N; n++) {
        let d = 0;
        for (let i = 0; i < W; i++) d = fr(d + fr(y[i]! * rv[i * N + n]!));
        modality[n] = fr(Math.tanh(d));
      }
      for (let k = 0; k < K; k++) {
        let t = 0;
        for (let n = 0; n < N; n++) t = fr(t + fr(modality[n]! * cv[n * K + k]!));
        out[row * K + k] = t;
      }
    }
    return be.makeTensorInfo([rows, K], 'float32', out);
  },
);

/**
 * tanh(RMSNorm(x)·norm / H @ router) @ coefs for x [M, H], norm [H], router [H, N], coefs [N, K] → [M, K].
 */
export function altupRoute(
  x: tf.Tensor2D,
  norm: tf.Tensor1D,
  router: tf.Tensor2D,
  coefs: tf.Tensor2D,
  eps: number,
): tf.Tensor2D {
  return tf.engine().runKernel(ALTUP_ROUTE, { X: x, G: norm, R: router, C: coefs }, { eps }) as tf.Tensor2D;
}

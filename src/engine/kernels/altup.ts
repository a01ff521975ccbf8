// AltUp predict and correct (§3.4) as element-wise programs over the streams [M, N, H], each in two modes:
// all streams ([M, N, H]) or just the active one ([M, H], stream 0), so neither needs a strided slice.
//   predict: Pred_j = S_j + Σ_i c[N·j + i] · S_i           (c = prediction coefficients [M, N²])
//   correct: Corr_j = Pred_j + (d_j + 1) · (act − Pred_0)  (d = correction coefficients [M, N])
// The sums run over i ascending, as TF.js's batched matMul does; the cpu twins are the reference.
import * as tf from '@tensorflow/tfjs-core';
import { type CpuBackendLike, type KernelArgs, type WebGpuBackendLike, registerTwins } from './register';

export const ALTUP_PREDICT = 'MatformerAltUpPredict';
export const ALTUP_CORRECT = 'MatformerAltUpCorrect';

interface Mode {
  /** Only stream 0: output [M, H]. */
  active: boolean;
}

class AltUpProgram {
  readonly outputShape: number[];
  readonly shaderKey: string;
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [64, 1, 1];
  readonly uniforms = 'M : i32, N : i32, H : i32,';
  readonly size = true;

  constructor(
    readonly variableNames: string[],
    private readonly kind: 'predict' | 'correct',
    private readonly active: boolean,
    M: number,
    N: number,
    H: number,
  ) {
    this.outputShape = active ? [M, H] : [M * N, H];
    this.dispatch = [Math.ceil((active ? M * H : M * N * H) / 64), 1, 1];
    this.shaderKey = `mf_altup_${kind}_${active}`;
  }

  getUserCode(): string {
    // index → (m, j, h); in active mode j = 0.
    const coords = this.active
      ? 'let m = index / H; let j = 0; let h = index % H;'
      : 'let h = index % H; let mj = index / H; let j = mj % N; let m = mj / N;';
    const value =
      this.kind === 'predict'
        ? `var acc = 0.0;
        for (var i = 0; i < N; i++) { acc = acc + C[m * N * N + N * j + i] * S[(m * N + i) * H + h]; }
        let v = acc + S[(m * N + j) * H + h];`
        : `let p = ${this.active ? 'PredActive[m * H + h]' : 'Pred[(m * N + j) * H + h]'};
        let v = p + (D[m * N + j] + 1.0) * (Act[m * H + h] - PredActive[m * H + h]);`;
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let N = uniforms.N;
        let H = uniforms.H;
        ${coords}
        ${value}
        result[index] = v;
      }`;
  }
}

const fr = Math.fround;

registerTwins(
  ALTUP_PREDICT,
  (args: KernelArgs, be: WebGpuBackendLike) => {
    const { S: s, C: c } = args.inputs as { S: tf.TensorInfo; C: tf.TensorInfo };
    const { active } = args.attrs as unknown as Mode;
    const [M, N, H] = s.shape as [number, number, number];
    const p = new AltUpProgram(['S', 'C'], 'predict', active, M, N, H);
    return be.runWebGPUProgram(p, [s, c], 'float32', [M, N, H].map(int));
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { S: s, C: c } = args.inputs as { S: tf.TensorInfo; C: tf.TensorInfo };
    const { active } = args.attrs as unknown as Mode;
    const [M, N, H] = s.shape as [number, number, number];
    const sv = be.data.get(s.dataId).values as Float32Array;
    const cv = be.data.get(c.dataId).values as Float32Array;
    const J = active ? 1 : N;
    const out = new Float32Array(M * J * H);
    for (let m = 0; m < M; m++)
      for (let j = 0; j < J; j++)
        for (let h = 0; h < H; h++) {
          let acc = 0;
          for (let i = 0; i < N; i++)
            acc = fr(acc + fr(cv[m * N * N + N * j + i]! * sv[(m * N + i) * H + h]!));
          out[(m * J + j) * H + h] = fr(acc + sv[(m * N + j) * H + h]!);
        }
    return be.makeTensorInfo(active ? [M, H] : [M * N, H], 'float32', out);
  },
);

registerTwins(
  ALTUP_CORRECT,
  (args: KernelArgs, be: WebGpuBackendLike) => {
    const { Pred, PredActive, Act, D } = args.inputs as Record<string, tf.TensorInfo>;
    const { active } = args.attrs as unknown as Mode;
    const [M, N, H] = Pred!.shape as [number, number, number];
    // The active mode never reads Pred, and WGSL drops unused bindings: do not bind it then.
    const names = active ? ['PredActive', 'Act', 'D'] : ['Pred', 'PredActive', 'Act', 'D'];
    const p = new AltUpProgram(names, 'correct', active, M, N, H);
    const inputs = active ? [PredActive!, Act!, D!] : [Pred!, PredActive!, Act!, D!];
    return be.runWebGPUProgram(p, inputs, 'float32', [M, N, H].map(int));
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const { Pred, PredActive, Act, D } = args.inputs as Record<string, tf.TensorInfo>;
    const { active } = args.attrs as unknown as Mode;
    const [M, N, H] = Pred!.shape as [number, number, number];
    const v = (t: tf.TensorInfo | undefined) => be.data.get(t!.dataId).values as Float32Array;
    const [pv, pa, av, dv] = [v(Pred), v(PredActive), v(Act), v(D)];
    const J = active ? 1 : N;
    const out = new Float32Array(M * J * H);
    for (let m = 0; m < M; m++)
      for (let j = 0; j < J; j++)
        for (let h = 0; h < H; h++) {
          const innovation = fr(av[m * H + h]! - pa[m * H + h]!);
          const p = active ? pa[m * H + h]! : pv[(m * N + j) * H + h]!;
          out[(m * J + j) * H + h] = fr(p + fr(fr(dv[m * N + j]! + 1) * innovation));
        }
    return be.makeTensorInfo(active ? [M, H] : [M * N, H], 'float32', out);
  },
);

function int(x: number): { type: string; data: number[] } {
  return { type: 'int32', data: [x] };
}

/** Pred (all streams [M, N, H] or the active one [M, H]) from streams s [M, N, H] and coefficients c [M, N²]. */
export function altupPredict(s: tf.Tensor3D, c: tf.Tensor2D, active: boolean): tf.Tensor {
  const [M, N, H] = s.shape;
  const y = tf.engine().runKernel(ALTUP_PREDICT, { S: s, C: c }, { active }) as tf.Tensor;
  return active ? y : tf.reshape(y, [M, N, H]);
}

/** Corr from Pred [M, N, H], Pred_active [M, H], act [M, H] and correction coefficients d [M, N] (before + 1). */
export function altupCorrect(
  pred: tf.Tensor3D,
  predActive: tf.Tensor2D,
  act: tf.Tensor2D,
  d: tf.Tensor2D,
  active: boolean,
): tf.Tensor {
  const [M, N, H] = pred.shape;
  const y = tf
    .engine()
    .runKernel(
      ALTUP_CORRECT,
      { Pred: pred, PredActive: predActive, Act: act, D: d },
      { active },
    ) as tf.Tensor;
  return active ? y : tf.reshape(y, [M, N, H]);
}

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

/** The output dimensions one thread of a WG-wide workgroup accumulates: d = lid + j·WG for each j returned. */
function outputSlots(D: number): number[] {
  return Array.from({ length: Math.ceil(D / WG) }, (_, j) => j);
}

/** A workgroup tree reduction of `red` (each thread's value at red[lid]) with `op`; the result in red[0]. */
function tree(op: string): string {
  return `
        for (var w = ${WG / 2}; w > 0; w = w / 2) {
          if (lid < w) { red[lid] = ${op}; }
          workgroupBarrier();
        }`;
}

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
    const dims = outputSlots(D);
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

// ---------------------------------------------------------------------------------------------------------
// Attention of B rows against a prefix they all share plus each row's own keys: the prefix K/V is [1, Kh, P, D]
// (batch stride 0, never tiled per row), each row's own K/V [B, Kh, S, D]. Keys are the concatenation
// [prefix; own], walked in chunks of WG as above. Masks come from positions (no [B, T, P + S] tensor): key
// column c at position p_c is visible to query t at p_t iff p_c ≤ p_t and, with a window W > 0 (sliding
// layers), p_t − p_c < W; padded columns carry PAD_KEY_POSITION. Invisible scores get the same additive −1e9 as
// the mask tensors of the other paths, so every path computes the same numbers.

export const SHARED_PREFIX_ATTENTION = 'MatformerSharedPrefixAttention';

/** The additive mask of an invisible key (as cache.ts's masks). */
const MASKED = -1e9;

class SharedPrefixAttentionProgram {
  // Positions are one packed buffer: a pipeline may bind only 8 storage buffers (the output is one).
  readonly variableNames = ['Q', 'KP', 'VP', 'K', 'V', 'Pos'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly shaderKey: string;
  readonly variableComponents = [4, 4, 1, 4, 1, 1];
  readonly uniforms = 'rows : i32, T : i32, S : i32, P : i32, A : i32, Kh : i32, window : i32,';

  constructor(
    B: number,
    T: number,
    A: number,
    private readonly d: number,
  ) {
    this.outputShape = [B * T, A * d];
    this.dispatch = rowDispatch(B * A * T);
    this.shaderKey = `mf_shared_prefix_attention_${d}`;
  }

  getUserCode(): string {
    const D = this.d;
    const D4 = D / 4;
    const dims = outputSlots(D);
    return `
      var<workgroup> red : array<f32, ${WG}>;
      var<workgroup> prob : array<f32, ${WG}>;
      fn main(index : i32) {
        let row = ${ROW_INDEX};
        let lid = i32(localId.x);
        let T = uniforms.T;
        let S = uniforms.S;
        let P = uniforms.P;
        let A = uniforms.A;
        let W = uniforms.window;
        let N = P + S;
        // No early return: barriers must stay in uniform control flow.
        let valid = row < uniforms.rows;
        let r = select(0, row, valid);
        let t = r % T;
        let h = (r / T) % A;
        let b = r / (T * A);
        let g = h / (A / uniforms.Kh);
        let kvP = g * P * ${D};
        let kvS = ((b * uniforms.Kh + g) * S) * ${D};
        // Pos = [queries B·T | prefix columns P | own columns B·S].
        let qp = Pos[b * T + t];
        let prefixAt = uniforms.rows / A;
        let ownAt = prefixAt + P;
        var m = -3.0e38;
        var l = 0.0;
        ${dims.map((j) => `var acc${j} = 0.0;`).join(' ')}
        for (var s0 = 0; s0 < N; s0 += ${WG}) {
          let s = s0 + lid;
          var score = -3.0e38;
          if (s < N) {
            var qk = 0.0;
            var kp = 0;
            if (s < P) {
              for (var i = 0; i < ${D4}; i++) { qk = qk + dot(Q[r * ${D4} + i], KP[(kvP + s * ${D}) / 4 + i]); }
              kp = Pos[prefixAt + s];
            } else {
              let u = s - P;
              for (var i = 0; i < ${D4}; i++) { qk = qk + dot(Q[r * ${D4} + i], K[(kvS + u * ${D}) / 4 + i]); }
              kp = Pos[ownAt + b * S + u];
            }
            let visible = kp <= qp && (W <= 0 || qp - kp < W);
            score = qk + select(-1.0e9, 0.0, visible);
          }
          red[lid] = score;
          workgroupBarrier();
          ${tree('max(red[lid], red[lid + w])')}
          let mNew = max(m, red[0]);
          workgroupBarrier();
          let p = select(0.0, exp(score - mNew), s < N);
          prob[lid] = p;
          red[lid] = p;
          workgroupBarrier();
          ${tree('red[lid] + red[lid + w]')}
          let scale = exp(m - mNew);
          l = l * scale + red[0];
          let n = min(${WG}, N - s0);
          ${dims
            .map(
              (j) => `{
            let d = lid + ${j * WG};
            var a = acc${j} * scale;
            if (d < ${D}) {
              for (var c = 0; c < n; c++) {
                let sc = s0 + c;
                if (sc < P) { a = a + prob[c] * VP[kvP + sc * ${D} + d]; }
                else { a = a + prob[c] * V[kvS + (sc - P) * ${D} + d]; }
              }
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

interface SharedPrefixShapes {
  B: number;
  A: number;
  T: number;
  D: number;
  Kh: number;
  S: number;
  P: number;
}

interface SharedPrefixAttrs {
  /** Prefix columns (0: none; the wrapper then passes the rows' own K/V in the prefix's place). */
  prefixColumns: number;
  window: number;
}

function sharedPrefixShapes(args: KernelArgs): SharedPrefixShapes & SharedPrefixAttrs {
  const inputs = args.inputs as Record<string, tf.TensorInfo>;
  const [B = 0, A = 0, T = 0, D = 0] = inputs.Q!.shape;
  const [, Kh = 0, S = 0] = inputs.K!.shape;
  const { prefixColumns, window } = args.attrs as unknown as SharedPrefixAttrs;
  return { B, A, T, D, Kh, S, P: prefixColumns, prefixColumns, window };
}

registerTwins(
  SHARED_PREFIX_ATTENTION,
  (args: KernelArgs, be: WebGpuBackendLike) => {
    const inputs = args.inputs as Record<string, tf.TensorInfo>;
    const { B, A, T, D, Kh, S, P, window } = sharedPrefixShapes(args);
    const names = ['Q', 'KP', 'VP', 'K', 'V', 'Pos'];
    return be.runWebGPUProgram(
      new SharedPrefixAttentionProgram(B, T, A, D),
      names.map((n) => inputs[n]!),
      'float32',
      [B * A * T, T, S, P, A, Kh, window].map((x) => ({ type: 'int32', data: [x] })),
    );
  },
  (args: KernelArgs, be: CpuBackendLike) => {
    const inputs = args.inputs as Record<string, tf.TensorInfo>;
    const { B, A, T, D, Kh, S, P, window } = sharedPrefixShapes(args);
    const val = (n: string) => be.data.get(inputs[n]!.dataId).values;
    const [qv, kpv, vpv, kv, vv] = ['Q', 'KP', 'VP', 'K', 'V'].map((n) => val(n) as Float32Array);
    const pos = val('Pos') as Int32Array;
    const [prefixAt, ownAt] = [B * T, B * T + P];
    const G = A / Kh;
    const N = P + S;
    const out = new Float32Array(B * T * A * D);
    const score = new Float32Array(N);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < A; h++)
        for (let t = 0; t < T; t++) {
          const qAt = ((b * A + h) * T + t) * D;
          const g = Math.floor(h / G);
          const qp = pos[b * T + t]!;
          // Column c < P reads the prefix (batch stride 0: the same rows for every b), c ≥ P the row's own keys.
          const prefixK = g * P * D;
          const ownK = (b * Kh + g) * S * D - P * D;
          let max = -Infinity;
          for (let c = 0; c < N; c++) {
            const ks = c < P ? kpv! : kv!;
            const at = (c < P ? prefixK : ownK) + c * D;
            let dot = 0;
            for (let i = 0; i < D; i++) dot = fr(dot + fr(qv![qAt + i]! * ks[at + i]!));
            const kp = c < P ? pos[prefixAt + c]! : pos[ownAt + b * S + c - P]!;
            const visible = kp <= qp && (window <= 0 || qp - kp < window);
            score[c] = fr(dot + (visible ? 0 : MASKED));
            max = Math.max(max, score[c]!);
          }
          let sum = 0;
          for (let c = 0; c < N; c++) {
            score[c] = fr(Math.exp(fr(score[c]! - max)));
            sum = fr(sum + score[c]!);
          }
          for (let c = 0; c < N; c++) score[c] = fr(score[c]! / sum);
          const at = ((b * T + t) * A + h) * D;
          for (let i = 0; i < D; i++) {
            let acc = 0;
            for (let c = 0; c < N; c++) {
              const vs = c < P ? vpv! : vv!;
              acc = fr(acc + fr(score[c]! * vs[(c < P ? prefixK : ownK) + c * D + i]!));
            }
            out[at + i] = acc;
          }
        }
    return be.makeTensorInfo([B * T, A * D], 'float32', out);
  },
);

/**
 * The positions a shared-prefix attention masks by, packed in one int32 array: queries [B·T], then the prefix's
 * columns [P], then the rows' own columns [B, S] (PAD_KEY_POSITION for padding).
 */
export function packKeyPositions(
  query: ArrayLike<number>,
  prefix: ArrayLike<number>,
  own: ArrayLike<number>,
): Int32Array {
  const out = new Int32Array(query.length + prefix.length + own.length);
  out.set(query, 0);
  out.set(prefix, query.length);
  out.set(own, query.length + prefix.length);
  return out;
}

/**
 * softmax(q·[Kp; K]ᵀ + mask)·[Vp; V] for q [B, A, T, D], a prefix kp/vp [1, Kh, P, D] shared by every row (or
 * null: P = 0), the rows' own k/v [B, Kh, S, D], `positions` from packKeyPositions (int32), and `window` > 0 on
 * sliding layers (0: none) → [B·T, A·D]. D must be a multiple of 4.
 */
export function sharedPrefixAttention(
  q: tf.Tensor4D,
  prefix: { k: tf.Tensor4D; v: tf.Tensor4D } | null,
  own: { k: tf.Tensor4D; v: tf.Tensor4D },
  positions: tf.Tensor1D,
  window: number,
): tf.Tensor2D {
  const P = prefix?.k.shape[2] ?? 0;
  const [B = 0, , T = 0] = q.shape;
  const S = own.k.shape[2];
  if (positions.size !== B * T + P + B * S)
    throw new Error(
      `shared-prefix attention: ${positions.size} positions for B ${B}, T ${T}, P ${P}, S ${S}`,
    );
  // Without prefix columns the rows' own K/V stand in its place (never read: P = 0).
  const withPrefix = prefix !== null && P > 0;
  const inputs = {
    Q: q,
    KP: withPrefix ? prefix.k : own.k,
    VP: withPrefix ? prefix.v : own.v,
    K: own.k,
    V: own.v,
    Pos: positions,
  };
  const attrs: SharedPrefixAttrs = { prefixColumns: withPrefix ? P : 0, window };
  return tf
    .engine()
    .runKernel(SHARED_PREFIX_ATTENTION, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

// The engine's own WebGPU programs against their cpu-backend twins, and the twins against TF.js's matMul.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine';
import { bf16MatMul, packBf16Transposed, tileFor, tileWorkgroupBytes } from '../../src/engine';
import { LinearWeight } from '../../src/engine';
import { fusedGeluGate, fusedNormRope, fusedRmsNorm } from '../../src/engine';
import { altupCorrect, altupPredict } from '../../src/engine';
import { describeIfWebGpu, probeWebGpu } from './webgpu-probe';

/** Deterministic values in [-1, 1), rounded to bfloat16 when asked. */
function values(n: number, seed: number, bf16: boolean): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
    if (bf16) bits[i] = bits[i]! & 0xffff0000;
  }
  return out;
}

/** [m, k] @ ([k, n] prefix of the transposed torch weight [outP, inP]) in float64, the exact reference. */
function reference(
  x: Float32Array,
  w: Float32Array,
  m: number,
  k: number,
  n: number,
  inP: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += x[r * k + j]! * w[c * inP + j]!;
      out[r * n + c] = s;
    }
  return out;
}

function maxRelError(ours: Float32Array, ref: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(ours[i]! - ref[i]!));
    den = Math.max(den, Math.abs(ref[i]!));
  }
  return num / den;
}

// [m, k, n] used of a parent weight [outP, inP] (torch layout): skinny and wide products, odd widths, prefix
// views in both directions, reduction lengths with and without vec4 loads.
const CASES: [number, number, number, number, number][] = [
  [1, 64, 128, 128, 64],
  [3, 30, 70, 70, 30],
  [8, 96, 257, 300, 128],
  [70, 96, 130, 130, 96],
  [33, 40, 64, 96, 64],
];

describe('bf16 packing', () => {
  it('packs bfloat16 values exactly and refuses anything else', () => {
    const w = values(6 * 4, 1, true);
    const p = packBf16Transposed(w, 6, 4)!;
    expect(p).toHaveLength(4 * 3);
    const bits = new Uint32Array(w.buffer);
    // word [k=2, j=1] holds W[out 2][in 2] low and W[out 3][in 2] high.
    expect((p[2 * 3 + 1]! >>> 0) & 0xffff).toBe(bits[2 * 4 + 2]! >>> 16);
    expect(((p[2 * 3 + 1]! & 0xffff0000) >>> 0) >>> 16).toBe(bits[3 * 4 + 2]! >>> 16);
    w[5] = 0.1; // not a bf16
    expect(packBf16Transposed(w, 6, 4)).toBeNull();
  });

  it('keeps workgroup memory of every tile under 16 KiB', () => {
    for (const m of [1, 8, 9, 512]) expect(tileWorkgroupBytes(tileFor(m))).toBeLessThanOrEqual(16384);
  });
});

describe('bf16 matmul, cpu twin', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it.each(CASES)('m %i, k %i, n %i of [%i, %i] matches float64', (m, k, n, outP, inP) => {
    const x = values(m * k, 2, false);
    const w = values(outP * inP, 3, true);
    const lw = LinearWeight.fromTorch(w, outP, inP, true);
    expect(lw.packed).toBe(true);
    const view = lw.prefix(k, n);
    const xt = tf.tensor2d(x, [m, k]);
    const y = view.apply(xt);
    expect(y.shape).toEqual([m, n]);
    expect(maxRelError(y.dataSync() as Float32Array, reference(x, w, m, k, n, inP))).toBeLessThan(1e-6);
    expect(view.bytes).toBe(k === inP && n === outP ? inP * Math.ceil(outP / 2) * 4 : 0);
    tf.dispose([xt, y]);
    lw.dispose();
  });

  it('rejects a view larger than the weight and mismatched inputs', () => {
    const lw = LinearWeight.fromTorch(values(8 * 4, 4, true), 8, 4, true);
    expect(() => lw.prefix(5, 8)).toThrow(RangeError);
    const x = tf.zeros([2, 3]) as tf.Tensor2D;
    expect(() => lw.apply(x)).toThrow(/3 columns/);
    x.dispose();
    lw.dispose();
  });
});

describeIfWebGpu('bf16 matmul on webgpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  it.each(CASES)('m %i, k %i, n %i of [%i, %i] matches the cpu twin', async (m, k, n, outP, inP) => {
    const x = values(m * k, 5, false);
    const w = values(outP * inP, 6, true);
    const words = packBf16Transposed(w, outP, inP)!;
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const xt = tf.tensor2d(x, [m, k]);
      const wt = tf.tensor2d(words, [inP, Math.ceil(outP / 2)], 'int32');
      const y = bf16MatMul(xt, wt, k, n);
      const data = (await y.data()) as Float32Array;
      tf.dispose([xt, wt, y]);
      return data;
    };
    const gpu = await run('webgpu');
    const cpu = await run('cpu');
    await tf.setBackend('webgpu');
    const ref = reference(x, w, m, k, n, inP);
    expect(maxRelError(gpu, ref)).toBeLessThan(1e-6);
    expect(maxRelError(cpu, ref)).toBeLessThan(1e-6);
  });
});

// The fused row programs against the TF.js op compositions they replace (gemma3n.ts on cpu).
const ROWS: [number, number][] = [
  [1, 64],
  [5, 37],
  [70, 300],
];

function composedRmsNorm(x: tf.Tensor2D, w: tf.Tensor1D | null, eps: number): tf.Tensor2D {
  const y = tf.div(x, tf.sqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)));
  return (w ? tf.mul(y, w) : y) as tf.Tensor2D;
}

function composedGeluGate(g: tf.Tensor2D, u: tf.Tensor2D, z: number): tf.Tensor2D {
  let gate: tf.Tensor = g;
  if (z !== 0) {
    const mean = tf.mean(g, -1, true);
    const std = tf.sqrt(tf.mean(tf.square(tf.sub(g, mean)), -1, true));
    gate = tf.relu(tf.sub(g, tf.add(mean, tf.mul(std, z))));
  }
  const inner = tf.mul(tf.add(gate, tf.mul(tf.mul(tf.mul(gate, gate), gate), 0.044715)), 0.7978845608028654);
  return tf.mul(tf.mul(tf.mul(gate, 0.5), tf.add(tf.tanh(inner), 1)), u) as tf.Tensor2D;
}

async function onBackend(backend: string, f: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(backend);
  const y = tf.tidy(f);
  const data = (await y.data()) as Float32Array;
  y.dispose();
  return data;
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

describe('fused row programs, cpu twin', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it.each(ROWS)('RMSNorm of %i × %i matches the op composition', async (r, w) => {
    const x = values(r * w, 7, false);
    const g = values(w, 8, false);
    for (const scaled of [true, false]) {
      const ref = await onBackend('cpu', () =>
        composedRmsNorm(tf.tensor2d(x, [r, w]), scaled ? tf.tensor1d(g) : null, 1e-6),
      );
      const ours = await onBackend('cpu', () =>
        fusedRmsNorm(tf.tensor2d(x, [r, w]), scaled ? tf.tensor1d(g) : null, 1e-6),
      );
      expect(relDiff(ours, ref)).toBeLessThan(1e-6);
    }
  });

  it.each(ROWS)('GeluGate of %i × %i matches the op composition, with and without top-k', async (r, w) => {
    const g = values(r * w, 9, false);
    const u = values(r * w, 10, false);
    for (const z of [0, 1.6448533535003662]) {
      const ref = await onBackend('cpu', () =>
        composedGeluGate(tf.tensor2d(g, [r, w]), tf.tensor2d(u, [r, w]), z),
      );
      const ours = await onBackend('cpu', () =>
        fusedGeluGate(tf.tensor2d(g, [r, w]), tf.tensor2d(u, [r, w]), z),
      );
      expect(relDiff(ours, ref)).toBeLessThan(1e-5);
      if (z !== 0) expect(ours.filter((v) => v === 0).length).toBeGreaterThan((r * w) / 2);
    }
  });
});

describeIfWebGpu('fused row programs on webgpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  it.each(ROWS)('RMSNorm and GeluGate of %i × %i match the cpu twins', async (r, w) => {
    const x = values(r * w, 11, false);
    const u = values(r * w, 12, false);
    const g = values(w, 13, false);
    const norm = () => fusedRmsNorm(tf.tensor2d(x, [r, w]), tf.tensor1d(g), 1e-6);
    expect(relDiff(await onBackend('webgpu', norm), await onBackend('cpu', norm))).toBeLessThan(1e-5);
    for (const z of [0, 1.6448533535003662]) {
      const gate = () => fusedGeluGate(tf.tensor2d(x, [r, w]), tf.tensor2d(u, [r, w]), z);
      expect(relDiff(await onBackend('webgpu', gate), await onBackend('cpu', gate))).toBeLessThan(1e-5);
    }
    await tf.setBackend('webgpu');
  });
});

function composedNormRope(
  x: tf.Tensor4D,
  w: tf.Tensor1D | null,
  cos: tf.Tensor4D | null,
  sin: tf.Tensor4D | null,
) {
  const D = x.shape[3];
  const n = tf.reshape(
    composedRmsNorm(tf.reshape(x, [-1, D]) as tf.Tensor2D, w, 1e-6),
    x.shape,
  ) as tf.Tensor4D;
  if (!cos || !sin) return tf.transpose(n, [0, 2, 1, 3]);
  const [a, b] = tf.split(n, 2, 3);
  const rotated = tf.concat([tf.neg(b!), a!], 3);
  return tf.transpose(tf.add(tf.mul(n, cos), tf.mul(rotated, sin)), [0, 2, 1, 3]);
}

// [B, T, heads, D]
const HEADS: [number, number, number, number][] = [
  [1, 1, 2, 32],
  [2, 5, 3, 16],
  [3, 7, 1, 256],
];

describe('fused norm + RoPE, cpu twin', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it.each(HEADS)('B %i, T %i, %i heads of %i match the op composition', async (B, T, H, D) => {
    const n = B * T * H * D;
    const [x, cos, sin, g] = [
      values(n, 14, false),
      values(n, 15, false),
      values(n, 16, false),
      values(D, 17, false),
    ];
    const shape: [number, number, number, number] = [B, T, H, D];
    const t4 = (v: Float32Array) => tf.tensor4d(v, shape);
    for (const rope of [true, false]) {
      const ref = await onBackend('cpu', () =>
        composedNormRope(t4(x), rope ? tf.tensor1d(g) : null, rope ? t4(cos) : null, rope ? t4(sin) : null),
      );
      const ours = await onBackend('cpu', () =>
        fusedNormRope(
          t4(x),
          rope ? tf.tensor1d(g) : null,
          1e-6,
          rope ? { cos: t4(cos), sin: t4(sin) } : null,
        ),
      );
      expect(relDiff(ours, ref)).toBeLessThan(1e-6);
    }
  });
});

describeIfWebGpu('fused norm + RoPE on webgpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  it.each(HEADS)('B %i, T %i, %i heads of %i match the cpu twin', async (B, T, H, D) => {
    const n = B * T * H * D;
    const [x, cos, sin, g] = [
      values(n, 18, false),
      values(n, 19, false),
      values(n, 20, false),
      values(D, 21, false),
    ];
    const shape: [number, number, number, number] = [B, T, H, D];
    const t4 = (v: Float32Array) => tf.tensor4d(v, shape);
    const f = () => fusedNormRope(t4(x), tf.tensor1d(g), 1e-6, { cos: t4(cos), sin: t4(sin) });
    expect(relDiff(await onBackend('webgpu', f), await onBackend('cpu', f))).toBeLessThan(1e-5);
    await tf.setBackend('webgpu');
  });
});

// AltUp predict / correct (all streams and the active one) against the batched matMul formulation.
function composedPredict(s: tf.Tensor3D, c: tf.Tensor2D) {
  const [M, N] = s.shape;
  const cc = tf.reshape(c, [M, N, N]) as tf.Tensor3D;
  const all = tf.add(tf.matMul(cc, s), s);
  const c0 = tf.slice(cc, [0, 0, 0], [M, 1, N]);
  return {
    all,
    active: tf.add(
      tf.reshape(tf.matMul(c0, s), [M, -1]),
      tf.reshape(tf.slice(s, [0, 0, 0], [M, 1, -1]), [M, -1]),
    ),
  };
}

function composedCorrect(pred: tf.Tensor3D, pa: tf.Tensor2D, act: tf.Tensor2D, d: tf.Tensor2D) {
  const [M, N] = pred.shape;
  const dd = tf.reshape(tf.add(d, 1), [M, N, 1]) as tf.Tensor3D;
  const innovation = tf.reshape(tf.sub(act, pa), [M, 1, -1]) as tf.Tensor3D;
  const all = tf.add(pred, tf.matMul(dd, innovation));
  const d0 = tf.slice(dd, [0, 0, 0], [M, 1, 1]);
  return { all, active: tf.add(pa, tf.reshape(tf.matMul(d0, innovation), [M, -1])) };
}

const ALTUP: [number, number, number][] = [
  [1, 4, 64],
  [7, 4, 37],
  [3, 2, 130],
];

describe.each([['cpu'], ['webgpu']])('AltUp programs on %s', (backend) => {
  const run = backend === 'cpu' ? it : probeWebGpu().ok ? it : it.skip;
  beforeAll(async () => {
    if (backend === 'cpu' || probeWebGpu().ok) await initBackend(backend as 'cpu' | 'webgpu');
  });

  run.each(ALTUP)('M %i, N %i, H %i: predict and correct match the matMul formulation', async (M, N, H) => {
    const [s, c, act, d] = [
      values(M * N * H, 22, false),
      values(M * N * N, 23, false),
      values(M * H, 24, false),
      values(M * N, 25, false),
    ];
    const S = () => tf.tensor3d(s, [M, N, H]);
    const C = () => tf.tensor2d(c, [M, N * N]);
    const pa = values(M * H, 26, false);
    for (const active of [false, true]) {
      const refP = await onBackend('cpu', () =>
        active ? composedPredict(S(), C()).active : composedPredict(S(), C()).all,
      );
      const ourP = await onBackend(backend, () => altupPredict(S(), C(), active));
      expect(relDiff(ourP, refP)).toBeLessThan(1e-6);
      const args = () =>
        [S(), tf.tensor2d(pa, [M, H]), tf.tensor2d(act, [M, H]), tf.tensor2d(d, [M, N])] as const;
      const refC = await onBackend('cpu', () => {
        const r = composedCorrect(...args());
        return active ? r.active : r.all;
      });
      const ourC = await onBackend(backend, () => altupCorrect(...args(), active));
      expect(relDiff(ourC, refC)).toBeLessThan(1e-6);
    }
  });
});

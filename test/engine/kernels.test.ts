// The engine's own WebGPU programs against their cpu-backend twins, and the twins against TF.js's matMul.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine';
import { bf16MatMul, kernelFor, kernelWorkgroupBytes, packBf16Transposed } from '../../src/engine';
import { parseTable, setMatMulTable } from '../../src/engine';
import { LinearWeight } from '../../src/engine';
import {
  fusedGeluGate,
  fusedGeluGateOf,
  fusedNormAdd,
  fusedNormRope,
  fusedRmsNorm,
  fusedStreamsAdd,
} from '../../src/engine';
import { altupCorrect, altupPredict, altupRoute, fusedAttention } from '../../src/engine';
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

  it('keeps workgroup memory of every default kernel under 16 KiB', () => {
    for (const m of [1, 8, 9, 512, 4096])
      for (const n of [64, 2048, 262144])
        expect(kernelWorkgroupBytes(kernelFor(m, 2048, n))).toBeLessThanOrEqual(16384);
  });
});

describe('matmul table', () => {
  it('picks the first rule a shape satisfies', () => {
    setMatMulTable('m<=8:gemv-8x32,n<=256&k<=64:tiled-8x8-4x4-k16,*:tiled-16x16-8x8-k8');
    expect(kernelFor(1, 2048, 2048)).toEqual({ kind: 'gemv', wx: 8, wy: 32 });
    expect(kernelFor(512, 64, 256)).toMatchObject({ kind: 'tiled', wx: 8, rows: 4 });
    expect(kernelFor(512, 2048, 256)).toMatchObject({ kind: 'tiled', wx: 16, rows: 8 });
    setMatMulTable('legacy');
    expect(kernelFor(1, 64, 64).kind).toBe('legacy');
    setMatMulTable('default');
    expect(kernelFor(1, 64, 64).kind).toBe('gemv');
  });

  it.each([
    ['m<=8:gemv-8x8', /every shape/],
    ['*:gemv-32x32', /1 to 256 threads/],
    ['*:tiled-16x16-8x8-k32', /workgroup memory/],
    ['*:tiled-16x16-6x4-k8', /multiples of 4/],
    ['m<8:gemv-8x8,*:gemv-8x8', /condition/],
    ['*:fast', /is not a kernel/],
    ['gemv-8x8', /is not a rule/],
  ])('refuses %s in one line naming the variable', (text, why) => {
    expect(() => parseTable(text, 'gpu')).toThrow(why);
    expect(() => parseTable(text, 'gpu')).toThrow(/^MATFORMER_MATMUL: /);
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

  it('keeps gate|up in one buffer: the pair and its prefix views multiply in one product', () => {
    const [I, H] = [70, 40];
    const g = values(I * H, 10, true);
    const u = values(I * H, 11, true);
    const [gate, up] = LinearWeight.pair(g, u, I, H, true);
    expect(gate.bytes).toBe(H * I * 4);
    expect(up.bytes).toBe(0);
    const x = values(3 * H, 12, false);
    const xt = tf.tensor2d(x, [3, H]);
    for (const n of [I, 50, 31]) {
      const [gv, uv] = [gate.prefix(H, n), up.prefix(H, n)];
      const both = LinearWeight.applyPair(xt, gv, uv);
      expect(both === null).toBe(n % 2 !== 0); // odd widths: one by one
      const rg = reference(x, g, 3, H, n, H);
      const ru = reference(x, u, 3, H, n, H);
      expect(maxRelError(gv.apply(xt).dataSync() as Float32Array, rg)).toBeLessThan(1e-6);
      expect(maxRelError(uv.apply(xt).dataSync() as Float32Array, ru)).toBeLessThan(1e-6);
      if (both) {
        const d = both.dataSync() as Float32Array;
        const left = d.filter((_, i) => i % (2 * n) < n);
        const right = d.filter((_, i) => i % (2 * n) >= n);
        expect(maxRelError(left, rg)).toBeLessThan(1e-6);
        expect(maxRelError(right, ru)).toBeLessThan(1e-6);
      }
    }
    const [fg, fu] = LinearWeight.pair(g, u, I, H, false);
    expect(fg.packed || fu.packed).toBe(false);
    expect(LinearWeight.applyPair(xt, fg, fu)).toBeNull();
    tf.dispose(xt);
    [gate, up, fg, fu].forEach((w) => w.dispose());
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

  afterAll(() => setMatMulTable('default'));

  // Every program family, on every case: the table's kernel for all shapes.
  const KERNELS = ['gemv-8x8', 'gemv-4x2', 'tiled-8x8-4x4-k16', 'tiled-16x16-8x8-k8', 'legacy-8x8-4x4-k16'];
  const run = async (backend: string, x: Float32Array, words: Int32Array, shape: number[], a: number[]) => {
    const [m, k, n, seg] = a as [number, number, number, number];
    await tf.setBackend(backend);
    const xt = tf.tensor2d(x, [m, k]);
    const wt = tf.tensor2d(words, shape as [number, number], 'int32');
    const y = bf16MatMul(xt, wt, k, n, seg >= 0 ? { seg } : {});
    const data = (await y.data()) as Float32Array;
    tf.dispose([xt, wt, y]);
    await tf.setBackend('webgpu');
    return data;
  };

  it.each(KERNELS)('%s matches the cpu twin and float64 on every case', async (kernel) => {
    setMatMulTable(`*:${kernel}`);
    for (const [m, k, n, outP, inP] of CASES) {
      const x = values(m * k, 5, false);
      const w = values(outP * inP, 6, true);
      const words = packBf16Transposed(w, outP, inP)!;
      const shape = [inP, Math.ceil(outP / 2)];
      const gpu = await run('webgpu', x, words, shape, [m, k, n, -1]);
      const cpu = await run('cpu', x, words, shape, [m, k, n, -1]);
      const ref = reference(x, w, m, k, n, inP);
      expect(maxRelError(gpu, ref)).toBeLessThan(1e-6);
      expect(maxRelError(cpu, ref)).toBeLessThan(1e-6);
    }
  });

  // The kernels of the GPU tables (default, legacy, the benchmark's alternatives): valid WGSL, right results.
  it.each([
    'gemv-16x16',
    'gemv-8x32',
    'gemv-32x8',
    'tiled-16x16-4x4-k16',
    'tiled-16x16-8x8-k16',
    'tiled-16x8-8x8-k8',
    'legacy-64x1-4x4-k8',
    'legacy-16x16-4x4-k16',
  ])('%s (a GPU table kernel) matches float64 on one case', async (kernel) => {
    setMatMulTable(`*:${kernel}`);
    const [m, k, n, outP, inP] = [9, 96, 130, 130, 96];
    const x = values(m * k, 5, false);
    const w = values(outP * inP, 6, true);
    const gpu = await run('webgpu', x, packBf16Transposed(w, outP, inP)!, [inP, outP / 2], [m, k, n, -1]);
    expect(maxRelError(gpu, reference(x, w, m, k, n, inP))).toBeLessThan(1e-6);
  });

  it.each(['gemv-8x8', 'tiled-8x8-4x4-k16', 'legacy-8x8-4x4-k16'])(
    '%s reads two column segments (gate|up) like two products',
    async (kernel) => {
      setMatMulTable(`*:${kernel}`);
      // Two [I=70, H=40] weights packed side by side; the [k=40, n=50] prefix of each.
      const I = 70;
      const H = 40;
      const g = values(I * H, 7, true);
      const u = values(I * H, 8, true);
      const both = new Float32Array(2 * I * H);
      both.set(g);
      both.set(u, I * H);
      const words = packBf16Transposed(both, 2 * I, H)!;
      for (const m of [1, 9, 70]) {
        const x = values(m * H, 9, false);
        const gpu = await run('webgpu', x, words, [H, I], [m, H, 50, I / 2]);
        const cpu = await run('cpu', x, words, [H, I], [m, H, 50, I / 2]);
        const rg = reference(x, g, m, H, 50, H);
        const ru = reference(x, u, m, H, 50, H);
        const ref = new Float64Array(m * 100);
        for (let r = 0; r < m; r++) {
          ref.set(rg.subarray(r * 50, (r + 1) * 50), r * 100);
          ref.set(ru.subarray(r * 50, (r + 1) * 50), r * 100 + 50);
        }
        expect(maxRelError(gpu, ref)).toBeLessThan(1e-6);
        expect(maxRelError(cpu, ref)).toBeLessThan(1e-6);
      }
    },
  );
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
    // Norm with the residual adds around it: ((u + norm(x)) + x) / √2 and u + norm(x).
    for (const two of [false, true]) {
      const X = () => tf.tensor2d(x, [r, w]);
      const U = () => tf.tensor2d(u, [r, w]);
      const fused = () =>
        two
          ? fusedNormAdd(X(), tf.tensor1d(g), 1e-6, U(), X(), Math.SQRT2)
          : fusedNormAdd(X(), tf.tensor1d(g), 1e-6, U());
      const composed = () => {
        const y = tf.add(U(), composedRmsNorm(X(), tf.tensor1d(g), 1e-6));
        return two ? tf.div(tf.add(y, X()), Math.SQRT2) : y;
      };
      const ref = await onBackend('cpu', composed);
      expect(relDiff(await onBackend('cpu', fused), ref)).toBeLessThan(1e-6);
      expect(relDiff(await onBackend('webgpu', fused), ref)).toBeLessThan(1e-5);
    }
    // The per-layer input onto streams 1..3 of [r, 4, w] (stream 0 untouched), as norm + outer product + add.
    const S = values(r * 4 * w, 14, false);
    const onStreams = () =>
      fusedStreamsAdd(tf.tensor3d(S, [r, 4, w]), tf.tensor2d(x, [r, w]), tf.tensor1d(g), 1e-6);
    const composedStreams = () => {
      const q = composedRmsNorm(tf.tensor2d(x, [r, w]), tf.tensor1d(g), 1e-6);
      const mask = tf.tensor3d([0, 1, 1, 1], [1, 4, 1]);
      return tf.add(tf.tensor3d(S, [r, 4, w]), tf.matMul(mask, tf.reshape(q, [r, 1, w])));
    };
    const refS = await onBackend('cpu', composedStreams);
    expect(relDiff(await onBackend('cpu', onStreams), refS)).toBeLessThan(1e-6);
    expect(relDiff(await onBackend('webgpu', onStreams), refS)).toBeLessThan(1e-5);
    expect((await onBackend('webgpu', onStreams)).slice(0, w)).toEqual(S.slice(0, w));
    for (const z of [0, 1.6448533535003662]) {
      const gate = () => fusedGeluGate(tf.tensor2d(x, [r, w]), tf.tensor2d(u, [r, w]), z);
      const ref = await onBackend('cpu', gate);
      expect(relDiff(await onBackend('webgpu', gate), ref)).toBeLessThan(1e-5);
      // The same from one [r, 2w] tensor (gate then up per row), as the fused gate|up matmul writes it.
      const both = () => fusedGeluGateOf(tf.concat([tf.tensor2d(x, [r, w]), tf.tensor2d(u, [r, w])], 1), z);
      expect(relDiff(await onBackend('webgpu', both), ref)).toBeLessThan(1e-5);
      expect(relDiff(await onBackend('cpu', both), ref)).toBe(0);
      // Up read in place as slab 1 of a [3, r, w] tensor (a layer's per-layer input): the same values.
      const slabs = new Float32Array(3 * r * w).fill(7);
      slabs.set(u, r * w);
      const inPlace = () => fusedGeluGate(tf.tensor2d(x, [r, w]), tf.tensor3d(slabs, [3, r, w]), z, 1);
      for (const be of ['cpu', 'webgpu'])
        expect(await onBackend(be, inPlace)).toEqual(await onBackend(be, gate));
    }
    expect(() =>
      tf.tidy(() =>
        fusedGeluGate(tf.tensor2d(x, [r, w]), tf.tensor3d(new Float32Array(2 * r * w), [2, r, w]), 0, 2),
      ),
    ).toThrow(/no slab 2/);
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

// AltUp routing: tanh(RMSNorm(x)·w / H @ router) @ coefs, against the op composition it replaces.
describe.each([['cpu'], ['webgpu']])('AltUp routing program on %s', (backend) => {
  const run = backend === 'cpu' ? it : probeWebGpu().ok ? it : it.skip;
  beforeAll(async () => {
    if (backend === 'cpu' || probeWebGpu().ok) await initBackend(backend as 'cpu' | 'webgpu');
  });

  run.each(ALTUP)('M %i, N %i, H %i: matches norm, divide, matmul, tanh, matmul', async (M, N, H) => {
    const [x, g, r] = [values(M * H, 30, false), values(H, 31, false), values(H * N, 32, false)];
    for (const K of [N, N * N]) {
      const c = values(N * K, 33 + K, false);
      const inputs = () =>
        [tf.tensor2d(x, [M, H]), tf.tensor1d(g), tf.tensor2d(r, [H, N]), tf.tensor2d(c, [N, K])] as const;
      const ref = await onBackend('cpu', () => {
        const [xt, gt, rt, ct] = inputs();
        const routed = tf.div(composedRmsNorm(xt, gt, 1e-6), H) as tf.Tensor2D;
        return tf.matMul(tf.tanh(tf.matMul(routed, rt)), ct);
      });
      const ours = await onBackend(backend, () => altupRoute(...inputs(), 1e-6));
      expect(relDiff(ours, ref)).toBeLessThan(backend === 'cpu' ? 1e-6 : 1e-5);
    }
  });
});

// Decode attention: softmax(q·kᵀ + mask)·v with GQA, against batched matmuls + softmax + transpose.
describe.each([['cpu'], ['webgpu']])('attention program on %s', (backend) => {
  const run = backend === 'cpu' ? it : probeWebGpu().ok ? it : it.skip;
  beforeAll(async () => {
    if (backend === 'cpu' || probeWebGpu().ok) await initBackend(backend as 'cpu' | 'webgpu');
  });

  run.each([
    [1, 2, 1, 1, 5, 16],
    [2, 4, 2, 3, 70, 32],
    [1, 4, 2, 1, 70, 128],
  ])('B %i, A %i, Kh %i, T %i, S %i, D %i matches the op composition', async (B, A, Kh, T, S, D) => {
    const [q, k, v] = [
      values(B * A * T * D, 40, false),
      values(B * Kh * S * D, 41, false),
      values(B * Kh * S * D, 42, false),
    ];
    // Causal-looking mask with a few holes; row (b 0, t 0) sees only key 0.
    const m = new Float32Array(B * T * S).map((_, i) => ((i * 7) % 5 === 0 && i % S !== 0 ? -1e9 : 0));
    for (let s = 1; s < S; s++) m[s] = -1e9;
    const inputs = () =>
      [
        tf.tensor4d(q, [B, A, T, D]),
        tf.tensor4d(k, [B, Kh, S, D]),
        tf.tensor4d(v, [B, Kh, S, D]),
        tf.tensor4d(m, [B, 1, T, S]),
      ] as const;
    const ref = await onBackend('cpu', () => {
      const [qt, kt, vt, mt] = inputs();
      const G = A / Kh;
      const scores = tf.add(
        tf.reshape(
          tf.matMul(tf.reshape(qt, [B * Kh, G * T, D]), tf.reshape(kt, [B * Kh, S, D]), false, true),
          [B, A, T, S],
        ),
        mt,
      );
      const probs = tf.reshape(tf.softmax(scores), [B * Kh, G * T, S]);
      const out = tf.transpose(
        tf.reshape(tf.matMul(probs, tf.reshape(vt, [B * Kh, S, D])), [B, A, T, D]),
        [0, 2, 1, 3],
      );
      return tf.reshape(out, [B * T, A * D]);
    });
    const ours = await onBackend(backend, () => fusedAttention(...inputs()));
    expect(relDiff(ours, ref)).toBeLessThan(1e-5);
  });
});

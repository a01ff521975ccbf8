// The int8 fast mode's kernels: packing, the cpu twins against a float64 reference within the quantization
// error bound, and the webgpu programs (gemv and tiled) against the twins.
import * as tf from '@tensorflow/tfjs-core';
import { LinearWeight, initBackend, int8MatMul, quantizeInt8Into, quantizeRows } from '../../src/engine';
import { describeIfWebGpu } from './webgpu-probe';
import { values } from '../helpers/values';

/**
 * The float64 product x [m, k] @ (the [k, n] prefix of W given torch-style [outP, inP]) and, per output, the
 * bound on what int8 quantization may change. With x = s_m·q + e (|e| ≤ s_m/2) and W = s_o·p + d (|d| ≤ s_o/2):
 * x·W − s_m·s_o·q·p = e·W + x·d − e·d, so |Σ_k| ≤ s_m/2·Σ|W| + s_o/2·Σ|x| + k·s_m·s_o/4. s_o is the parent
 * channel's scale (its max over all inP inputs: a prefix view keeps the parent's quantization).
 */
function referenceAndBound(
  x: Float32Array,
  w: Float32Array,
  m: number,
  k: number,
  n: number,
  inP: number,
): { ref: Float64Array; bound: Float64Array } {
  const ref = new Float64Array(m * n);
  const bound = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    let xmax = 0;
    let xabs = 0;
    for (let j = 0; j < k; j++) {
      xmax = Math.max(xmax, Math.abs(x[r * k + j]!));
      xabs += Math.abs(x[r * k + j]!);
    }
    const sm = xmax / 127;
    for (let c = 0; c < n; c++) {
      let wmax = 0;
      for (let j = 0; j < inP; j++) wmax = Math.max(wmax, Math.abs(w[c * inP + j]!));
      const so = wmax / 127;
      let s = 0;
      let wabs = 0;
      for (let j = 0; j < k; j++) {
        s += x[r * k + j]! * w[c * inP + j]!;
        wabs += Math.abs(w[c * inP + j]!);
      }
      ref[r * n + c] = s;
      // Plus float32 rounding of the scale products and of the scales themselves (a few ulps of the result).
      bound[r * n + c] = (sm / 2) * wabs + (so / 2) * xabs + (k * sm * so) / 4 + 1e-6 * Math.abs(s) + 1e-30;
    }
  }
  return { ref, bound };
}

/** Largest |ours − ref| / bound (≤ 1: within the bound). */
function boundRatio(ours: Float32Array, ref: Float64Array, bound: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - ref[i]!) / bound[i]!);
  return worst;
}

/** max |a − b| / max |b|. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

// [m, k, n] used of a parent weight [outP, inP] (torch layout): both programs (gemv M ≤ 8, tiled beyond),
// K not a multiple of 4, odd widths, prefix views (including a K that ends inside a word of the parent).
const CASES: [number, number, number, number, number][] = [
  [1, 64, 128, 128, 64],
  [3, 30, 71, 71, 30],
  [8, 61, 257, 300, 64],
  [9, 96, 130, 130, 96],
  [40, 45, 64, 97, 50],
  [70, 200, 70, 70, 200],
];

describe('int8 weight quantization', () => {
  it('scales per output channel, rounds half to even, packs byte i = K index 4j+i', () => {
    // Channel 0: max 127 → scale 1; channel 1 all zero; 5 inputs (the second word has one value).
    const w = new Float32Array([127, 2.5, -2.5, 3.5, -0.5, 0, 0, 0, 0, 0]);
    const words = new Int32Array(2 * 2);
    const scales = new Float32Array(2);
    quantizeInt8Into(w, 2, 5, words, scales, 2, 0);
    expect([...scales]).toEqual([1, 0]);
    const bytes = (v: number) => [0, 1, 2, 3].map((b) => (v << (24 - 8 * b)) >> 24);
    expect(bytes(words[0]!)).toEqual([127, 2, -2, 4]);
    expect(bytes(words[2]!)).toEqual([0, 0, 0, 0]); // -0.5 rounds to 0
    expect(words[1]).toBe(0);
    expect(words[3]).toBe(0);
    const big = new Float32Array([-254, 1, 0, 0]);
    quantizeInt8Into(big, 1, 4, words, scales, 2, 1);
    expect(scales[1]).toBe(2);
    expect(bytes(words[1]!)).toEqual([-127, 0, 0, 0]); // 1/2 = 0.5 rounds to 0
  });
});

describe('int8 matmul, cpu twin', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('quantizes activations per row into words and a scale, zero past K; an all-zero row gives zeros', () => {
    const x = tf.tensor2d([0.5, -1, 0.25, 1, 0.125, 0, 0, 0, 0, 0], [2, 5]);
    const q = quantizeRows(x);
    expect(q.shape).toEqual([2, 3]);
    const d = q.dataSync() as Int32Array;
    const bytes = (v: number) => [0, 1, 2, 3].map((b) => (v << (24 - 8 * b)) >> 24);
    // 127 / 1 · [0.5, -1, 0.25, 1] = [63.5 → 64, -127, 31.75 → 32, 127]; 0.125 · 127 = 15.875 → 16.
    expect(bytes(d[0]!)).toEqual([64, -127, 32, 127]);
    expect(bytes(d[1]!)).toEqual([16, 0, 0, 0]);
    expect(new Float32Array(new Int32Array([d[2]!]).buffer)[0]).toBe(Math.fround(1 / 127));
    expect([d[3], d[4], d[5]]).toEqual([0, 0, 0]);
    const w = LinearWeight.int8(values(3 * 5, 1), 3, 5);
    const y = w.apply(x);
    expect([...(y.dataSync() as Float32Array).slice(3)]).toEqual([0, 0, 0]);
    tf.dispose([x, q, y]);
    w.dispose();
  });

  it.each(CASES)(
    'm %i, k %i, n %i of [%i, %i] is within the quantization bound of float64',
    (m, k, n, outP, inP) => {
      const x = values(m * k, 2);
      const w = values(outP * inP, 3);
      const lw = LinearWeight.int8(w, outP, inP);
      expect(lw.format).toBe('int8');
      expect(lw.bytes).toBe((Math.ceil(inP / 4) * outP + outP) * 4);
      const view = lw.prefix(k, n);
      expect(view.bytes).toBe(k === inP && n === outP ? lw.bytes : 0);
      const xt = tf.tensor2d(x, [m, k]);
      const y = view.apply(xt);
      expect(y.shape).toEqual([m, n]);
      const { ref, bound } = referenceAndBound(x, w, m, k, n, inP);
      const ratio = boundRatio(y.dataSync() as Float32Array, ref, bound);
      expect(ratio).toBeLessThanOrEqual(1);
      // And not trivially: the error is of the order the bound predicts (int8 is not exact).
      expect(relDiff(y.dataSync() as Float32Array, Float32Array.from(ref))).toBeGreaterThan(1e-4);
      tf.dispose([xt, y]);
      lw.dispose();
    },
  );

  it('keeps gate|up in one buffer: the pair and its prefix views (odd too) multiply in one product', () => {
    const [I, H] = [70, 41];
    const g = values(I * H, 10);
    const u = values(I * H, 11);
    const [gate, up] = LinearWeight.int8Pair(g, u, I, H);
    expect(gate.bytes).toBe((Math.ceil(H / 4) * 2 * I + 2 * I) * 4);
    expect(up.bytes).toBe(0);
    const x = values(3 * H, 12);
    const xt = tf.tensor2d(x, [3, H]);
    for (const n of [I, 50, 31]) {
      const [gv, uv] = [gate.prefix(H, n), up.prefix(H, n)];
      const both = LinearWeight.applyPair(xt, gv, uv)!;
      expect(both.shape).toEqual([3, 2 * n]);
      const a = gv.apply(xt).dataSync() as Float32Array;
      const b = uv.apply(xt).dataSync() as Float32Array;
      const d = both.dataSync() as Float32Array;
      expect(d.filter((_, i) => i % (2 * n) < n)).toEqual(a);
      expect(d.filter((_, i) => i % (2 * n) >= n)).toEqual(b);
      const rg = referenceAndBound(x, g, 3, H, n, H);
      const ru = referenceAndBound(x, u, 3, H, n, H);
      expect(boundRatio(a, rg.ref, rg.bound)).toBeLessThanOrEqual(1);
      expect(boundRatio(b, ru.ref, ru.bound)).toBeLessThanOrEqual(1);
      both.dispose();
    }
    tf.dispose(xt);
    [gate, up].forEach((w) => w.dispose());
  });

  it('rejects mismatched shapes in one line', () => {
    const lw = LinearWeight.int8(values(8 * 4, 4), 8, 4);
    expect(() => lw.prefix(5, 8)).toThrow(RangeError);
    const x = tf.zeros([2, 9]) as tf.Tensor2D;
    const q = quantizeRows(x);
    expect(() => int8MatMul(q, tf.zeros([1, 8], 'int32') as tf.Tensor2D, tf.zeros([8]), 9, 8)).toThrow(
      /MatformerInt8MatMul/,
    );
    tf.dispose([x, q]);
    lw.dispose();
  });
});

describeIfWebGpu('int8 matmul on webgpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  /** quantizeRows + the product of the [k, n] view on `backend`, as host arrays. */
  const run = async (
    backend: string,
    x: Float32Array,
    make: () => LinearWeight[],
    m: number,
    k: number,
    n: number,
  ): Promise<{ q: Int32Array; ys: Float32Array[]; pair: Float32Array | null }> => {
    await tf.setBackend(backend);
    const ws = make();
    const xt = tf.tensor2d(x, [m, k]);
    const q = quantizeRows(xt);
    const views = ws.map((w) => w.prefix(k, n));
    const ys = views.map((v) => v.apply(xt));
    const pair = views.length === 2 ? LinearWeight.applyPair(xt, views[0]!, views[1]!) : null;
    const out = {
      q: (await q.data()) as Int32Array,
      ys: await Promise.all(ys.map(async (y) => (await y.data()) as Float32Array)),
      pair: pair ? ((await pair.data()) as Float32Array) : null,
    };
    tf.dispose([xt, q, ...ys, ...(pair ? [pair] : [])]);
    ws.forEach((w) => w.dispose());
    await tf.setBackend('webgpu');
    return out;
  };

  it.each(CASES)(
    'm %i, k %i, n %i of [%i, %i]: the same integers as the cpu twin',
    async (m, k, n, outP, inP) => {
      const x = values(m * k, 5);
      const w = values(outP * inP, 6);
      const make = () => [LinearWeight.int8(w, outP, inP)];
      const gpu = await run('webgpu', x, make, m, k, n);
      const cpu = await run('cpu', x, make, m, k, n);
      expect(gpu.q).toEqual(cpu.q);
      // Same int32 sums; the scale products are float32 on both (at most an ulp apart).
      expect(relDiff(gpu.ys[0]!, cpu.ys[0]!)).toBeLessThan(1e-6);
      const { ref, bound } = referenceAndBound(x, w, m, k, n, inP);
      expect(boundRatio(gpu.ys[0]!, ref, bound)).toBeLessThanOrEqual(1);
    },
  );

  it.each([1, 8, 9, 40])(
    'the gate|up pair at m %i: one product equals the two, on both backends',
    async (m) => {
      const [I, H] = [70, 45];
      const g = values(I * H, 7);
      const u = values(I * H, 8);
      const x = values(m * H, 9);
      for (const n of [I, 33]) {
        const make = () => LinearWeight.int8Pair(g, u, I, H);
        const gpu = await run('webgpu', x, make, m, H, n);
        const cpu = await run('cpu', x, make, m, H, n);
        const joined = (a: Float32Array, b: Float32Array) => {
          const out = new Float32Array(2 * a.length);
          for (let r = 0; r < m; r++) {
            out.set(a.subarray(r * n, (r + 1) * n), r * 2 * n);
            out.set(b.subarray(r * n, (r + 1) * n), r * 2 * n + n);
          }
          return out;
        };
        expect(gpu.pair).toEqual(joined(gpu.ys[0]!, gpu.ys[1]!));
        expect(relDiff(gpu.pair!, cpu.pair!)).toBeLessThan(1e-6);
      }
    },
  );
});

// Rows that continue one shared prefix read its K/V at batch stride 0 (`KvCache.share`, the sweep's paused
// prefix) instead of a per-row copy (`KvCache.broadcast`, the old path): the program against the composition
// with a tiled prefix, the model against the broadcast cache on cpu, wasm and webgpu (sliding layers whose
// prefix outgrew the window and was trimmed, ragged suffixes, KV-sharing consumers, decode steps), and the
// memory a group takes, which must grow with B·T and not with B·P.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  Engine,
  type KvCache,
  PAD_KEY_POSITION,
  type TextModel,
  buildMasks,
  initBackend,
  packKeyPositions,
  sharedPrefixAttention,
} from '../../src/engine';
import { describeIfShared } from '../helpers/shared';
import { GEMMA, compareLogits, gemmaDir, manifest } from './helpers';
import { probeWebGpu } from './webgpu-probe';
import { values } from '../helpers/values';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const runOn = (backend: string) => (backend === 'cpu' || probeWebGpu().ok ? it : it.skip);

describe.each([['cpu'], ['webgpu']])('shared-prefix attention program on %s', (backend) => {
  const run = runOn(backend);
  beforeAll(async () => {
    if (backend === 'cpu' || probeWebGpu().ok) await initBackend(backend as 'cpu' | 'webgpu');
  });

  // B rows, A query heads over Kh KV heads, T new queries per row, P prefix columns, S own columns, D, window
  // (0: a full layer). Rows are ragged (padded own columns), the sliding prefix is trimmed (starts at 4).
  run.each([
    [3, 4, 2, 3, 20, 5, 16, 8],
    [2, 2, 1, 1, 70, 4, 32, 0],
    [2, 4, 1, 1, 70, 1, 16, 16],
    [1, 2, 2, 8, 9, 8, 8, 0],
    [2, 2, 1, 2, 0, 3, 8, 4],
  ])(
    'B %i, A %i, Kh %i, T %i, P %i, S %i, D %i, window %i equals the tiled-prefix composition',
    async (B, A, Kh, T, P, S, D, window) => {
      const past = S - T; // own columns before the new ones
      const start = 4;
      const prefixPos = Int32Array.from({ length: P }, (_, s) => start + s);
      const lengths = Array.from({ length: B }, (_, b) => Math.max(1, T - b)); // ragged: row b has T − b real tokens
      const next = start + P;
      const ownPos = new Int32Array(B * S);
      const queryPos = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        for (let s = 0; s < past; s++) ownPos[b * S + s] = next + s;
        for (let t = 0; t < T; t++) {
          queryPos[b * T + t] = next + past + t;
          ownPos[b * S + past + t] = t < lengths[b]! ? next + past + t : PAD_KEY_POSITION;
        }
      }
      const q = values(B * A * T * D, 50);
      const kp = values(Kh * P * D, 51);
      const vp = values(Kh * P * D, 52);
      const k = values(B * Kh * S * D, 53);
      const v = values(B * Kh * S * D, 54);
      // The reference always on cpu (on webgpu a pooled buffer could hand the program the answer).
      await tf.setBackend('cpu');
      const ref = tf.tidy(() => {
        // The old path: the prefix tiled per row, concatenated with the rows' K/V, an additive mask.
        const tile = (x: Float32Array) => tf.tile(tf.tensor4d(x, [1, Kh, P, D]), [B, 1, 1, 1]);
        const kt = tf.concat([tile(kp), tf.tensor4d(k, [B, Kh, S, D])], 2);
        const vt = tf.concat([tile(vp), tf.tensor4d(v, [B, Kh, S, D])], 2);
        const all = new Int32Array(B * (P + S));
        for (let b = 0; b < B; b++) {
          all.set(prefixPos, b * (P + S));
          all.set(ownPos.subarray(b * S, (b + 1) * S), b * (P + S) + P);
        }
        const masks = buildMasks(queryPos, all, B, T, P + S, 0, window || 1 << 30);
        const G = A / Kh;
        const scores = tf.add(
          tf.reshape(
            tf.matMul(
              tf.reshape(tf.tensor4d(q, [B, A, T, D]), [B * Kh, G * T, D]),
              tf.reshape(kt, [B * Kh, P + S, D]),
              false,
              true,
            ),
            [B, A, T, P + S],
          ),
          window ? masks.sliding : masks.full,
        );
        const probs = tf.reshape(tf.softmax(scores), [B * Kh, G * T, P + S]);
        const out = tf.transpose(
          tf.reshape(tf.matMul(probs, tf.reshape(vt, [B * Kh, P + S, D])), [B, A, T, D]),
          [0, 2, 1, 3],
        );
        return tf.reshape(out, [B * T, A * D]);
      });
      const want = (await ref.data()) as Float32Array;
      ref.dispose();
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const got = tf.tidy(() =>
        sharedPrefixAttention(
          tf.tensor4d(q, [B, A, T, D]),
          P > 0 ? { k: tf.tensor4d(kp, [1, Kh, P, D]), v: tf.tensor4d(vp, [1, Kh, P, D]) } : null,
          { k: tf.tensor4d(k, [B, Kh, S, D]), v: tf.tensor4d(v, [B, Kh, S, D]) },
          tf.tensor1d(packKeyPositions(queryPos, prefixPos, ownPos), 'int32'),
          window,
        ),
      );
      const data = (await got.data()) as Float32Array;
      got.dispose();
      expect(tf.memory().numTensors).toBe(before);
      expect(maxAbsDiff(data, want)).toBeLessThan(1e-5);
    },
  );
});

/** The model's logits of `suffixes` after a prefix, through a shared or a broadcast cache, then a decode step. */
async function continueAfter(
  model: TextModel,
  prefix: KvCache,
  suffixes: number[][],
  mode: 'share' | 'broadcast',
): Promise<{ first: Float32Array[]; step: Float32Array[] }> {
  const cache = mode === 'share' ? prefix.share(suffixes.length) : prefix.broadcast(suffixes.length);
  try {
    const first = (await model.logits(suffixes, { cache })).map((x) => x.slice());
    // Decode step variant: one query per row (rows at different positions after the ragged suffixes).
    const step = (
      await model.logits(
        suffixes.map((s) => [s[0]!]),
        { cache },
      )
    ).map((x) => x.slice());
    return { first, step };
  } finally {
    cache.dispose();
  }
}

describeIfShared(
  'shared prefix against the broadcast copy (tiny-e4b: window 8, 15 KV-sharing consumers)',
  () => {
    describe.each([['cpu'], ['wasm'], ['webgpu']])('on %s', (backend) => {
      const run = backend === 'webgpu' ? runOn('webgpu') : it;
      let engine: Engine;
      let seqs: number[][];
      beforeAll(async () => {
        if (backend === 'webgpu' && !probeWebGpu().ok) return;
        await initBackend(backend as 'cpu' | 'wasm' | 'webgpu');
        engine = await Engine.load(path.join(gemmaDir(), 'tiny-e4b'), {
          backend: backend as 'cpu' | 'wasm' | 'webgpu',
        });
        seqs = manifest()['tiny-e4b']!.inputs;
      });
      afterAll(() => engine?.dispose());

      run('gives the broadcast path logits for ragged suffixes and a decode step', async () => {
        // A submodel too: skipped layers and narrowed FFNs change which layers produce and consume K/V.
        const irregular = manifest()['tiny-e4b']!.slices.irregular!;
        const sub = { skip: irregular.layers_to_skip, ffn: irregular.ffn_hidden_dims };
        for (const spec of [undefined, sub]) {
          const model = engine.view(spec);
          const prefix = model.newCache(1);
          try {
            await model.prefill([seqs[0]!.slice(0, 30)], prefix); // 30 > window 8: the sliding prefix is trimmed
            expect(prefix.slidingLength).toBeLessThan(prefix.length);
            const suffixes = [seqs[1]!, seqs[0]!.slice(30, 33), [seqs[1]![3]!], seqs[0]!.slice(31, 40)];
            const before = tf.memory().numTensors;
            const shared = await continueAfter(model, prefix, suffixes, 'share');
            expect(tf.memory().numTensors).toBe(before);
            const copied = await continueAfter(model, prefix, suffixes, 'broadcast');
            let worst = 0;
            let relRms = 0;
            const want = [...copied.first, ...copied.step];
            for (const [i, x] of [...shared.first, ...shared.step].entries()) {
              const c = compareLogits(x, want[i]!, model.cfg.vocab_size);
              worst = Math.max(worst, c.maxAbs);
              relRms = Math.max(relRms, c.relRms);
              expect(c.argmaxAgreement).toBe(1);
            }
            process.stdout.write(
              `${backend} ${spec ? 'submodel' : 'parent'}: max |Δ logit| ${worst.toExponential(2)}, ` +
                `relative RMS ${relRms.toExponential(2)}\n`,
            );
            // Float rounding alone separates the two: the program sums keys in float32 in another order than the
            // batched matmuls (measured ~1e-4 on this 35-layer random model; the parity bound is 5e-3).
            expect(relRms).toBeLessThan(1e-3);
          } finally {
            prefix.dispose();
            model.dispose();
          }
        }
      });

      run('generates after a shared prompt what it generates from the whole prompts', async () => {
        const model = engine.view();
        const prompt = seqs[0]!.slice(0, 20);
        const rests = [seqs[1]!.slice(0, 4), seqs[0]!.slice(20, 22)];
        const prefix = model.newCache(1);
        try {
          await model.prefill([prompt], prefix);
          const after = await model.generate(rests, { maxNewTokens: 4, prefix });
          const whole = await model.generate(
            rests.map((r) => [...prompt, ...r]),
            { maxNewTokens: 4 },
          );
          expect(after).toEqual(whole);
        } finally {
          prefix.dispose();
          model.dispose();
        }
      });
    });

    describe('memory on cpu', () => {
      let engine: Engine;
      let seqs: number[][];
      beforeAll(async () => {
        await initBackend('cpu');
        engine = await Engine.load(path.join(gemmaDir(), 'tiny-e4b'), { backend: 'cpu' });
        seqs = manifest()['tiny-e4b']!.inputs;
      });
      afterAll(() => engine?.dispose());

      it('a group of B suffixes allocates with B·T, not with B·P', async () => {
        const model = engine.view();
        const T = 4;
        /** Peak and held bytes of one group forward of B suffixes of T tokens after a prefix of P. */
        const measure = async (P: number, B: number, mode: 'share' | 'broadcast') => {
          const prefix = model.newCache(1);
          await model.prefill([seqs[0]!.slice(0, P)], prefix);
          const base = tf.memory().numBytes;
          let held = 0;
          const info = await tf.profile(async () => {
            const cache = mode === 'share' ? prefix.share(B) : prefix.broadcast(B);
            const suffixes = Array.from({ length: B }, (_, b) => seqs[0]!.slice(b, b + T));
            await model.forward(suffixes, { positions: 'last', vocabIds: [1, 2, 3], cache });
            held = tf.memory().numBytes - base;
            cache.dispose();
          });
          prefix.dispose();
          return { peak: info.peakBytes - base, held };
        };
        // Prefix K/V one row holds per prefix token past the window: the full non-consumer layers' K and V
        // (sliding layers hold the last window of the prefix whatever its length).
        const cfg = model.cfg;
        const kvLayers = cfg.layers.filter((l) => l.kvRole !== 'consumer' && l.kind === 'full').length;
        const perPrefixToken = 2 * kvLayers * cfg.num_key_value_heads * cfg.head_dim * 4;
        const ownLayers = cfg.layers.filter((l) => l.kvRole !== 'consumer').length;
        const perOwnToken = 2 * ownLayers * cfg.num_key_value_heads * cfg.head_dim * 4;
        const [P1, P2] = [8, 38];
        const shared = { short: await measure(P1, 8, 'share'), long: await measure(P2, 8, 'share') };
        const copied = { short: await measure(P1, 8, 'broadcast'), long: await measure(P2, 8, 'broadcast') };
        const small = await measure(P2, 2, 'share');
        process.stdout.write(
          `peak bytes of a group (B 8, T ${T}): shared P ${P1} ${shared.short.peak}, P ${P2} ${shared.long.peak}; ` +
            `broadcast ${copied.short.peak}, ${copied.long.peak}; shared B 2, P ${P2} ${small.peak}\n`,
        );
        const copyOfPrefixes = 8 * (P2 - P1) * perPrefixToken;
        // The broadcast copy is what the measurement sees: 8 rows × 30 more prefix tokens × the K/V per token.
        expect(copied.long.peak - copied.short.peak).toBeGreaterThanOrEqual(copyOfPrefixes);
        expect(copied.long.held - copied.short.held).toBeGreaterThanOrEqual(copyOfPrefixes);
        // Shared: a longer prefix adds a few key positions, not a row's copy of it (a tenth of one row's K/V).
        expect(shared.long.peak - shared.short.peak).toBeLessThan(copyOfPrefixes / 80);
        expect(shared.long.held).toBe(shared.short.held);
        // Held after the forward: the rows' own K/V, exactly B·T tokens of it (and of B = 2, a quarter).
        expect(shared.long.held).toBe(8 * T * perOwnToken);
        expect(small.held).toBe(2 * T * perOwnToken);
        model.dispose();
      });
    });
  },
  [GEMMA],
);

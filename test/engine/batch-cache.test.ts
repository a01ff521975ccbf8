// Batching, KV cache and restricted head are exact reformulations of one full forward: padded batches, cached
// decoding (past the sliding window, through shared K/V) and chunked prefill must give the same logits.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Engine, type TextModel, initBackend } from '../../src/engine';
import { describeIfShared } from '../helpers/shared';
import { GEMMA, compareLogits, gemmaDir, manifest } from './helpers';

/** Same computation, different grouping: only float reassociation separates the results. */
const TIGHT = 1e-5;

describeIfShared(
  'batching and KV cache (cpu)',
  () => {
    let engine: Engine;
    let model: TextModel;
    let seqs: number[][];
    let V: number;
    beforeAll(async () => {
      await initBackend('cpu');
      engine = await Engine.load(path.join(gemmaDir(), 'tiny-e4b'));
      // A submodel, so the cache is exercised with recomputed KV roles and narrowed FFNs too.
      model = engine.view({
        skip: [3, 9, 27, 34],
        ffn: manifest()['tiny-e4b']!.slices.irregular!.ffn_hidden_dims,
      });
      seqs = manifest()['tiny-e4b']!.inputs;
      V = model.cfg.vocab_size;
    });
    afterAll(() => engine?.dispose());

    it('a padded batch gives the logits of each sequence alone', async () => {
      // Three lengths in one batch (40, 20, 7), the longest last, so every row but one is padded.
      const extra = seqs[0]!.slice(0, 20);
      const batch = [seqs[1]!, extra, seqs[0]!];
      const together = await model.logits(batch);
      for (const [i, s] of batch.entries()) {
        const [alone] = await model.logits([s!]);
        expect(compareLogits(together[i]!, alone!, V).relRms).toBeLessThan(TIGHT);
      }
      // Causality: the 20-token prefix has the first 20 rows of the 40-token sequence's logits.
      expect(compareLogits(together[1]!, together[2]!.subarray(0, 20 * V), V).relRms).toBeLessThan(TIGHT);
    });

    it('cached decoding one token at a time equals recomputing (past the sliding window of 8)', async () => {
      const seq = seqs[0]!;
      const [full] = await model.logits([seq]);
      const cache = model.newCache(1);
      try {
        // Uneven chunks: a prefill of 5, then 6, then single tokens to the end (40 tokens, window 8).
        const chunks = [seq.slice(0, 5), seq.slice(5, 11), ...seq.slice(11).map((t) => [t])];
        let offset = 0;
        for (const chunk of chunks) {
          const [step] = await model.logits([chunk], { cache });
          const want = full!.subarray(offset * V, (offset + chunk.length) * V);
          expect(compareLogits(step!, want, V).relRms).toBeLessThan(TIGHT);
          offset += chunk.length;
        }
        expect(cache.nextPos).toEqual([seq.length]);
        // Sliding layers dropped keys no query can see again; full layers keep every key.
        expect(cache.length).toBe(seq.length);
        expect(cache.slidingLength).toBeLessThan(seq.length);
        expect(cache.slidingLength).toBeGreaterThanOrEqual(model.cfg.sliding_window - 1);
      } finally {
        cache.dispose();
      }
    });

    it('a ragged batch decodes against its cache like each sequence alone', async () => {
      const a = seqs[0]!.slice(0, 17);
      const b = seqs[1]!;
      const cache = model.newCache(2);
      try {
        await model.logits([a, b], { cache });
        // Steps of different lengths per sequence, starting at different positions (17 and 7).
        const cont = [seqs[0]!.slice(17, 20), [5]];
        const step1 = await model.logits(cont, { cache });
        const step2 = await model.logits([[9], [10]], { cache });
        const [fa] = await model.logits([[...a, ...cont[0]!, 9]]);
        const [fb] = await model.logits([[...b, ...cont[1]!, 10]]);
        expect(compareLogits(step1[0]!, fa!.subarray(17 * V, 20 * V), V).relRms).toBeLessThan(TIGHT);
        expect(compareLogits(step1[1]!, fb!.subarray(7 * V, 8 * V), V).relRms).toBeLessThan(TIGHT);
        expect(compareLogits(step2[0]!, fa!.subarray(20 * V), V).relRms).toBeLessThan(TIGHT);
        expect(compareLogits(step2[1]!, fb!.subarray(8 * V), V).relRms).toBeLessThan(TIGHT);
      } finally {
        cache.dispose();
      }
    });

    it('batched greedy generation equals one sequence at a time', async () => {
      const prompts = [seqs[1]!, seqs[0]!.slice(0, 12)];
      const together = await model.generate(prompts, { maxNewTokens: 6 });
      for (const [i, p] of prompts.entries())
        expect(together[i]).toEqual((await model.generate([p!], { maxNewTokens: 6 }))[0]);
    });

    it('the restricted head gives the full-vocabulary log-softmax at chosen positions', async () => {
      const ids = [0, 17, 1023, 512, 17];
      const positions = [[0, 39, 20], [6]];
      const rows = await model.forward(seqs, { positions, vocabIds: ids });
      const full = await model.logits(seqs);
      positions.forEach((ps, b) =>
        ps.forEach((t, j) => {
          const row = full[b]!.subarray(t * V, (t + 1) * V);
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((s, z) => s + Math.exp(z - m), 0));
          expect(rows[b]![j]!.logsumexp).toBeCloseTo(lse, 4);
          ids.forEach((id, k) => expect(rows[b]![j]!.logits[k]).toBeCloseTo(row[id]!, 4));
        }),
      );
    });

    it('an elastic view does not copy full-width FFNs and frees its narrowed ones', () => {
      const before = tf.memory().numTensors;
      const same = engine.view();
      expect(same.extraBytes).toBe(0);
      same.dispose();
      const narrow = engine.view({ skip: [], ffn: new Array(35).fill(128) });
      expect(narrow.extraBytes).toBe(35 * 3 * 64 * 128 * 4);
      narrow.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });

    it('rejects inputs it cannot run, with user-facing errors', async () => {
      await expect(model.logits([[2, 5000]])).rejects.toThrow(/outside the text vocabulary/);
      await expect(model.logits([[]])).rejects.toThrow(/empty token sequence/);
      expect(() => engine.view({ skip: [35], ffn: [] })).toThrow(/not a layer/);
      expect(() => engine.view({ skip: [], ffn: new Array(35).fill(512) })).toThrow(
        /width 512 for layer 0 exceeds the parent's 256/,
      );
      expect(() => engine.view({ skip: [1], ffn: new Array(35).fill(256) })).toThrow(
        /35 FFN widths for 34 kept layers/,
      );
    });
  },
  [GEMMA],
);

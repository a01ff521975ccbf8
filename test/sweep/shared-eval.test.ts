// Shared evaluation over the trie of layer plans gives each candidate exactly what evaluating it alone gives
// (EngineScorer, the path `eval` takes): same predictions, |Δ log-prob| ≤ 1e-4 on cpu, for random candidate
// sets, prompts and memory caps (a tiny cap forces passes and one-candidate-at-a-time recomputation).
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { Engine, EngineScorer, initBackend } from '../../src/engine';
import { deriveSubmodel, loadConfig } from '../../src/gemma3n';
import { buildTrie, scoreShared, trieLayers } from '../../src/sweep';
import { tmpDir } from '../helpers/tmp';
import { demoConfig, randomCheckpoint } from './helpers';

const LAYERS = 10;
const WIDTHS = [16, 48, 64];
const argmax = (r: readonly number[]) => r.indexOf(Math.max(...r));

describe('scoreShared', () => {
  let engine: Engine;
  beforeAll(async () => {
    await initBackend('cpu');
    const dir = await randomCheckpoint(
      tmpDir(),
      'm10',
      demoConfig({ layers: LAYERS, width: 64, kvShared: 4, vocab: 512 }),
      7,
    );
    engine = await Engine.load(dir);
  });
  afterAll(() => engine?.dispose());

  // A candidate: per-layer width codes and a skip mask over layers that may be skipped alone or together.
  const candidate = fc.record({
    widths: fc.array(fc.constantFrom(...WIDTHS), { minLength: LAYERS, maxLength: LAYERS }),
    skip: fc.subarray([2, 3, 7, 8]),
  });
  const ids = (min: number, max: number) =>
    fc.array(fc.integer({ min: 3, max: 511 }), { minLength: min, maxLength: max });

  it('equals evaluating every candidate alone, on random candidate sets', async () => {
    const parent = loadConfig(engine.dir);
    await fc.assert(
      fc.asyncProperty(
        fc.array(candidate, { minLength: 1, maxLength: 5 }),
        ids(2, 14),
        fc.array(ids(1, 5), { minLength: 1, maxLength: 5 }),
        fc.constantFrom(1 << 30, 20_000, 1),
        fc.integer({ min: 1, max: 3 }),
        async (cands, prefix, suffixes, memoryCap, groupSize) => {
          const specs = cands
            .map((c) => ({ skip: c.skip, ffn: c.widths.filter((_, l) => !c.skip.includes(l)) }))
            .filter((s) => {
              try {
                deriveSubmodel(parent, s);
                return true;
              } catch {
                return false;
              }
            });
          fc.pre(specs.length > 0);
          const views = specs.map((s) => engine.view(s));
          const parentView = engine.view();
          const before = tf.memory().numTensors;
          try {
            const shared = await scoreShared(
              parentView,
              views.map((m, i) => ({ key: String(i), model: m })),
              [2, ...prefix],
              suffixes,
              [10, 11, 12, 13],
              { groupSize, memoryCap, share: true },
            );
            for (const [i, m] of views.entries()) {
              const alone = await new EngineScorer(m, { groupSize }).scoreSuffixes(
                [2, ...prefix],
                suffixes,
                [10, 11, 12, 13],
              );
              const got = shared.scores.get(String(i))!;
              expect(got).toHaveLength(alone.length);
              got.forEach((row, q) => {
                expect(argmax(row)).toBe(argmax(alone[q]!));
                row.forEach((lp, j) => expect(Math.abs(lp - alone[q]![j]!)).toBeLessThanOrEqual(1e-4));
              });
            }
            expect(shared.layerTokensDone).toBeGreaterThan(0);
            if (memoryCap > 1) expect(shared.layerTokensDone).toBeLessThanOrEqual(shared.layerTokensUnshared);
            // Nothing left behind on the backend.
            expect(tf.memory().numTensors).toBe(before);
          } finally {
            views.forEach((v) => v.dispose());
            parentView.dispose();
          }
        },
      ),
      { numRuns: 12, seed: 42 },
    );
  });

  it('runs each shared layer once: two candidates differing in the last layer cost one path plus one layer', async () => {
    const full = Array.from({ length: LAYERS }, () => 64);
    const a = engine.view({ skip: [], ffn: full });
    const b = engine.view({ skip: [], ffn: [...full.slice(0, -1), 16] });
    try {
      const trie = buildTrie([
        { key: 'a', model: a },
        { key: 'b', model: b },
      ]);
      expect(trieLayers(trie)).toBe(LAYERS + 1);
      const r = await scoreShared(
        a,
        [
          { key: 'a', model: a },
          { key: 'b', model: b },
        ],
        [2, 5, 6],
        [[7], [8, 9]],
        [10, 11],
        {
          groupSize: 8,
          memoryCap: 1 << 30,
          share: true,
        },
      );
      const tokens = 3 + 1 + 2;
      expect(r.layerTokensDone).toBe((LAYERS + 1) * tokens);
      expect(r.layerTokensUnshared).toBe(2 * LAYERS * tokens);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

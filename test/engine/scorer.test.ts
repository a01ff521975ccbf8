// The engine's ChoiceScorer against lm-evaluation-harness + transformers on tiny-vocab (|Δ logprob| ≤ 1e-3).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Engine, EngineScorer, initBackend } from '../../src/engine';
import { describeIfShared } from '../helpers/shared';
import { GEMMA, gemmaDir, logParity } from './helpers';

interface RefItem {
  subject: string;
  index: number;
  shots: number;
  logprobs: number[];
  /** Only the first two items of each subject carry their token ids. */
  ids: number[] | null;
}
type ItemWithIds = RefItem & { ids: number[] };
const withIds = (items: RefItem[]): ItemWithIds[] => items.filter((it): it is ItemWithIds => it.ids !== null);

const MMLU_REF = `${GEMMA}/tiny-vocab.mmlu-reference.json`;

describeIfShared(
  'EngineScorer (cpu)',
  () => {
    let engine: Engine;
    let ref: { choice_token_ids: number[]; items: RefItem[] };
    beforeAll(async () => {
      await initBackend('cpu');
      engine = await Engine.load(path.join(gemmaDir(), 'tiny-vocab'));
      ref = JSON.parse(fs.readFileSync(path.join(gemmaDir(), 'tiny-vocab.mmlu-reference.json'), 'utf8'));
    });
    afterAll(() => engine?.dispose());

    it('reproduces the reference log-probabilities with a shared prefix per subject and shot count', async () => {
      const model = engine.view();
      const scorer = new EngineScorer(model);
      const groups = new Map<string, ItemWithIds[]>();
      for (const it of withIds(ref.items)) {
        const k = `${it.subject}/${it.shots}`;
        groups.set(k, [...(groups.get(k) ?? []), it]);
      }
      const before = tf.memory().numTensors;
      let worst = 0;
      for (const [key, items] of groups) {
        // The longest common prefix (the few-shot block / header), leaving every suffix at least one token.
        let lcp = 0;
        while (items.every((it) => lcp < it.ids.length - 1 && it.ids[lcp] === items[0]!.ids[lcp])) lcp++;
        const got = await scorer.scoreSuffixes(
          items[0]!.ids.slice(0, lcp),
          items.map((it) => it.ids.slice(lcp)),
          ref.choice_token_ids,
        );
        items.forEach((it, i) =>
          it.logprobs.forEach((lp, j) => {
            worst = Math.max(worst, Math.abs(got[i]![j]! - lp));
            expect(Math.abs(got[i]![j]! - lp)).toBeLessThanOrEqual(1e-3);
          }),
        );
        expect(lcp).toBeGreaterThan(key.endsWith('/5') ? 200 : 10);
      }
      expect([...groups.values()].flat().length).toBe(8);
      logParity(`cpu\ttiny-vocab\tmmlu\tscorer\t8 items\tmax |Δ logprob| ${worst.toExponential(2)}`);
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });

    it('gives the same scores whatever the grouping and prefix split', async () => {
      const model = engine.view({ skip: [2], ffn: [64, 96, 128, 64, 96, 128, 64, 96, 128] });
      const items = withIds(ref.items)
        .filter((it) => it.shots === 0)
        .slice(0, 3);
      const ids = ref.choice_token_ids;
      const one = new EngineScorer(model, { groupSize: 1 });
      const many = new EngineScorer(model, { groupSize: 8 });
      const a = await one.scoreSuffixes(
        items[0]!.ids.slice(0, 5),
        items.map((it) => it.ids.slice(5)),
        ids,
      );
      const b = await many.scoreSuffixes(
        items[0]!.ids.slice(0, 5),
        items.map((it) => it.ids.slice(5)),
        ids,
      );
      // The prefix K/V copied into every row (the path kept to measure against) scores the same.
      const copying = new EngineScorer(model, { groupSize: 8, sharePrefix: false });
      const d = await copying.scoreSuffixes(
        items[0]!.ids.slice(0, 5),
        items.map((it) => it.ids.slice(5)),
        ids,
      );
      for (const [i, row] of d.entries()) row.forEach((v, j) => expect(v).toBeCloseTo(b[i]![j]!, 4));
      // No prefix sharing at all: the whole prompt but its first token as the suffix.
      for (const [i, it] of items.entries()) {
        const [c] = await many.scoreSuffixes(it.ids.slice(0, 1), [it.ids.slice(1)], ids);
        for (let j = 0; j < ids.length; j++) {
          expect(a[i]![j]).toBeCloseTo(b[i]![j]!, 4);
          expect(a[i]![j]).toBeCloseTo(c![j]!, 4);
          expect(c![j]).toBeLessThan(0);
        }
      }
      await expect(many.scoreSuffixes([], [[2]], ids)).rejects.toThrow(/prefix/);
      await expect(many.scoreSuffixes([2], [[]], ids)).rejects.toThrow(/suffixes/);
      model.dispose();
    });
  },
  [GEMMA, MMLU_REF],
);

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  type ChoiceScorer,
  type MmluDataset,
  type Progress,
  type TextTokenizer,
  LETTERS,
  evaluate,
  fewShotPrefix,
  loadMmlu,
  loadTokenizer,
  predict,
  promptText,
  questionsOf,
  readPredictionsJsonl,
  selectSubset,
  subsetId,
  writePredictionsJsonl,
  writeResults,
} from '../../src/eval';
import { miniRows, tempDir, writeCsvFolder } from './helpers/mini-mmlu';

const VOCAB = 262_145;

/**
 * An exact toy language model: per choice id, a decaying sum of bigram weights over the whole sequence
 * (so the score depends on every token, like attention). Its "KV cache" is that state after the prefix,
 * computed once per distinct prefix array. Every id outside the choices has logit 0.
 */
class BigramScorer implements ChoiceScorer {
  calls: { prefix: readonly number[]; n: number }[] = [];
  tokensRun = 0;
  private cache = new Map<readonly number[], { s: number[]; last: number }>();

  private run(ids: readonly number[], from: { s: number[]; last: number }, choiceIds: readonly number[]) {
    const s = [...from.s];
    let last = from.last;
    for (const t of ids) {
      choiceIds.forEach((c, k) => {
        s[k] = 0.9 * s[k]! + ((((last * 7919 + t) * 31 + c) % 997) / 997 - 0.5) * 3;
      });
      last = t;
    }
    this.tokensRun += ids.length;
    return { s, last };
  }

  private logSoftmax(s: number[]): number[] {
    const lse = Math.log(s.reduce((a, x) => a + Math.exp(x), 0) + (VOCAB - s.length));
    return s.map((x) => x - lse);
  }

  async scoreSuffixes(
    prefix: readonly number[],
    suffixes: readonly (readonly number[])[],
    choiceIds: readonly number[],
  ) {
    this.calls.push({ prefix, n: suffixes.length });
    let st = this.cache.get(prefix);
    if (!st) {
      st = this.run(prefix, { s: choiceIds.map(() => 0), last: -1 }, choiceIds);
      this.cache.set(prefix, st);
    }
    const base = st;
    return suffixes.map((suf) => this.logSoftmax(this.run(suf, base, choiceIds).s));
  }

  /** The same model without any cache, over the whole prompt. */
  scoreWhole(ids: readonly number[], choiceIds: readonly number[]): number[] {
    return this.logSoftmax(this.run(ids, { s: choiceIds.map(() => 0), last: -1 }, choiceIds).s);
  }
}

let tok: TextTokenizer;
let ds: MmluDataset;
let dir: string;
beforeAll(async () => {
  tok = await loadTokenizer();
  dir = await tempDir();
  await writeCsvFolder(path.join(dir, 'data'), miniRows());
  ds = await loadMmlu(path.join(dir, 'data'));
});

describe('evaluate', () => {
  it.each([0, 3, 5])(
    'scores %i-shot with prefix reuse exactly like whole prompts, and aggregates',
    async (shots) => {
      const scorer = new BigramScorer();
      const subset = selectSubset(ds);
      const progress: Progress[] = [];
      const { results, predictions } = await evaluate({
        scorer,
        tokenizer: tok,
        dataset: ds,
        subset,
        shots,
        batchSize: 3,
        model: 'toy-bigram',
        spec: { layers: 2 },
        onProgress: (p) => progress.push(p),
      });
      const choiceIds = [562, 603, 565, 622];
      expect(predictions.map((p) => [p.subject, p.index])).toEqual(
        subset.items.map((i) => [i.subject, i.index]),
      );
      let naive = 0;
      let correct = 0;
      for (const p of predictions) {
        const q = questionsOf(ds, 'test', p.subject)[p.index]!;
        const ids = tok.encode(promptText(ds, q, shots), true);
        naive += ids.length;
        expect(p.logprobs).toEqual(new BigramScorer().scoreWhole(ids, choiceIds));
        expect(p.gold).toBe(LETTERS[q.answer]);
        expect(p.pred).toBe(LETTERS[predict(p.logprobs)]);
        if (p.pred === p.gold) correct++;
      }
      expect(results.overall).toMatchObject({ correct, n: 16, acc: correct / 16 });
      expect(Object.keys(results.categories).sort()).toEqual([
        'humanities',
        'other',
        'social_sciences',
        'stem',
      ]);
      expect(results.subjects.abstract_algebra!.n).toBe(7);
      expect(results).toMatchObject({
        model: 'toy-bigram',
        spec: { layers: 2 },
        shots,
        choice_token_ids: choiceIds,
      });
      expect(results.subset).toEqual({ id: subsetId(subset, shots), split: 'test', n: 16, spec: {} });

      // Token accounting: naive = whole prompts; processed = one prefix per subject + suffixes = what the model ran.
      expect(results.timing.tokens_naive).toBe(naive);
      expect(results.timing.tokens_processed).toBe(scorer.tokensRun);
      expect(results.timing.prefix_reuse_questions).toBe(16);
      const prefixLens = [...new Set(scorer.calls.map((c) => c.prefix))].map((p) => p.length);
      expect(prefixLens).toHaveLength(4);
      // Each subject's prefix is run once instead of once per question.
      const saved = [...ds.splits.test.keys()].reduce(
        (a, subject) =>
          a +
          (questionsOf(ds, 'test', subject).length - 1) *
            tok.encode(fewShotPrefix(ds, subject, shots), true).length,
        0,
      );
      expect(results.timing.tokens_processed).toBe(naive - saved);
      if (shots > 0) expect(results.timing.tokens_processed).toBeLessThan(naive);
      expect(results.timing.questions_per_s).toBeGreaterThan(0);

      // Batches never exceed batchSize; progress counts up to the total.
      expect(Math.max(...scorer.calls.map((c) => c.n))).toBe(3);
      expect(scorer.calls.reduce((a, c) => a + c.n, 0)).toBe(16);
      expect(progress.map((p) => p.done)).toEqual([...progress.map((p) => p.done)].sort((a, b) => a - b));
      expect(progress.at(-1)).toMatchObject({ done: 16, total: 16, eta_s: 0 });
    },
  );

  it('falls back to whole prompts (prefix <bos>) when the split does not tokenise identically', async () => {
    // Characters as tokens, but "\n\n" fuses with the next character: separate tokenisation then differs.
    const merging: TextTokenizer = {
      bosId: 2,
      source: 'merging',
      encode: (t, bos) => {
        const body = /^ [A-D]$/.test(t) ? [t] : (t.match(/\n\n.|[\s\S]/g) ?? []);
        return [
          ...(bos ? [2] : []),
          ...body.map((s) => s.split('').reduce((a, c) => a * 131 + c.charCodeAt(0), 7) % 200_000),
        ];
      },
    };
    const scorer = new BigramScorer();
    const subset = selectSubset(ds, { subjects: ['abstract_algebra', 'virology'] });
    const { results, predictions } = await evaluate({
      scorer,
      tokenizer: merging,
      dataset: ds,
      subset,
      shots: 2,
    });
    expect(results.timing.prefix_reuse_questions).toBe(0);
    expect(scorer.calls.every((c) => c.prefix.length === 1 && c.prefix[0] === 2)).toBe(true);
    expect(results.timing.tokens_processed).toBe(results.timing.tokens_naive - 9 + 2); // <bos> once per subject
    const choiceIds = ['A', 'B', 'C', 'D'].map((l) => merging.encode(` ${l}`, false)[0]!);
    for (const p of predictions) {
      const ids = merging.encode(promptText(ds, questionsOf(ds, 'test', p.subject)[p.index]!, 2), true);
      expect(p.logprobs).toEqual(new BigramScorer().scoreWhole(ids, choiceIds));
    }
  });

  it('rejects a scorer that returns the wrong shape, and bad options', async () => {
    const subset = selectSubset(ds, { subjects: ['virology'] });
    const bad: ChoiceScorer = { scoreSuffixes: async (_p, s) => s.map(() => [-1, -2, -3]) };
    await expect(evaluate({ scorer: bad, tokenizer: tok, dataset: ds, subset, shots: 0 })).rejects.toThrow(
      /expected 2 rows of 4 log-probabilities/,
    );
    const nan: ChoiceScorer = { scoreSuffixes: async (_p, s) => s.map(() => [NaN, -2, -3, -4]) };
    await expect(evaluate({ scorer: nan, tokenizer: tok, dataset: ds, subset, shots: 0 })).rejects.toThrow(
      /scorer returned/,
    );
    const ok = new BigramScorer();
    await expect(evaluate({ scorer: ok, tokenizer: tok, dataset: ds, subset, shots: 6 })).rejects.toThrow(
      /shots/,
    );
    await expect(
      evaluate({ scorer: ok, tokenizer: tok, dataset: ds, subset, shots: 0, batchSize: 0 }),
    ).rejects.toThrow(/batchSize/);
    const missing = { ...subset, items: [{ subject: 'virology', index: 99 }] };
    await expect(
      evaluate({ scorer: ok, tokenizer: tok, dataset: ds, subset: missing, shots: 0 }),
    ).rejects.toThrow(/virology has no test question #99/);
  });
});

describe('result files', () => {
  it('are written atomically and read back', async () => {
    const { results, predictions } = await evaluate({
      scorer: new BigramScorer(),
      tokenizer: tok,
      dataset: ds,
      subset: selectSubset(ds, { sample: 5, seed: 1 }),
      shots: 1,
    });
    const out = path.join(dir, 'out');
    await fs.mkdir(out);
    const rj = path.join(out, 'results.json');
    const pj = path.join(out, 'predictions.jsonl');
    await fs.writeFile(rj, 'old');
    await writeResults(rj, results);
    await writePredictionsJsonl(pj, predictions);
    expect(JSON.parse(await fs.readFile(rj, 'utf8'))).toEqual(JSON.parse(JSON.stringify(results)));
    expect(await readPredictionsJsonl(pj)).toEqual(predictions);
    expect((await fs.readFile(pj, 'utf8')).trim().split('\n')).toHaveLength(5);
    expect((await fs.readdir(out)).sort()).toEqual(['predictions.jsonl', 'results.json']); // no temp files left
    // A failed write leaves neither the target nor a temp file.
    await expect(writeResults(path.join(out, 'missing-dir', 'r.json'), results)).rejects.toThrow();
    expect((await fs.readdir(out)).sort()).toEqual(['predictions.jsonl', 'results.json']);
  });
  it('reject malformed prediction lines with file and line', async () => {
    const f = path.join(dir, 'bad.jsonl');
    await fs.writeFile(
      f,
      '{"subject":"anatomy","index":0,"gold":"A","pred":"B","logprobs":[-1,-2,-3,-4]}\n{"subject":"anatomy"}\n',
    );
    await expect(readPredictionsJsonl(f)).rejects.toThrow(
      new RegExp(`^${f}:2: expected \\{subject, index, gold, pred, logprobs\\[4\\]\\}`),
    );
  });
});

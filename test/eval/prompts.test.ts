import { readFileSync } from 'node:fs';
import {
  EvalInputError,
  fewShotPrefix,
  formatQuestion,
  loadMmlu,
  type MmluDataset,
  promptText,
  questionsOf,
} from '../../src/eval';
import { MMLU_DATA, MMLU_DOC, describeWith } from './helpers/shared';
import { syntheticDataset } from './helpers/synthetic';

/** The fenced block after "Exact 5-shot prompt" in the protocol doc. */
function docExample(): string {
  const doc = readFileSync(MMLU_DOC, 'utf8');
  const m = /Exact 5-shot prompt[^\n]*\n[^\n]*\n\n```\n([\s\S]*?)\n```/.exec(doc);
  if (!m?.[1]) throw new Error(`${MMLU_DOC}: example block not found`);
  return m[1];
}

describeWith([MMLU_DATA, MMLU_DOC], 'harness prompts on the shared data', () => {
  let ds: MmluDataset;
  beforeAll(async () => {
    ds = await loadMmlu(MMLU_DATA);
  });
  it('reproduce the doc example for the first abstract_algebra test item, 5-shot', () => {
    const q = questionsOf(ds, 'test', 'abstract_algebra')[0]!;
    const text = promptText(ds, q, 5);
    expect(text).toBe(docExample());
    expect(text).toHaveLength(993);
    expect(text.endsWith('D. 6\nAnswer:')).toBe(true);
  });
  it('are description + question at 0-shot, with a space-separated subject', () => {
    const q = questionsOf(ds, 'test', 'high_school_government_and_politics')[0]!;
    expect(promptText(ds, q, 0)).toBe(
      'The following are multiple choice questions (with answers) about high school government and politics.\n\n' +
        formatQuestion(q, false),
    );
  });
  it('grow by one solved dev example per shot, in file order', () => {
    const dev = questionsOf(ds, 'dev', 'anatomy');
    for (let k = 1; k <= 5; k++) {
      expect(fewShotPrefix(ds, 'anatomy', k)).toBe(
        fewShotPrefix(ds, 'anatomy', k - 1) + formatQuestion(dev[k - 1]!, true) + '\n\n',
      );
    }
  });
});

describe('formatQuestion', () => {
  const q = {
    subject: 'anatomy',
    split: 'test' as const,
    index: 0,
    question: '  Which?\n',
    choices: [' a ', 'b', 'c', 'd'] as const,
    answer: 2 as const,
  };
  it('strips only the question and appends " <letter>" for solved examples', () => {
    expect(formatQuestion(q, false)).toBe('Which?\nA.  a \nB. b\nC. c\nD. d\nAnswer:');
    expect(formatQuestion(q, true)).toBe('Which?\nA.  a \nB. b\nC. c\nD. d\nAnswer: C');
  });
  it('rejects shot counts outside 0-5 and subjects without enough dev rows', () => {
    const ds = syntheticDataset({ anatomy: 2 });
    expect(() => fewShotPrefix(ds, 'anatomy', 6)).toThrow(EvalInputError);
    expect(() => fewShotPrefix(ds, 'anatomy', 1.5)).toThrow(/shots: expected an integer from 0 to 5/);
    const short = {
      ...ds,
      splits: { ...ds.splits, dev: new Map([['anatomy', questionsOf(ds, 'dev', 'anatomy').slice(0, 2)]]) },
    };
    expect(() => fewShotPrefix(short, 'anatomy', 3)).toThrow(/anatomy has 2 dev rows, 3-shot needs 3/);
  });
});

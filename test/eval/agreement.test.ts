// Fast mode's agreement with exact mode (identical answers, |Δ log-prob| over the 4 choices), the round-robin
// agreement sample, and the journal that refuses to resume a run in another precision.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  EvalInputError,
  EvalJournal,
  type JournalHeader,
  type QuestionPrediction,
  type Subset,
  agreementJournalPath,
  agreementSample,
  agreementWith,
  journalPath,
} from '../../src/eval';
import { tmpDir } from '../helpers/tmp';

const pred = (subject: string, index: number, logprobs: number[]): QuestionPrediction => {
  const best = logprobs.indexOf(Math.max(...logprobs));
  return { subject, index, gold: 'A', pred: (['A', 'B', 'C', 'D'] as const)[best]!, logprobs };
};

describe('agreementWith', () => {
  const exact = [
    pred('virology', 0, [-0.1, -2, -3, -4]),
    pred('virology', 1, [-2, -0.2, -3, -4]),
    pred('anatomy', 3, [-1, -1.5, -3, -0.9]),
  ];

  it('counts identical answers and the max and mean |Δ log-prob| over every choice', () => {
    const fast = [
      pred('anatomy', 3, [-0.8, -1.5, -3, -0.95]), // the answer flips D -> A; Δ 0.2, 0, 0, 0.05
      pred('virology', 0, [-0.1, -2, -3, -4]), // identical
      pred('virology', 1, [-2.25, -0.2, -3, -3.9]), // Δ 0.25, 0, 0, 0.1
      pred('virology', 7, [-5, -5, -5, -0.1]), // not in the sample: ignored
    ];
    const a = agreementWith(exact, fast);
    expect(a.with).toBe('exact');
    expect(a.questions).toBe(3);
    expect(a.predictions).toBeCloseTo(2 / 3, 12);
    expect(a.max_dlogprob).toBeCloseTo(0.25, 12);
    expect(a.mean_dlogprob).toBeCloseTo((0.2 + 0.05 + 0.25 + 0.1) / 12, 12);
  });

  it('identical runs agree fully; a question fast mode lacks is a bug, an empty sample an input error', () => {
    expect(agreementWith(exact, exact)).toEqual({
      with: 'exact',
      questions: 3,
      predictions: 1,
      max_dlogprob: 0,
      mean_dlogprob: 0,
    });
    expect(() => agreementWith(exact, exact.slice(1))).toThrow(
      'agreement: question (virology, 0) has no fast-mode prediction',
    );
    expect(() => agreementWith([], exact)).toThrow(EvalInputError);
  });
});

describe('agreementSample', () => {
  const subset: Subset = {
    split: 'test',
    spec: {},
    items: [
      ...[0, 1, 2, 3, 4].map((index) => ({ subject: 'abstract_algebra', index })),
      ...[5, 9].map((index) => ({ subject: 'anatomy', index })),
      ...[0, 1, 2].map((index) => ({ subject: 'virology', index })),
    ],
  };

  it('takes the subjects round-robin and keeps the subset order', () => {
    expect(agreementSample(subset, 4).items).toEqual([
      { subject: 'abstract_algebra', index: 0 },
      { subject: 'abstract_algebra', index: 1 },
      { subject: 'anatomy', index: 5 },
      { subject: 'virology', index: 0 },
    ]);
    const seven = agreementSample(subset, 7).items;
    expect(seven.filter((q) => q.subject === 'anatomy')).toHaveLength(2);
    expect(seven.filter((q) => q.subject === 'abstract_algebra')).toHaveLength(3);
  });

  it('is every question when the subset has fewer, none at 0, and refuses a negative size', () => {
    expect(agreementSample(subset, 100).items).toEqual(subset.items);
    expect(agreementSample(subset, 0).items).toEqual([]);
    expect(() => agreementSample(subset, -1)).toThrow(
      '--agreement-sample: expected a non-negative integer, got -1',
    );
  });
});

describe('the journal and precision', () => {
  const header: JournalHeader = {
    checkpoint: 'f'.repeat(64),
    spec: { skip: [], ffn: [64, 64] },
    subset: 'abc',
    shots: 0,
    protocol: 'p1',
    precision: 'exact',
  };
  const questions = new Set(['virology#0', 'virology#1']);
  const line = pred('virology', 0, [-0.1, -2, -3, -4]);

  it('refuses to resume a journal written in another precision, in one line; --force starts over', () => {
    const out = path.join(tmpDir(), 'r.json');
    const file = journalPath(out);
    EvalJournal.open(file, header, { resume: false, force: false, questions }).append([line]);
    const resume = { resume: true, force: false, questions };
    expect(() => EvalJournal.open(file, { ...header, precision: 'int8' }, resume)).toThrow(
      `--resume: ${file} was written by a different run (precision "exact" vs now "int8"); pass --force to start over`,
    );
    // The same precision resumes it.
    expect(EvalJournal.open(file, header, resume).done).toEqual([line]);
    const notices: string[] = [];
    const fresh = EvalJournal.open(
      file,
      { ...header, precision: 'int8' },
      { ...resume, force: true, onNotice: (n) => notices.push(n) },
    );
    expect(fresh.done).toEqual([]);
    expect(notices).toEqual([`starting over (--force): discarded ${file}`]);
  });

  it("reads a journal of the build before 'exact' | 'int8' (precision float32) as exact", () => {
    const out = path.join(tmpDir(), 'old.json');
    const file = journalPath(out);
    const old = JSON.stringify({ matformer_eval_journal: 1, ...header, precision: 'float32' });
    fs.writeFileSync(file, `${old}\n${JSON.stringify(line)}\n`);
    const resume = { resume: true, force: false, questions };
    expect(EvalJournal.open(file, header, resume).done).toEqual([line]);
    expect(() => EvalJournal.open(file, { ...header, precision: 'int8' }, resume)).toThrow(
      /precision "exact" vs now "int8"/,
    );
  });

  it('keeps the exact-mode sample in its own journal beside --out', () => {
    const out = path.join('/some/dir', 'r.json');
    expect(agreementJournalPath(out)).toBe('/some/dir/.r.json.exact.partial.jsonl');
    expect(agreementJournalPath(out)).not.toBe(journalPath(out));
  });
});

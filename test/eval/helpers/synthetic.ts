import type { MmluDataset, MmluQuestion, Split } from '../../../src/eval';

/** An in-memory dataset with `counts[subject]` test questions (and 5 dev rows) per subject. */
export function syntheticDataset(counts: Record<string, number>): MmluDataset {
  const make = (split: Split, n: number) =>
    new Map(
      Object.entries(counts).map(([subject, c]) => [
        subject,
        Array.from({ length: split === 'dev' ? 5 : n === 0 ? c : n }, (_, index): MmluQuestion => ({
          subject,
          split,
          index,
          question: `${subject} ${split} ${index}`,
          choices: ['w', 'x', 'y', 'z'],
          answer: (index % 4) as MmluQuestion['answer'],
        })),
      ]),
    );
  return {
    source: 'synthetic',
    format: 'jsonl',
    splits: { dev: make('dev', 5), val: make('val', 1), test: make('test', 0) },
  };
}

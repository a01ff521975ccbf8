import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeMmluParquet } from './parquet-writer';

/** A small self-made MMLU dataset with the awkward bits of the real one (quotes, commas, newlines, spaces). */
export interface MiniRow {
  subject: string;
  split: 'dev' | 'val' | 'test';
  question: string;
  choices: [string, string, string, string];
  answer: 'A' | 'B' | 'C' | 'D';
}

const SUBJECTS = ['abstract_algebra', 'philosophy', 'sociology', 'virology'];
const TEST_COUNTS = [7, 3, 4, 2];

export function miniRows(): MiniRow[] {
  const rows: MiniRow[] = [];
  SUBJECTS.forEach((subject, s) => {
    for (const [split, n] of [
      ['dev', 5],
      ['val', 1],
      ['test', TEST_COUNTS[s]],
    ] as const) {
      for (let i = 0; i < n!; i++) {
        const tricky = i % 3 === 0 ? ` Say "hi", then\nanswer ${i}. ` : `What is ${i} + ${s}?`;
        rows.push({
          subject,
          split,
          question: `${split} ${subject} #${i}:${tricky}`,
          choices: [`${i + s}`, ` ${i}, maybe `, `"${i * 2}"`, `none`],
          answer: 'ABCD'[(i + s) % 4] as MiniRow['answer'],
        });
      }
    }
  });
  return rows;
}

const csvField = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** Writes `<dir>/<split>/<subject>_<split>.csv`; odd subjects use CRLF and no final newline. */
export async function writeCsvFolder(dir: string, rows: readonly MiniRow[]): Promise<void> {
  const files = new Map<string, MiniRow[]>();
  for (const r of rows) {
    const f = path.join(dir, r.split, `${r.subject}_${r.split}.csv`);
    files.set(f, [...(files.get(f) ?? []), r]);
  }
  for (const [f, rs] of files) {
    const odd = SUBJECTS.indexOf(rs[0]!.subject) % 2 === 1;
    const eol = odd ? '\r\n' : '\n';
    const lines = rs.map((r) => [r.question, ...r.choices, r.answer].map(csvField).join(','));
    await fs.mkdir(path.dirname(f), { recursive: true });
    await fs.writeFile(f, lines.join(eol) + (odd ? '' : eol));
  }
}

/** JSONL with answers alternately as letters and indices, and HF's "validation" split name. */
export function toJsonl(rows: readonly MiniRow[]): string {
  return rows
    .map((r, i) =>
      JSON.stringify({
        subject: r.subject,
        split: r.split === 'val' ? 'validation' : r.split,
        question: r.question,
        choices: r.choices,
        answer: i % 2 ? r.answer : 'ABCD'.indexOf(r.answer),
      }),
    )
    .join('\n');
}

/** HF layout: `<dir>/all/{dev,validation,test}-00000-of-00001.parquet`. */
export async function writeParquetFolder(dir: string, rows: readonly MiniRow[]): Promise<void> {
  await fs.mkdir(path.join(dir, 'all'), { recursive: true });
  for (const [split, name] of [
    ['dev', 'dev'],
    ['val', 'validation'],
    ['test', 'test'],
  ] as const) {
    const part = rows
      .filter((r) => r.split === split)
      .map((r) => ({ ...r, answer: 'ABCD'.indexOf(r.answer) }));
    await fs.writeFile(path.join(dir, 'all', `${name}-00000-of-00001.parquet`), writeMmluParquet(part));
  }
}

const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map((d) => fs.rm(d, { recursive: true, force: true })));
});

/** A fresh temp folder, removed after the test file. */
export async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'mmlu-test-'));
  made.push(d);
  return d;
}

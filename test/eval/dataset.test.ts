import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EvalInputError, LETTERS, type MmluDataset, loadMmlu } from '../../src/eval';
import { MiniRow, miniRows, tempDir, toJsonl, writeCsvFolder, writeParquetFolder } from './helpers/mini-mmlu';
import { writeMmluParquet } from './helpers/parquet-writer';

const rows = miniRows();

/** The dataset as plain data, for comparing loaders. */
const flat = (ds: MmluDataset) =>
  (['dev', 'val', 'test'] as const).flatMap((s) =>
    [...ds.splits[s].values()].flat().map((q) => ({ ...q, choices: [...q.choices] })),
  );
const expected = (rs: readonly MiniRow[]) =>
  (['dev', 'val', 'test'] as const).flatMap((split) =>
    [...new Set(rs.map((r) => r.subject))].sort().flatMap((subject) =>
      rs
        .filter((r) => r.split === split && r.subject === subject)
        .map((r, index) => ({
          subject,
          split,
          index,
          question: r.question,
          choices: r.choices,
          answer: LETTERS.indexOf(r.answer),
        })),
    ),
  );

async function loadError(source: string): Promise<Error> {
  const e = await loadMmlu(source).then(
    () => null,
    (err: Error) => err,
  );
  if (!e) throw new Error(`expected loading ${source} to fail`);
  expect(e).toBeInstanceOf(EvalInputError);
  expect(e.message).not.toMatch(/[\r\n]/);
  return e;
}

describe('loadMmlu', () => {
  it('reads a hendrycks CSV folder (LF and CRLF files, no final newline, quoted newlines)', async () => {
    const dir = await tempDir();
    await writeCsvFolder(dir, rows);
    const ds = await loadMmlu(dir);
    expect(ds.format).toBe('csv');
    expect(flat(ds)).toEqual(expected(rows));
  });
  it('reads JSONL with letter or index answers and the "validation" split name', async () => {
    const file = path.join(await tempDir(), 'mmlu.jsonl');
    await fs.writeFile(file, toJsonl(rows) + '\n\n');
    const ds = await loadMmlu(file);
    expect(ds.format).toBe('jsonl');
    expect(flat(ds)).toEqual(expected(rows));
  });
  it('reads cais/mmlu parquet (all/<split>-*.parquet) written in-test', async () => {
    const dir = await tempDir();
    await writeParquetFolder(dir, rows);
    // A per-subject copy beside all/ must not be loaded twice.
    await fs.mkdir(path.join(dir, 'virology'));
    await fs.copyFile(
      path.join(dir, 'all/test-00000-of-00001.parquet'),
      path.join(dir, 'virology/test-0.parquet'),
    );
    const ds = await loadMmlu(dir);
    expect(ds.format).toBe('parquet');
    expect(flat(ds)).toEqual(expected(rows));
    const single = await loadMmlu(path.join(dir, 'all/dev-00000-of-00001.parquet'));
    expect(flat(single)).toEqual(expected(rows.filter((r) => r.split === 'dev')));
  });

  it('names file and line for a CSV row with the wrong field count or answer', async () => {
    const dir = await tempDir();
    const f = path.join(dir, 'anatomy_test.csv');
    await fs.writeFile(f, 'q1,a,b,c,d,A\n"two\nlines",a,b,c,d,B\nq3,a,b,c,D\n');
    expect((await loadError(dir)).message).toBe(
      `${f}:4: expected 6 fields (question, A, B, C, D, answer), got 5`,
    );
    await fs.writeFile(f, 'q1,a,b,c,d,A\r\nq2,a,b,c,d,E\r\n');
    expect((await loadError(dir)).message).toBe(`${f}:2: expected answer A, B, C or D (or 0-3), got "E"`);
    await fs.writeFile(f, 'q1,a,b,c,d, A\n');
    expect((await loadError(dir)).message).toMatch(/anatomy_test\.csv:1: expected answer A, B, C or D/);
  });
  it('rejects unknown subjects, bad JSON, wrong choices and bad answers in JSONL with one-line errors', async () => {
    const f = path.join(await tempDir(), 'x.jsonl');
    const ok = { subject: 'anatomy', split: 'test', question: 'q', choices: ['a', 'b', 'c', 'd'], answer: 1 };
    const cases: [unknown, RegExp][] = [
      [
        { ...ok, subject: 'astrology' },
        /x\.jsonl:2: expected one of the 57 MMLU subjects, got subject "astrology"/,
      ],
      [{ ...ok, choices: ['a', 'b', 'c'] }, /x\.jsonl:2: expected choices to be 4 strings/],
      [{ ...ok, answer: 4 }, /x\.jsonl:2: expected answer A, B, C or D \(or 0-3\), got 4/],
      [{ ...ok, split: 'train' }, /x\.jsonl:2: expected split dev, val or test, got "train"/],
      [{ ...ok, question: 7 }, /x\.jsonl:2: expected question to be a string/],
    ];
    for (const [bad, msg] of cases) {
      await fs.writeFile(f, JSON.stringify(ok) + '\n' + JSON.stringify(bad) + '\n');
      expect((await loadError(f)).message).toMatch(msg);
    }
    await fs.writeFile(f, JSON.stringify(ok) + '\n{"subject": \n');
    expect((await loadError(f)).message).toMatch(/x\.jsonl:2: invalid JSON/);
  });
  it('names the parquet row with a bad answer', async () => {
    const f = path.join(await tempDir(), 'test-0.parquet');
    const good = { question: 'q', subject: 'anatomy', choices: ['a', 'b', 'c', 'd'], answer: 0 };
    await fs.writeFile(f, writeMmluParquet([good, { ...good, answer: 7 }]));
    expect((await loadError(f)).message).toBe(`${f} row 1: expected answer A, B, C or D (or 0-3), got 7`);
  });
  it('says what it expected for a missing path, a folder without data or a wrong file type', async () => {
    const dir = await tempDir();
    expect((await loadError(path.join(dir, 'nope'))).message).toMatch(/no such file or folder/);
    expect((await loadError(dir)).message).toMatch(/no <subject>_<split>\.csv or \.parquet files/);
    await fs.writeFile(path.join(dir, 'a.txt'), '');
    expect((await loadError(path.join(dir, 'a.txt'))).message).toMatch(/unsupported file type/);
  });
});

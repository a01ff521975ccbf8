import { kindOf } from '../formats';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { parseCsv } from '../formats';
import { EvalInputError, quote } from './errors';
import { SUBJECTS, isSubject } from './subjects';

export const SPLITS = ['dev', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];
export type AnswerIndex = 0 | 1 | 2 | 3;
export const LETTERS = ['A', 'B', 'C', 'D'] as const;
export type Letter = (typeof LETTERS)[number];

export interface MmluQuestion {
  subject: string;
  split: Split;
  /** 0-based position within (subject, split) in source order: the harness's doc order. */
  index: number;
  question: string;
  choices: readonly [string, string, string, string];
  answer: AnswerIndex;
}

export interface MmluDataset {
  /** Where it was loaded from (recorded with results). */
  source: string;
  format: 'csv' | 'parquet' | 'jsonl';
  /** split -> subject -> questions in source order. Subjects absent from the source are absent here. */
  splits: Record<Split, ReadonlyMap<string, readonly MmluQuestion[]>>;
}

export function questionsOf(ds: MmluDataset, split: Split, subject: string): readonly MmluQuestion[] {
  return ds.splits[split].get(subject) ?? [];
}

/** Fields of one row before validation; `where` locates it for error messages ("file:line 3", "file row 7"). */
interface RawRow {
  subject: unknown;
  split: Split;
  question: unknown;
  choices: unknown;
  answer: unknown;
  where: string;
}

/**
 * Load MMLU from: a folder of hendrycks CSVs (`<subject>_<split>.csv`, searched recursively, so both
 * `data/{dev,val,test}/` and a flat folder work), a Hugging Face `cais/mmlu` parquet file or folder
 * (`all/` preferred when present; split from the file name, `auxiliary_train` ignored), or a JSONL file.
 */
export async function loadMmlu(source: string): Promise<MmluDataset> {
  const stat = await fs.stat(source).catch(() => {
    throw new EvalInputError(
      `${source}: no such file or folder (expected an MMLU CSV/parquet folder or a .jsonl file)`,
    );
  });
  if (!stat.isFile() && !stat.isDirectory()) {
    throw new EvalInputError(
      `${source}: is ${kindOf(stat)}, expected an MMLU folder or a .jsonl/.parquet file`,
    );
  }
  if (stat.isFile()) {
    if (/\.jsonl$/i.test(source)) return build(source, 'jsonl', await readJsonl(source));
    if (/\.parquet$/i.test(source)) return build(source, 'parquet', await readParquet(source));
    throw new EvalInputError(
      `${source}: unsupported file type (expected .jsonl, .parquet or a folder of CSVs)`,
    );
  }
  const files = await listFiles(source);
  const csvs = files.filter((f) => /_(dev|val|test)\.csv$/.test(path.basename(f)));
  if (csvs.length > 0) {
    const rows: RawRow[] = [];
    for (const f of csvs) rows.push(...(await readCsv(f)));
    return build(source, 'csv', rows);
  }
  let parquets = files.filter((f) => f.endsWith('.parquet'));
  const all = parquets.filter((f) => path.basename(path.dirname(f)) === 'all');
  if (all.length > 0) parquets = all; // per-subject folders repeat the same rows
  if (parquets.length > 0) {
    const rows: RawRow[] = [];
    for (const f of parquets) rows.push(...(await readParquet(f)));
    return build(source, 'parquet', rows);
  }
  throw new EvalInputError(`${source}: no <subject>_<split>.csv or .parquet files found`);
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function readCsv(file: string): Promise<RawRow[]> {
  const m = /^(.+)_(dev|val|test)\.csv$/.exec(path.basename(file));
  if (!m) throw new EvalInputError(`${file}: file name must be <subject>_<dev|val|test>.csv`);
  const [, subject, split] = m;
  return parseCsv(await fs.readFile(file, 'utf8'), file).map((r) => {
    const where = `${file}:${r.line}`;
    if (r.fields.length !== 6) {
      throw new EvalInputError(
        `${where}: expected 6 fields (question, A, B, C, D, answer), got ${r.fields.length}`,
      );
    }
    const [question, a, b, c, d, answer] = r.fields;
    return { subject, split: split as Split, question, choices: [a, b, c, d], answer, where };
  });
}

async function readJsonl(file: string): Promise<RawRow[]> {
  const lines = (await fs.readFile(file, 'utf8')).split(/\r?\n/);
  const rows: RawRow[] = [];
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new EvalInputError(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new EvalInputError(`${where}: expected an object {subject, split, question, choices, answer}`);
    }
    const o = obj as Record<string, unknown>;
    rows.push({ ...o, split: parseSplit(o.split, where), where } as RawRow);
  });
  return rows;
}

async function readParquet(file: string): Promise<RawRow[]> {
  const m = /^(dev|validation|val|test|auxiliary_train)\b/.exec(path.basename(file));
  if (!m) throw new EvalInputError(`${file}: parquet file name must start with dev, validation or test`);
  if (m[1] === 'auxiliary_train') return [];
  const split: Split = m[1] === 'validation' ? 'val' : (m[1] as Split);
  const buf = await fs.readFile(file);
  const arrayBuffer = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let objects: Record<string, unknown>[];
  try {
    objects = await parquetReadObjects({
      file: arrayBuffer,
      columns: ['question', 'subject', 'choices', 'answer'],
    });
  } catch (e) {
    throw new EvalInputError(`${file}: cannot read parquet (${(e as Error).message})`);
  }
  return objects.map((o, i) => ({
    subject: o.subject,
    split,
    question: o.question,
    choices: o.choices,
    answer: typeof o.answer === 'bigint' ? Number(o.answer) : o.answer,
    where: `${file} row ${i}`,
  }));
}

function parseSplit(v: unknown, where: string): Split {
  if (v === 'validation') return 'val';
  if (typeof v === 'string' && (SPLITS as readonly string[]).includes(v)) return v as Split;
  throw new EvalInputError(`${where}: expected split dev, val or test, got ${quote(v)}`);
}

/** Answer as the letter A-D (CSV, JSONL) or the index 0-3 (parquet ClassLabel, JSONL). */
function parseAnswer(v: unknown, where: string): AnswerIndex {
  const letter = typeof v === 'string' ? LETTERS.indexOf(v as Letter) : -1;
  if (letter >= 0) return letter as AnswerIndex;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 3) return v as AnswerIndex;
  throw new EvalInputError(`${where}: expected answer A, B, C or D (or 0-3), got ${quote(v)}`);
}

function build(source: string, format: MmluDataset['format'], rows: readonly RawRow[]): MmluDataset {
  const splits = { dev: new Map(), val: new Map(), test: new Map() } as Record<
    Split,
    Map<string, MmluQuestion[]>
  >;
  for (const r of rows) {
    if (typeof r.subject !== 'string' || !isSubject(r.subject)) {
      throw new EvalInputError(
        `${r.where}: expected one of the 57 MMLU subjects, got subject ${quote(r.subject)}`,
      );
    }
    if (typeof r.question !== 'string') {
      throw new EvalInputError(`${r.where}: expected question to be a string, got ${quote(r.question)}`);
    }
    const choices = Array.isArray(r.choices) ? r.choices : null;
    if (!choices || choices.length !== 4 || !choices.every((c) => typeof c === 'string')) {
      throw new EvalInputError(`${r.where}: expected choices to be 4 strings, got ${quote(r.choices)}`);
    }
    const list = splits[r.split].get(r.subject) ?? [];
    splits[r.split].set(r.subject, list);
    list.push({
      subject: r.subject,
      split: r.split,
      index: list.length,
      question: r.question,
      choices: choices as unknown as MmluQuestion['choices'],
      answer: parseAnswer(r.answer, r.where),
    });
  }
  // Canonical subject order (alphabetical), whatever order the files came in.
  for (const s of SPLITS) {
    splits[s] = new Map(SUBJECTS.filter((x) => splits[s].has(x)).map((x) => [x, splits[s].get(x)!]));
  }
  return { source, format, splits };
}

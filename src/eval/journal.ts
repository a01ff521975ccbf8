// The eval journal: scored questions appended beside --out as they come, so an interrupted run resumes where it
// stopped. Its first line is a header naming what produced the answers: the checkpoint's content fingerprint,
// the submodel, the subset, shots, prompt protocol and precision. `--resume` reuses a journal only when all of
// them match the run asking; otherwise it refuses with one line saying what differs (`--force` starts over).
// Every line is validated, and a question answered twice (a duplicated or contradictory line) is refused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvalInputError } from './errors';
import { fileProblem, isErrnoError } from '../formats';
import { QuestionKeys, parsePredictionLine } from './run';
import type { QuestionPrediction } from './scoring';

/** Bump when journal lines change meaning. */
const JOURNAL_FORMAT = 1;
const HEADER_KEY = 'matformer_eval_journal';

/** What a journal's answers depend on; two runs may share a journal only when every field is equal. */
export interface JournalHeader {
  /** `checkpointFingerprint` of the checkpoint folder (content, not path). */
  readonly checkpoint: string;
  /** The submodel as kept-layer FFN widths and skipped layers; the parent itself is its identity spec. */
  readonly spec: { readonly skip: readonly number[]; readonly ffn: readonly number[] };
  /** `subsetId`: split, shots and the exact questions. */
  readonly subset: string;
  readonly shots: number;
  /** Prompt protocol version (prompts.ts). */
  readonly protocol: string;
  /** Numerics the scores were computed in: the engine's precision, 'exact' or 'int8'. */
  readonly precision: string;
}

const FIELDS: readonly (keyof JournalHeader)[] = [
  'checkpoint',
  'spec',
  'subset',
  'shots',
  'protocol',
  'precision',
];

/** `.<out name>.partial.jsonl` beside --out: one journal per results file. */
export function journalPath(out: string): string {
  return path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.partial.jsonl`);
}

/** `.<out name>.exact.partial.jsonl`: the exact-mode answers of an int8 run's agreement sample. */
export function agreementJournalPath(out: string): string {
  return path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.exact.partial.jsonl`);
}

export interface JournalOptions {
  /** Continue from a matching journal. */
  readonly resume: boolean;
  /** Discard an existing journal (mismatched, corrupt, or simply not resumed) and start over. */
  readonly force: boolean;
  /** Keys `subject#index` of the subset: a journal line outside it is refused. */
  readonly questions: ReadonlySet<string>;
  readonly onNotice?: (line: string) => void;
}

export class EvalJournal {
  private constructor(
    readonly file: string,
    /** Questions scored by the interrupted run(s), validated. */
    readonly done: readonly QuestionPrediction[],
    /** Written with the first append, so a run that fails before scoring leaves no journal. */
    private header: string | null,
  ) {}

  /** Opens (resume) or starts the journal at `file`; refuses anything that could mix runs. */
  static open(file: string, header: JournalHeader, opts: JournalOptions): EvalJournal {
    let done: QuestionPrediction[] = [];
    if (fs.existsSync(file) && scoredLines(file) > 0) {
      try {
        if (!opts.resume) {
          throw new EvalInputError(
            `${file}: an interrupted run left this journal; pass --resume to continue it or --force to start over`,
          );
        }
        done = readJournal(file, header, opts.questions);
        opts.onNotice?.(`resuming: ${done.length} questions already scored (${file})`);
      } catch (err) {
        if (!(err instanceof EvalInputError) || !opts.force) throw err;
        opts.onNotice?.(`starting over (--force): discarded ${file}`);
        done = [];
      }
    } else if (opts.resume) {
      opts.onNotice?.(`resuming: no interrupted run journaled at ${file}; starting from the first question`);
    }
    if (done.length > 0) return new EvalJournal(file, done, null);
    fs.rmSync(file, { force: true });
    return new EvalJournal(file, done, headerLine(header) + '\n');
  }

  append(batch: readonly QuestionPrediction[]): void {
    const lines = batch.map((p) => JSON.stringify(p) + '\n').join('');
    try {
      fs.appendFileSync(this.file, (this.header ?? '') + lines);
    } catch (err) {
      // A write through a descriptor names no file: say which one filled the disk.
      if (isErrnoError(err) && err.path === undefined) err.path = this.file;
      throw err;
    }
    this.header = null;
  }

  remove(): void {
    fs.rmSync(this.file, { force: true });
  }
}

/** Complete lines after the first (a journal with none has nothing to lose). */
function scoredLines(file: string): number {
  const problem = fileProblem(file);
  if (problem) throw new EvalInputError(`${file}: ${problem}`);
  const text = fs.readFileSync(file, 'utf8');
  return (
    text
      .slice(0, text.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((l) => l.trim() !== '').length - 1
  );
}

function headerLine(h: JournalHeader): string {
  return JSON.stringify({ [HEADER_KEY]: JOURNAL_FORMAT, ...h });
}

const show = (key: keyof JournalHeader, v: unknown): string =>
  key === 'checkpoint' && typeof v === 'string' ? v.slice(0, 12) : JSON.stringify(v);

/** The journal's predictions if it was written by a run like `want`; otherwise one line saying what differs. */
function readJournal(
  file: string,
  want: JournalHeader,
  questions: ReadonlySet<string>,
): QuestionPrediction[] {
  const text = fs.readFileSync(file, 'utf8');
  // An interruption can cut the last append short: only complete lines count.
  const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n');
  let got: Record<string, unknown> | null;
  try {
    got = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
  } catch {
    got = null;
  }
  if (got === null || typeof got !== 'object' || got[HEADER_KEY] !== JOURNAL_FORMAT) {
    throw new EvalInputError(
      `--resume: ${file} has no journal header (an older or foreign file); pass --force to start over`,
    );
  }
  // Before 'exact' | 'int8', journals said what exact mode computes in.
  const header = got.precision === 'float32' ? { ...got, precision: 'exact' } : got;
  const differs = FIELDS.filter((k) => JSON.stringify(header[k]) !== JSON.stringify(want[k])).map(
    (k) => `${k} ${show(k, header[k])} vs now ${show(k, want[k])}`,
  );
  if (differs.length > 0) {
    throw new EvalInputError(
      `--resume: ${file} was written by a different run (${differs.join('; ')}); pass --force to start over`,
    );
  }
  const keys = new QuestionKeys();
  const out: QuestionPrediction[] = [];
  lines.forEach((line, i) => {
    if (i === 0 || line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    const p = parsePredictionLine(where, line);
    if (!questions.has(`${p.subject}#${p.index}`)) {
      throw new EvalInputError(`${where}: question (${p.subject}, ${p.index}) is not in this subset`);
    }
    keys.add(where, p);
    out.push(p);
  });
  // Keep the file to its complete lines, so appends continue a clean journal.
  if (text.length !== text.lastIndexOf('\n') + 1) fs.writeFileSync(file, lines.join('\n'));
  return out;
}

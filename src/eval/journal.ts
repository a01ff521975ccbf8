// The evaluation journal: scored questions are appended beside the results file as they come, one JSON line
// each, so an interrupted run loses at most one batch and a resumed run scores only what the journal lacks.
// The name holds the subset id, so a journal is never applied to another selection. Used by `eval` and
// reusable by anything that runs many evaluations (sweeps).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { QuestionPrediction } from './scoring';
import { readPredictionsJsonl } from './run';

export interface JournalStart {
  readonly journal: EvalJournal;
  /** Questions an interrupted earlier run already scored (empty unless resuming). */
  readonly done: QuestionPrediction[];
  /** An earlier run's journal was found and discarded (it was not asked to resume). */
  readonly discarded: boolean;
}

export class EvalJournal {
  private constructor(readonly file: string) {}

  /** `.<out>.<subset id>.partial.jsonl` beside `out`. */
  static pathFor(out: string, subsetId: string): string {
    return path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${subsetId}.partial.jsonl`);
  }

  /**
   * Opens the journal of results file `out` for subset `subsetId`: with `resume`, what an interrupted run
   * scored is read back (complete lines only: an interruption can cut the last append short); without it,
   * an earlier journal is discarded.
   */
  static async open(out: string, subsetId: string, resume: boolean): Promise<JournalStart> {
    const journal = new EvalJournal(EvalJournal.pathFor(out, subsetId));
    if (!fs.existsSync(journal.file)) return { journal, done: [], discarded: false };
    if (!resume) {
      fs.rmSync(journal.file);
      return { journal, done: [], discarded: true };
    }
    const text = fs.readFileSync(journal.file, 'utf8');
    fs.writeFileSync(journal.file, text.slice(0, text.lastIndexOf('\n') + 1));
    return { journal, done: await readPredictionsJsonl(journal.file), discarded: false };
  }

  /** Appends a scored batch (synchronously: it is on disk before the next batch is scored). */
  append(batch: readonly QuestionPrediction[]): void {
    fs.appendFileSync(this.file, batch.map((p) => JSON.stringify(p) + '\n').join(''));
  }

  /** Once the results are written the journal has served its purpose. */
  remove(): void {
    fs.rmSync(this.file, { force: true });
  }
}

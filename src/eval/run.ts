import { promises as fs } from 'node:fs';
import type { Agreement } from './agreement';
import { LETTERS, type Letter, type MmluDataset, type MmluQuestion, questionsOf } from './dataset';
import { EvalInputError, quote } from './errors';
import { fileProblem } from '../formats';
import type { ChoiceScorer } from './model';
import { type TokenizedPrompt, checkShots, tokenizeSubject } from './prompts';
import { type Aggregate, type QuestionPrediction, aggregate, predict } from './scoring';
import { type Subset, type SubsetSpec, subsetId } from './subset';
import { type TextTokenizer, choiceTokenIds } from './tokenizer';

export interface Progress {
  done: number;
  total: number;
  elapsed_s: number;
  questions_per_s: number;
  /** Seconds left at the rate so far (NaN before the first question). */
  eta_s: number;
}

export interface EvaluateOptions {
  scorer: ChoiceScorer;
  tokenizer: TextTokenizer;
  dataset: MmluDataset;
  subset: Subset;
  shots: number;
  /** Suffixes per `scoreSuffixes` call (default 8). */
  batchSize?: number;
  /** Recorded as is: the model's name/path and the slicing spec it was built from. */
  model?: string;
  spec?: unknown;
  onProgress?: (p: Progress) => void;
  /** Called with each scored batch, so a caller can journal them and resume after an interruption. */
  onPredictions?: (batch: readonly QuestionPrediction[]) => void;
  /** Predictions of an interrupted earlier run of the same subset: not scored again, but aggregated. */
  done?: readonly QuestionPrediction[];
}

/** Version of the results record's layout; bumped when a field changes meaning or goes away. */
export const RESULTS_VERSION = 1;

export interface EvalResults extends Aggregate {
  version: typeof RESULTS_VERSION;
  model: string | null;
  spec: unknown;
  dataset: { source: string; format: string };
  tokenizer: string;
  choice_token_ids: number[];
  subset: { id: string; split: string; n: number; spec: SubsetSpec };
  shots: number;
  timing: {
    seconds: number;
    questions_per_s: number;
    /** Prefix tokens once per distinct prefix, plus every suffix: what a prefix-caching model runs. */
    tokens_processed: number;
    /** Whole prompts, every question: what a model without prefix reuse runs. */
    tokens_naive: number;
    /** Questions whose prefix/suffix split tokenised exactly like the whole prompt. */
    prefix_reuse_questions: number;
    /** Questions taken from an interrupted earlier run (`done`), not scored again. */
    resumed_questions: number;
  };
}

/** The results file `eval` writes: the evaluation plus how it was run. */
export interface EvalRecord extends EvalResults {
  backend: string;
  /** The engine's numerics: 'exact' or 'int8' (the opt-in fast mode). */
  precision: string;
  /** With int8: how the fast mode agrees with exact mode on a sample of the questions; else null. */
  agreement: Agreement | null;
  /** The predictions JSONL written beside it, if any. */
  predictions_file: string | null;
}

export interface Evaluation {
  results: EvalResults;
  predictions: QuestionPrediction[];
}

/** Scores the subset with the harness's `mmlu` protocol and aggregates it. */
export async function evaluate(opts: EvaluateOptions): Promise<Evaluation> {
  const { scorer, tokenizer, dataset, subset, shots, onProgress, onPredictions } = opts;
  const batchSize = opts.batchSize ?? 8;
  checkShots(shots);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new EvalInputError(`batchSize: expected a positive integer, got ${batchSize}`);
  }
  const choiceIds = choiceTokenIds(tokenizer);
  const start = performance.now();
  const total = subset.items.length;
  const inSubset = new Set(subset.items.map((it) => `${it.subject}#${it.index}`));
  const predictions: QuestionPrediction[] = (opts.done ?? []).filter((p) =>
    inSubset.has(`${p.subject}#${p.index}`),
  );
  const already = new Set(predictions.map((p) => `${p.subject}#${p.index}`));
  const resumed = predictions.length;
  let tokensProcessed = 0;
  let tokensNaive = 0;
  let reused = 0;

  for (const [subject, all] of groupBySubject(subset)) {
    const indices = all.filter((i) => !already.has(`${subject}#${i}`));
    if (indices.length === 0) continue;
    const pool = questionsOf(dataset, subset.split, subject);
    const questions: MmluQuestion[] = indices.map((i) => {
      const q = pool[i];
      if (!q) throw new EvalInputError(`${dataset.source}: ${subject} has no ${subset.split} question #${i}`);
      return q;
    });
    const prompts = tokenizeSubject(tokenizer, dataset, questions, shots);
    // Same prefix array = same KV cache; batches never mix prefixes.
    for (const group of [prompts.filter((p) => p.reuse), prompts.filter((p) => !p.reuse)]) {
      const prefix = group[0]?.prefix;
      if (prefix === undefined) continue;
      tokensProcessed += prefix.length;
      for (let b = 0; b < group.length; b += batchSize) {
        const batch = group.slice(b, b + batchSize);
        const scores = await scorer.scoreSuffixes(
          prefix,
          batch.map((p) => p.suffix),
          choiceIds,
        );
        checkScores(scores, batch);
        const scored = batch.map((p, k) => toPrediction(p.question, scores[k]!)); // one row per prompt (checkScores)
        predictions.push(...scored);
        onPredictions?.(scored);
        batch.forEach((p) => {
          tokensProcessed += p.suffix.length;
          tokensNaive += p.prefix.length + p.suffix.length;
          if (p.reuse) reused++;
        });
        const elapsed = (performance.now() - start) / 1000;
        const rate = (predictions.length - resumed) / elapsed;
        onProgress?.({
          done: predictions.length,
          total,
          elapsed_s: elapsed,
          questions_per_s: rate,
          eta_s: (total - predictions.length) / rate,
        });
        // Scoring on cpu never returns to the event loop by itself, and a signal (Ctrl-C) is only delivered
        // there: one turn per batch, so an interrupted eval stops after the batch its journal holds.
        await new Promise((res) => setImmediate(res));
      }
    }
  }
  // Back to canonical order (reuse groups may have reordered a subject's questions).
  const order = new Map(subset.items.map((it, i) => [`${it.subject}#${it.index}`, i]));
  predictions.sort((x, y) => order.get(`${x.subject}#${x.index}`)! - order.get(`${y.subject}#${y.index}`)!);

  const seconds = (performance.now() - start) / 1000;
  const results: EvalResults = {
    version: RESULTS_VERSION,
    model: opts.model ?? null,
    spec: opts.spec ?? null,
    dataset: { source: dataset.source, format: dataset.format },
    tokenizer: tokenizer.source,
    choice_token_ids: choiceIds,
    subset: { id: subsetId(subset, shots), split: subset.split, n: total, spec: subset.spec },
    shots,
    ...aggregate(predictions),
    timing: {
      seconds,
      // Timing covers what this run scored; resumed questions were timed by the run that scored them.
      questions_per_s: (total - resumed) / seconds,
      resumed_questions: resumed,
      tokens_processed: tokensProcessed,
      tokens_naive: tokensNaive,
      prefix_reuse_questions: reused,
    },
  };
  return { results, predictions };
}

function groupBySubject(subset: Subset): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const it of subset.items) {
    const list = m.get(it.subject) ?? [];
    m.set(it.subject, list);
    list.push(it.index);
  }
  return m;
}

/** A scorer bug must not turn into a plausible-looking accuracy. */
function checkScores(scores: unknown, batch: readonly TokenizedPrompt[]): asserts scores is number[][] {
  const isRow = (r: unknown) =>
    Array.isArray(r) &&
    r.length === LETTERS.length &&
    r.every((x: unknown) => typeof x === 'number' && !Number.isNaN(x) && x <= 1e-6);
  if (!(Array.isArray(scores) && scores.length === batch.length && scores.every(isRow))) {
    throw new Error(
      `scorer returned ${quote(scores, 120)} for ${batch.length} suffixes; expected ${batch.length} rows of 4 log-probabilities`,
    );
  }
}

function toPrediction(q: MmluQuestion, logprobs: readonly number[]): QuestionPrediction {
  return {
    subject: q.subject,
    index: q.index,
    gold: LETTERS[q.answer],
    pred: LETTERS[predict(logprobs)],
    logprobs: [...logprobs],
  };
}

/** Writes the results to `target`: the caller's temporary (the output guard's), renamed into place by it. */
export function writeResults(target: string, results: EvalResults | EvalRecord): Promise<void> {
  return fs.writeFile(target, JSON.stringify(results, null, 2) + '\n');
}

export function writePredictionsJsonl(
  target: string,
  predictions: readonly QuestionPrediction[],
): Promise<void> {
  return fs.writeFile(target, predictions.map((p) => JSON.stringify(p) + '\n').join(''));
}

/** One line of a predictions file or journal, validated; `where` is `file:line` for messages. */
export function parsePredictionLine(where: string, line: string): QuestionPrediction {
  let p: Partial<QuestionPrediction>;
  try {
    p = JSON.parse(line) as Partial<QuestionPrediction>;
  } catch {
    throw new EvalInputError(`${where}: invalid JSON`);
  }
  const isLetter = (x: unknown): x is Letter => LETTERS.includes(x as Letter);
  if (
    typeof p !== 'object' ||
    p === null ||
    typeof p.subject !== 'string' ||
    !Number.isInteger(p.index) ||
    !isLetter(p.gold) ||
    !isLetter(p.pred) ||
    !Array.isArray(p.logprobs) ||
    p.logprobs.length !== 4 ||
    !p.logprobs.every((x) => typeof x === 'number' && Number.isFinite(x))
  ) {
    throw new EvalInputError(
      `${where}: expected {subject, index, gold, pred, logprobs[4]}, got ${quote(line)}`,
    );
  }
  return p as QuestionPrediction;
}

/**
 * Refuses a second line for a question already seen: identical (a duplicated line) or not (contradictory);
 * either would count the question twice.
 */
export class QuestionKeys {
  private readonly seen = new Map<string, { where: string; json: string }>();

  add(where: string, p: QuestionPrediction): void {
    const key = `${p.subject}#${p.index}`;
    const json = JSON.stringify(p);
    const first = this.seen.get(key);
    if (first) {
      throw new EvalInputError(
        `${where}: question (${p.subject}, ${p.index}) again (${first.json === json ? 'duplicated' : 'contradictory'} line; first at ${first.where})`,
      );
    }
    this.seen.set(key, { where, json });
  }
}

/** Reads a predictions file written by `writePredictionsJsonl`, validating every line. */
export async function readPredictionsJsonl(file: string): Promise<QuestionPrediction[]> {
  const problem = fileProblem(file);
  if (problem) throw new EvalInputError(`${file}: ${problem}`);
  const text = await fs.readFile(file, 'utf8').catch((e: Error) => {
    throw new EvalInputError(`${file}: cannot read (${e.message})`);
  });
  const out: QuestionPrediction[] = [];
  const keys = new QuestionKeys();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const p = parsePredictionLine(`${file}:${i + 1}`, line);
    keys.add(`${file}:${i + 1}`, p);
    out.push(p);
  });
  return out;
}

// How far a fast-mode evaluation is from exact mode on the same questions: the fraction of identical predicted
// answers and the |Δ log-prob| over the four choices, question by question.
import { EvalInputError } from './errors';
import type { QuestionPrediction } from './scoring';
import type { Subset } from './subset';

/** The `agreement` of an eval results JSON (snake_case: it is written as is). */
export interface Agreement {
  /** The reference the fast mode is measured against. */
  readonly with: 'exact';
  /** Questions scored in both modes. */
  readonly questions: number;
  /** Fraction of those questions with the same predicted answer in both modes. */
  readonly predictions: number;
  /** Max and mean of |log p_fast - log p_exact| over the 4 choices of every such question. */
  readonly max_dlogprob: number;
  readonly mean_dlogprob: number;
}

const key = (p: { subject: string; index: number }) => `${p.subject}#${p.index}`;

/**
 * Agreement of `fast` with `exact` over the questions of `exact` (each must be in `fast` too: a missing one is
 * a bug of the caller, not a question to skip).
 */
export function agreementWith(
  exact: readonly QuestionPrediction[],
  fast: readonly QuestionPrediction[],
): Agreement {
  if (exact.length === 0) throw new EvalInputError('agreement: no questions scored in exact mode');
  const byKey = new Map(fast.map((p) => [key(p), p]));
  let same = 0;
  let max = 0;
  let sum = 0;
  for (const e of exact) {
    const f = byKey.get(key(e));
    if (!f) throw new Error(`agreement: question (${e.subject}, ${e.index}) has no fast-mode prediction`);
    if (f.pred === e.pred) same++;
    e.logprobs.forEach((lp, c) => {
      const d = Math.abs((f.logprobs[c] ?? NaN) - lp);
      max = Math.max(max, d);
      sum += d;
    });
  }
  return {
    with: 'exact',
    questions: exact.length,
    predictions: same / exact.length,
    max_dlogprob: max,
    mean_dlogprob: sum / (exact.length * 4),
  };
}

/**
 * The agreement sample: `n` questions of the subset taken round-robin over its subjects (each subject's first
 * question in the subset's order, then each one's second, ...), so a sample of 100 spreads over every subject
 * instead of being 100 abstract_algebra questions; all of them when the subset has fewer. Kept in the
 * subset's order. No seed: the same subset always gives the same sample. `n` = 0: empty (agreement off).
 */
export function agreementSample(subset: Subset, n: number): Subset {
  if (!(Number.isInteger(n) && n >= 0))
    throw new EvalInputError(`--agreement-sample: expected a non-negative integer, got ${n}`);
  const rank = new Map<string, number>();
  const ranked = subset.items.map((it, pos) => {
    const r = rank.get(it.subject) ?? 0;
    rank.set(it.subject, r + 1);
    return { pos, r };
  });
  const chosen = ranked
    .sort((a, b) => a.r - b.r || a.pos - b.pos)
    .slice(0, n)
    .map((x) => x.pos)
    .sort((a, b) => a - b);
  return { ...subset, items: chosen.map((pos) => subset.items[pos]!) };
}

import { EvalInputError } from './errors';
import type { QuestionPrediction } from './scoring';

export interface McNemarResult {
  /** Questions present in both sets (matched by subject + index). */
  paired: number;
  bothCorrect: number;
  /** Discordant pairs: right in A only / right in B only. */
  onlyA: number;
  onlyB: number;
  bothWrong: number;
  accA: number;
  accB: number;
  /** Two-sided exact binomial p-value on the discordant pairs (H0: onlyA ~ Bin(onlyA + onlyB, 1/2)). */
  pValue: number;
  significant: boolean;
  alpha: number;
}

/**
 * Exact McNemar test: does submodel B differ from parent A on the same questions? Only questions that differ
 * in correctness carry information, so the test is a sign test on those.
 */
export function mcnemarExact(
  a: readonly QuestionPrediction[],
  b: readonly QuestionPrediction[],
  alpha = 0.05,
): McNemarResult {
  const key = (p: QuestionPrediction) => `${p.subject}#${p.index}`;
  const byKey = new Map(b.map((p) => [key(p), p]));
  let bothCorrect = 0;
  let onlyA = 0;
  let onlyB = 0;
  let bothWrong = 0;
  for (const pa of a) {
    const pb = byKey.get(key(pa));
    if (!pb) continue;
    if (pa.gold !== pb.gold) {
      throw new EvalInputError(
        `${pa.subject} #${pa.index}: gold answers differ (${pa.gold} vs ${pb.gold}); not the same data`,
      );
    }
    const ca = pa.pred === pa.gold;
    const cb = pb.pred === pb.gold;
    if (ca && cb) bothCorrect++;
    else if (ca) onlyA++;
    else if (cb) onlyB++;
    else bothWrong++;
  }
  const paired = bothCorrect + onlyA + onlyB + bothWrong;
  if (paired === 0)
    throw new EvalInputError('the two prediction sets share no question (matched by subject and index)');
  const pValue = binomialTwoSided(Math.min(onlyA, onlyB), onlyA + onlyB);
  return {
    paired,
    bothCorrect,
    onlyA,
    onlyB,
    bothWrong,
    accA: (bothCorrect + onlyA) / paired,
    accB: (bothCorrect + onlyB) / paired,
    pValue,
    significant: pValue < alpha,
    alpha,
  };
}

/** P(X ≤ k) doubled, capped at 1, for X ~ Bin(n, 1/2) with k ≤ n/2; summed in log space (n can be 14,042). */
export function binomialTwoSided(k: number, n: number): number {
  if (n === 0) return 1;
  const logHalfN = -n * Math.LN2;
  let logC = 0; // log C(n, 0)
  let acc = -Infinity;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    const t = logC + logHalfN;
    acc = acc > t ? acc + Math.log1p(Math.exp(t - acc)) : t + Math.log1p(Math.exp(acc - t));
  }
  return Math.min(1, 2 * Math.exp(acc));
}

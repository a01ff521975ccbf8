// A candidate's result on a question set: accuracy against the MMLU labels, or agreement with the parent
// (top-1 agreement and the mean KL divergence over the four choices); the Pareto frontier of effective
// parameters against the metric, and the paired exact McNemar test of frontier candidates against the parent.
import { type McNemarResult, type QuestionPrediction, mcnemarExact, wilsonInterval } from '../eval';
import type { Metric } from './sweep-file';

export interface CandidateResult {
  /** The sweep's metric: accuracy, or top-1 agreement with the parent. */
  readonly metric: number;
  readonly acc: number;
  readonly correct: number;
  readonly n: number;
  /** 95% Wilson interval of the metric. */
  readonly ci: [number, number];
  /** Top-1 agreement with the parent, and mean KL(parent ‖ candidate) over the four choices (nats). */
  readonly agreement: number | null;
  readonly kl: number | null;
}

const qkey = (p: { subject: string; index: number }) => `${p.subject}#${p.index}`;

/** Softmax over the four choices of full-vocabulary log-probabilities (the choice distribution). */
function choiceLogDist(lp: readonly number[]): number[] {
  const m = Math.max(...lp);
  const lse = m + Math.log(lp.reduce((s, x) => s + Math.exp(x - m), 0));
  return lp.map((x) => x - lse);
}

/** Scores `preds` (already restricted to the question set) under `metric`; `parent` on the same questions. */
export function candidateResult(
  metric: Metric,
  preds: readonly QuestionPrediction[],
  parent: readonly QuestionPrediction[],
): CandidateResult {
  const n = preds.length;
  const correct = preds.filter((p) => p.pred === p.gold).length;
  const byKey = new Map(parent.map((p) => [qkey(p), p]));
  let agree = 0;
  let kl = 0;
  let paired = 0;
  for (const p of preds) {
    const q = byKey.get(qkey(p));
    if (!q) continue;
    paired++;
    if (q.pred === p.pred) agree++;
    const lp = choiceLogDist(q.logprobs);
    const lc = choiceLogDist(p.logprobs);
    kl += lp.reduce((s, x, i) => s + Math.exp(x) * (x - lc[i]!), 0);
  }
  const agreement = paired > 0 ? agree / paired : null;
  const m = metric === 'accuracy' ? correct / n : (agreement ?? NaN);
  return {
    metric: m,
    acc: correct / n,
    correct,
    n,
    ci: metric === 'accuracy' ? wilsonInterval(correct, n) : wilsonInterval(agree, paired),
    agreement,
    kl: paired > 0 ? kl / paired : null,
  };
}

/**
 * Indices of the Pareto-optimal points: no other point has at most the parameters and at least the metric
 * with one of them strictly better. Equal points are all kept.
 */
export function paretoFrontier(points: readonly { params: number; metric: number }[]): Set<number> {
  const order = points
    .map((p, i) => ({ ...p, i }))
    .filter((p) => Number.isFinite(p.metric))
    .sort((a, b) => a.params - b.params || b.metric - a.metric);
  const out = new Set<number>();
  let best = -Infinity;
  let bestParams = NaN;
  for (const p of order) {
    if (p.metric > best || (p.metric === best && p.params === bestParams)) {
      out.add(p.i);
      best = p.metric;
      bestParams = p.params;
    }
  }
  return out;
}

/** McNemar of a candidate against the parent on their shared questions (the `compare` test). */
export function againstParent(
  parent: readonly QuestionPrediction[],
  preds: readonly QuestionPrediction[],
): McNemarResult | null {
  const keys = new Set(preds.map(qkey));
  const shared = parent.filter((p) => keys.has(qkey(p)));
  return shared.length === 0 ? null : mcnemarExact(shared, preds);
}

import { type AnswerIndex, type Letter } from './dataset';
import { CATEGORIES, type Category, categoryOf } from './subjects';

/** One scored question (one JSONL line of the predictions file). */
export interface QuestionPrediction {
  subject: string;
  index: number;
  gold: Letter;
  pred: Letter;
  /** Log-probabilities of `" A"`..`" D"` over the full vocabulary. */
  logprobs: number[];
}

export interface Accuracy {
  acc: number;
  correct: number;
  n: number;
  /** 95% Wilson score interval. */
  ci: [number, number];
}

export interface Aggregate {
  /** Question-weighted (micro) over all questions, as the harness's `mmlu` group; `macro_acc` = mean of subjects. */
  overall: Accuracy & { macro_acc: number; choice_mass: number };
  /** Question-weighted per category; categories without questions are absent. */
  categories: Partial<Record<Category, Accuracy>>;
  subjects: Record<string, Accuracy>;
}

/** Two-sided 95% normal quantile. */
export const Z95 = 1.959963984540054;

/** Wilson score interval for `correct` successes in `n` trials; behaves at 0 and n, unlike the Wald interval. */
export function wilsonInterval(correct: number, n: number, z = Z95): [number, number] {
  if (n === 0) return [0, 1];
  const p = correct / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // At 0 and n the bounds are exactly 0 and 1; computing them would leave rounding crumbs.
  return [correct === 0 ? 0 : center - half, correct === n ? 1 : center + half];
}

/** Argmax, first index on ties (numpy's argmax, as the harness). */
export function predict(logprobs: readonly number[]): AnswerIndex {
  let best = 0;
  for (let i = 1; i < logprobs.length; i++) if (logprobs[i]! > logprobs[best]!) best = i;
  return best as AnswerIndex;
}

export function accuracy(correct: number, n: number): Accuracy {
  return { acc: n === 0 ? NaN : correct / n, correct, n, ci: wilsonInterval(correct, n) };
}

export function aggregate(preds: readonly QuestionPrediction[]): Aggregate {
  const bySubject = new Map<string, { correct: number; n: number }>();
  let mass = 0;
  for (const p of preds) {
    const s = bySubject.get(p.subject) ?? { correct: 0, n: 0 };
    bySubject.set(p.subject, s);
    s.n++;
    if (p.pred === p.gold) s.correct++;
    mass += p.logprobs.reduce((a, l) => a + Math.exp(l), 0);
  }
  const subjects: Record<string, Accuracy> = {};
  for (const [name, s] of [...bySubject].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    subjects[name] = accuracy(s.correct, s.n);
  }
  const categories: Partial<Record<Category, Accuracy>> = {};
  for (const c of CATEGORIES) {
    const members = [...bySubject].filter(([name]) => categoryOf(name) === c).map(([, s]) => s);
    if (members.length > 0) categories[c] = sum(members);
  }
  const all = sum([...bySubject.values()]);
  const accs = Object.values(subjects).map((a) => a.acc);
  return {
    overall: {
      ...all,
      macro_acc: accs.reduce((a, b) => a + b, 0) / accs.length,
      choice_mass: mass / preds.length,
    },
    categories,
    subjects,
  };
}

function sum(parts: readonly { correct: number; n: number }[]): Accuracy {
  return accuracy(
    parts.reduce((a, p) => a + p.correct, 0),
    parts.reduce((a, p) => a + p.n, 0),
  );
}

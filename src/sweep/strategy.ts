// Search strategies as pure plans: which candidates are scored on which questions, round by round. A round
// depends only on the candidates, the question order and (for successive halving) the previous round's
// metrics, so a resumed sweep replans exactly the same rounds from the stored results.
import type { Precision } from '../engine';
import { type SubsetItem, uniform01 } from '../eval';
import type { Candidate } from './candidates';
import type { Strategy } from './sweep-file';

export interface Round {
  readonly index: number;
  /** Questions of this round: a prefix of the sweep's nested question order. */
  readonly questions: readonly SubsetItem[];
  /** Candidate hashes scored in this round. */
  readonly candidates: readonly string[];
}

/**
 * The subset's questions in an order whose every prefix is stratified by subject (proportional to each
 * subject's share, random within a subject): successive halving's growing subsets are prefixes of it, so
 * questions scored in one round count in the next.
 */
export function nestedOrder(items: readonly SubsetItem[], seed: number): SubsetItem[] {
  const bySubject = new Map<string, SubsetItem[]>();
  for (const it of items) {
    const list = bySubject.get(it.subject) ?? [];
    bySubject.set(it.subject, list);
    list.push(it);
  }
  const rand = uniform01(seed);
  const keyed: { it: SubsetItem; key: number }[] = [];
  for (const list of bySubject.values()) {
    const order = list.map((it) => ({ it, r: rand() })).sort((a, b) => a.r - b.r);
    // The k-th question of a subject of n sits at (k + u)/n: prefixes take each subject in proportion.
    order.forEach(({ it }, k) => keyed.push({ it, key: (k + rand()) / list.length }));
  }
  return keyed.sort((a, b) => a.key - b.key).map((k) => k.it);
}

/** Successive halving's subset sizes: start, start·eta, … capped by (and ending at) the full subset. */
export function roundSizes(start: number, eta: number, total: number): number[] {
  const sizes: number[] = [];
  for (let n = Math.min(start, total); ; n = Math.min(n * eta, total)) {
    sizes.push(n);
    if (n >= total) return sizes;
  }
}

/**
 * The precision round `index` scores in: int8 fast mode for successive halving's first `fast_rungs` rounds,
 * exact for every other round (so always for the final one and for every other strategy). A strategy read
 * back from a run stored before fast rungs existed has no `fast_rungs`: exact.
 */
export function roundPrecision(strategy: Strategy, index: number): Precision {
  return strategy.kind === 'successive_halving' && index < (strategy.fast_rungs ?? 0) ? 'int8' : 'exact';
}

/** Hashes always scored in every round: the parent (the reference of `agreement` and McNemar) and E2B. */
function pinned(candidates: readonly Candidate[]): string[] {
  return candidates
    .filter((c) => c.origin === 'parent' || c.preset?.name === 'Config for official E2B Model')
    .map((c) => c.hash);
}

/**
 * The first round of a strategy. `predicted` (a sensitivity prior's predicted drop per candidate, lower is
 * better) seeds it: `random` takes the N most promising instead of a uniform draw, and successive halving
 * starts with the best 1/eta of each bucket by prediction instead of every candidate.
 */
export function firstRound(
  strategy: Strategy,
  candidates: readonly Candidate[],
  order: readonly SubsetItem[],
  predicted?: ReadonlyMap<string, number>,
): Round {
  const all = candidates.map((c) => c.hash);
  const score = predicted && new Map([...predicted].map(([h, d]) => [h, -d]));
  switch (strategy.kind) {
    case 'exhaustive':
    case 'sensitivity':
      return { index: 0, questions: order, candidates: all };
    case 'random': {
      const keep = new Set(pinned(candidates));
      const rest = all.filter((h) => !keep.has(h));
      if (score) {
        const byHash = new Map(candidates.map((c) => [c.hash, c]));
        const ranked = bestFirst(
          rest.map((h) => byHash.get(h)!),
          score,
        );
        ranked.slice(0, strategy.n).forEach((c) => keep.add(c.hash));
      } else {
        const rand = uniform01(strategy.seed);
        for (let i = rest.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [rest[i], rest[j]] = [rest[j]!, rest[i]!];
        }
        rest.slice(0, strategy.n).forEach((h) => keep.add(h));
      }
      return { index: 0, questions: order, candidates: all.filter((h) => keep.has(h)) };
    }
    case 'successive_halving': {
      const n = roundSizes(strategy.start, strategy.eta, order.length)[0]!;
      const chosen = score ? halve(candidates, all, score, strategy.buckets, strategy.eta) : all;
      return { index: 0, questions: order.slice(0, n), candidates: chosen };
    }
  }
}

/** Highest metric first; ties: fewer parameters, then hash (a stable order). */
function bestFirst(cands: readonly Candidate[], metric: ReadonlyMap<string, number>): Candidate[] {
  return [...cands].sort(
    (x, y) =>
      (metric.get(y.hash) ?? -Infinity) - (metric.get(x.hash) ?? -Infinity) ||
      x.params.effective - y.params.effective ||
      (x.hash < y.hash ? -1 : 1),
  );
}

/**
 * The best ⌈n/eta⌉ of each of `buckets` equal-count parameter buckets of `pool` (so small models are not
 * crowded out by large ones), plus the pinned candidates, in the pool's order.
 */
function halve(
  candidates: readonly Candidate[],
  pool: readonly string[],
  metric: ReadonlyMap<string, number>,
  buckets: number,
  eta: number,
): string[] {
  const byHash = new Map(candidates.map((c) => [c.hash, c]));
  const sorted = pool
    .map((h) => byHash.get(h)!)
    .sort((a, b) => a.params.effective - b.params.effective || (a.hash < b.hash ? -1 : 1));
  const keep = new Set(pinned(candidates).filter((h) => pool.includes(h)));
  const K = Math.min(buckets, sorted.length);
  for (let b = 0; b < K; b++) {
    const bucket = sorted.slice(
      Math.floor((b * sorted.length) / K),
      Math.floor(((b + 1) * sorted.length) / K),
    );
    bestFirst(bucket, metric)
      .slice(0, Math.ceil(bucket.length / eta))
      .forEach((c) => keep.add(c.hash));
  }
  return pool.filter((h) => keep.has(h));
}

/**
 * The round after `prev` given its metrics (higher is better), or null when `prev` was the last. Successive
 * halving keeps the best ⌈n/eta⌉ of each of `buckets` equal-count parameter buckets (so small models are not
 * crowded out by large ones) plus the pinned candidates, on eta times the questions.
 */
export function nextRound(
  strategy: Strategy,
  candidates: readonly Candidate[],
  order: readonly SubsetItem[],
  prev: Round,
  metric: ReadonlyMap<string, number>,
): Round | null {
  if (strategy.kind !== 'successive_halving') return null;
  const sizes = roundSizes(strategy.start, strategy.eta, order.length);
  const size = sizes[prev.index + 1];
  if (size === undefined) return null;
  return {
    index: prev.index + 1,
    questions: order.slice(0, size),
    candidates: halve(candidates, prev.candidates, metric, strategy.buckets, strategy.eta),
  };
}

/**
 * Sensitivity's candidates: each layer alone narrowed to `width` (default half its width), and each layer
 * alone skipped where the skip is valid. `make` validates and builds the candidate (null when invalid).
 */
export function sensitivitySpecs(
  widths: readonly number[],
  width: number | undefined,
): { layer: number; kind: 'narrow' | 'skip'; skip: number[]; ffn: number[] }[] {
  const out: { layer: number; kind: 'narrow' | 'skip'; skip: number[]; ffn: number[] }[] = [];
  widths.forEach((w, l) => {
    const narrow = Math.min(w, width ?? Math.max(1, Math.floor(w / 2)));
    if (narrow < w)
      out.push({ layer: l, kind: 'narrow', skip: [], ffn: widths.map((x, i) => (i === l ? narrow : x)) });
    out.push({ layer: l, kind: 'skip', skip: [l], ffn: widths.filter((_, i) => i !== l) });
  });
  return out;
}

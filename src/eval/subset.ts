import { createHash } from 'node:crypto';
import { mulberry32 } from '../formats';
import { type MmluDataset, type Split } from './dataset';
import { EvalInputError } from './errors';
import { type Category, SUBJECTS, categoryOf, isCategory, isSubject } from './subjects';

export interface SubsetSpec {
  /** Split to score (default `test`, as the harness). */
  split?: Split;
  subjects?: readonly string[];
  categories?: readonly string[];
  /** Keep only the first N questions of each subject (harness `--limit`). */
  limitPerSubject?: number;
  /** Then draw N questions in total, stratified by subject (proportional, largest remainder). */
  sample?: number;
  seed?: number;
}

export interface SubsetItem {
  subject: string;
  index: number;
}

export interface Subset {
  split: Split;
  spec: SubsetSpec;
  /** Subject (alphabetical) then index (ascending): the canonical order. */
  items: readonly SubsetItem[];
}

/** Uniform floats in [0, 1) from mulberry32 (the same generator as random checkpoints): deterministic everywhere. */
export function uniform01(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

/** FNV-1a: mixes the subject into the seed so each subject's draw is independent of which others are selected. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function checkCount(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
    throw new EvalInputError(`${name}: expected a positive integer, got ${v}`);
  }
}

export function selectSubset(ds: MmluDataset, spec: SubsetSpec = {}): Subset {
  const split = spec.split ?? 'test';
  checkCount('limitPerSubject', spec.limitPerSubject);
  checkCount('sample', spec.sample);
  for (const s of spec.subjects ?? []) {
    if (!isSubject(s))
      throw new EvalInputError(`subject: expected one of the 57 MMLU subjects, got ${JSON.stringify(s)}`);
  }
  for (const c of spec.categories ?? []) {
    if (!isCategory(c)) {
      throw new EvalInputError(
        `category: expected stem, humanities, social_sciences or other, got ${JSON.stringify(c)}`,
      );
    }
  }
  const subjects = SUBJECTS.filter(
    (s) =>
      ds.splits[split].has(s) &&
      (!spec.subjects || spec.subjects.includes(s)) &&
      (!spec.categories || spec.categories.includes(categoryOf(s) as Category)),
  );
  if (spec.subjects) {
    const missing = spec.subjects.filter((s) => !ds.splits[split].has(s));
    if (missing.length > 0)
      throw new EvalInputError(`${ds.source}: no ${split} rows for subject ${missing.join(', ')}`);
  }
  const pools = subjects.map((s) => {
    const n = ds.splits[split].get(s)!.length;
    return { subject: s, n: Math.min(n, spec.limitPerSubject ?? n) };
  });
  let counts = pools.map((p) => p.n);
  const total = counts.reduce((a, b) => a + b, 0);
  if (spec.sample !== undefined && spec.sample < total)
    counts = allocate(
      pools.map((p) => p.n),
      spec.sample,
    );
  const seed = spec.seed ?? 0;
  const items = pools.flatMap((p, i) => {
    const k = counts[i]!; // one count per pool
    const indices = k === p.n ? [...Array(p.n).keys()] : drawSorted(p.n, k, (seed ^ fnv1a(p.subject)) >>> 0);
    return indices.map((index) => ({ subject: p.subject, index }));
  });
  if (items.length === 0) throw new EvalInputError(`${ds.source}: the selection has no ${split} questions`);
  return { split, spec, items };
}

/** Proportional allocation of `n` over strata sizes, remainders to the largest fractions (ties: earlier). */
export function allocate(sizes: readonly number[], n: number): number[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const exact = sizes.map((s) => (s * n) / total);
  const counts = exact.map(Math.floor);
  let left = n - counts.reduce((a, b) => a + b, 0);
  const order = exact
    .map((e, i) => ({ i, frac: e - Math.floor(e) }))
    .sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const { i } of order) {
    if (left === 0) break;
    // i indexes `exact`, which has one entry per size.
    if (counts[i]! < sizes[i]!) {
      counts[i]!++;
      left--;
    }
  }
  return counts;
}

/** k of 0..n-1 by a partial Fisher-Yates shuffle, returned ascending. */
function drawSorted(n: number, k: number, seed: number): number[] {
  const rand = uniform01(seed);
  const a = [...Array(n).keys()];
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [a[i], a[j]] = [a[j]!, a[i]!]; // i <= j < n = a.length
  }
  return a.slice(0, k).sort((x, y) => x - y);
}

/**
 * Stable id of what is scored: sha256 over the canonical selection (split, subjects with their indices, shots),
 * first 16 hex digits. Equal ids mean identical questions and prompts, whatever spec produced them.
 */
export function subsetId(subset: Subset, shots: number): string {
  const bySubject = new Map<string, number[]>();
  for (const it of subset.items) {
    const list = bySubject.get(it.subject) ?? [];
    bySubject.set(it.subject, list);
    list.push(it.index);
  }
  const canonical = JSON.stringify({ split: subset.split, shots, items: [...bySubject] });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

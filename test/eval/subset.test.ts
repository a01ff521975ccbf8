import fc from 'fast-check';
import { EvalInputError, selectSubset, subsetId } from '../../src/eval';
import { allocate, uniform01 } from '../../src/eval/subset';
import { syntheticDataset } from './helpers/synthetic';

const ds = syntheticDataset({ anatomy: 100, philosophy: 50, sociology: 50, virology: 3 });
const perSubject = (items: readonly { subject: string }[]) =>
  items.reduce<Record<string, number>>((m, it) => ({ ...m, [it.subject]: (m[it.subject] ?? 0) + 1 }), {});

describe('selectSubset', () => {
  it('defaults to every test question in canonical order', () => {
    const s = selectSubset(ds);
    expect(s.split).toBe('test');
    expect(s.items).toHaveLength(203);
    expect(s.items[0]).toEqual({ subject: 'anatomy', index: 0 });
    expect(s.items[202]).toEqual({ subject: 'virology', index: 2 });
  });
  it('filters by subject and category and limits per subject', () => {
    expect(perSubject(selectSubset(ds, { subjects: ['virology', 'philosophy'] }).items)).toEqual({
      philosophy: 50,
      virology: 3,
    });
    expect(perSubject(selectSubset(ds, { categories: ['stem', 'social_sciences'] }).items)).toEqual({
      anatomy: 100,
      sociology: 50,
    });
    const limited = selectSubset(ds, { limitPerSubject: 4 });
    expect(perSubject(limited.items)).toEqual({ anatomy: 4, philosophy: 4, sociology: 4, virology: 3 });
    expect(limited.items.slice(0, 4).map((i) => i.index)).toEqual([0, 1, 2, 3]);
  });
  it('samples N stratified by subject, deterministically per seed, sorted within subjects', () => {
    const a = selectSubset(ds, { sample: 20, seed: 7 });
    // 20 * (100, 50, 50, 3) / 203 = 9.85, 4.93, 4.93, 0.30 -> 9, 4, 4, 0 + remainders to the largest fractions.
    expect(perSubject(a.items)).toEqual({ anatomy: 10, philosophy: 5, sociology: 5 });
    expect(selectSubset(ds, { sample: 20, seed: 7 }).items).toEqual(a.items);
    const b = selectSubset(ds, { sample: 20, seed: 8 });
    expect(b.items).not.toEqual(a.items);
    for (const s of [a, b]) {
      const idx = s.items.filter((i) => i.subject === 'anatomy').map((i) => i.index);
      expect(idx).toEqual([...idx].sort((x, y) => x - y));
      expect(new Set(idx).size).toBe(idx.length);
      expect(Math.max(...idx)).toBeLessThan(100);
    }
    // Sampling more than available keeps everything.
    expect(selectSubset(ds, { sample: 10_000 }).items).toHaveLength(203);
  });
  it('rejects bad filters with one-line EvalInputErrors', () => {
    expect(() => selectSubset(ds, { subjects: ['astrology'] })).toThrow(EvalInputError);
    expect(() => selectSubset(ds, { subjects: ['marketing'] })).toThrow(/no test rows for subject marketing/);
    expect(() => selectSubset(ds, { categories: ['arts'] })).toThrow(/category: expected stem, humanities/);
    expect(() => selectSubset(ds, { sample: 0 })).toThrow(/sample: expected a positive integer, got 0/);
    expect(() => selectSubset(ds, { limitPerSubject: 1.5 })).toThrow(/limitPerSubject/);
  });
});

describe('subsetId', () => {
  it('depends only on the selected questions and shots', () => {
    const bySubject = selectSubset(ds, { subjects: ['anatomy'] });
    const byCategory = selectSubset(ds, { categories: ['stem'] });
    expect(subsetId(bySubject, 5)).toBe(subsetId(byCategory, 5));
    expect(subsetId(bySubject, 5)).toMatch(/^[0-9a-f]{16}$/);
    expect(subsetId(bySubject, 0)).not.toBe(subsetId(bySubject, 5));
    expect(subsetId(selectSubset(ds, { subjects: ['anatomy'], limitPerSubject: 99 }), 5)).not.toBe(
      subsetId(bySubject, 5),
    );
    expect(subsetId(selectSubset(ds, { sample: 20, seed: 1 }), 5)).not.toBe(
      subsetId(selectSubset(ds, { sample: 20, seed: 2 }), 5),
    );
  });
  it('is stable across versions (pinned value: changing it invalidates recorded results)', () => {
    expect(subsetId(selectSubset(ds, { sample: 20, seed: 7 }), 5)).toBe(PINNED_ID);
    expect(selectSubset(ds, { sample: 20, seed: 7 }).items.slice(0, 3)).toEqual(PINNED_FIRST);
  });
});

describe('sampling primitives', () => {
  it('uniform01 is deterministic and uniform-ish in [0, 1)', () => {
    const r = uniform01(42);
    const xs = Array.from({ length: 10_000 }, r);
    expect(xs.slice(0, 3)).toEqual(Array.from({ length: 3 }, uniform01(42)));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(Math.abs(xs.reduce((a, b) => a + b) / xs.length - 0.5)).toBeLessThan(0.01);
  });
  it('allocate sums to n, never exceeds a stratum and stays within 1 of the proportional share', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 57 }),
        fc.nat(),
        (sizes, r) => {
          const total = sizes.reduce((a, b) => a + b, 0);
          const n = 1 + (r % total);
          const c = allocate(sizes, n);
          expect(c.reduce((a, b) => a + b, 0)).toBe(n);
          c.forEach((k, i) => {
            expect(k).toBeLessThanOrEqual(sizes[i]!);
            expect(Math.abs(k - (sizes[i]! * n) / total)).toBeLessThan(1);
          });
        },
      ),
    );
  });
});

const PINNED_ID = '202a48288d17467f';
const PINNED_FIRST = [0, 7, 16].map((index) => ({ subject: 'anatomy', index }));

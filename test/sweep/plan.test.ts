// The sweep file, candidate generation and strategies: pure functions of the file and the parent config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig } from '../../src/gemma3n';
import type { SubsetItem } from '../../src/eval';
import {
  type Candidate,
  firstRound,
  makeCandidate,
  nestedOrder,
  nextRound,
  parseSweep,
  predictedDrops,
  sensitivityPrior,
  checkFastRungs,
  readSweepFile,
  roundPrecision,
  roundSizes,
  specHash,
  sweepCandidates,
} from '../../src/sweep';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { repoRoot } from '../helpers/cli';
import { demoConfig } from './helpers';

const base = { model: 'm', data: { mmlu: 'mmlu' }, candidates: [{ generate: 'blocks', widths: [64, 128] }] };
const parse = (extra: Record<string, unknown>) => parseSweep({ ...base, ...extra }, 'sweep.yaml');
const parent35 = parseConfig(demoConfig({ layers: 35, width: 128, kvShared: 15 }));

describe('sweep file', () => {
  it('has defaults and resolves paths against the file', () => {
    const s = parseSweep(base, '/x/y/sweep.yaml');
    expect(s).toMatchObject({
      model: '/x/y/m',
      shots: 5,
      backend: 'auto',
      batchSize: 8,
      metric: 'accuracy',
      share: true,
    });
    expect(s.data).toMatchObject({ mmlu: '/x/y/mmlu', split: 'test', seed: 0 });
    expect(s.strategy).toEqual({ kind: 'exhaustive' });
  });

  it.each([
    [
      { candidates: [{ ffn: 1 }, { skip: [1], ffn: { a: 1 } }] },
      'sweep.yaml: candidates[1].ffn: expected a list of numbers',
    ],
    [
      { candidates: [{ generate: 'blockz' }] },
      'candidates[0].generate: expected blocks, layers, skips or random',
    ],
    [{ candidates: [{ generate: 'skips', range: [5, 2] }] }, 'candidates[0].range: expected [low, high]'],
    [
      { candidates: [{ generate: 'layers', widths: [64], count: 0 }] },
      'candidates[0].count: expected an integer ≥ 1',
    ],
    [{ candidates: [{ presets: 'some' }] }, 'candidates[0].presets: expected "all"'],
    [{ candidates: [] }, 'candidates: expected a non-empty list'],
    [
      { strategy: { successive_halving: { start: 0 } } },
      'strategy.successive_halving.start: expected an integer ≥ 1',
    ],
    [{ strategy: 'greedy' }, 'strategy: expected a mapping'],
    [
      { strategy: { successive_halving: { start: 2, fast_rungs: -1 } } },
      'strategy.successive_halving.fast_rungs: expected an integer ≥ 0, got -1',
    ],
    [
      { strategy: { successive_halving: { start: 2, fast_rungs: 1.5 } } },
      'strategy.successive_halving.fast_rungs: expected an integer ≥ 0, got 1.5',
    ],
    [
      { strategy: { successive_halving: { start: 2, fast_rungs: 'all' } } },
      'strategy.successive_halving.fast_rungs: expected an integer ≥ 0, got "all"',
    ],
    [{ metric: 'f1' }, 'metric: expected accuracy or agreement'],
    [{ shots: 7 }, 'shots: expected 0 to 5'],
    [{ params: ['1B', '0.5B'] }, 'params: min 1000000000 exceeds max 500000000'],
    [{ data: { mmlu: 'm', limit: 3 } }, 'data.limit: unknown key'],
    [{ colour: 1 }, 'colour: unknown key'],
  ])('rejects %j with the key path', (extra, message) => {
    expect(() => parse(extra)).toThrow(message);
  });

  it('the committed example parses', () => {
    const s = readSweepFile(path.join(repoRoot, 'examples/sweep-demo.yaml'));
    expect(s.strategy).toEqual({ kind: 'successive_halving', start: 6, eta: 3, buckets: 2, fast_rungs: 0 });
    expect(s.candidates.map((c) => c.kind)).toEqual(['blocks', 'spec', 'random']);
    expect(s.memoryCap).toBe(1e9);
  });

  it('lets sensitivity go without candidates', () => {
    const s = parseSweep(
      { model: 'm', data: { mmlu: 'd' }, strategy: { sensitivity: { width: 32 } } },
      's.yaml',
    );
    expect(s.strategy).toEqual({ kind: 'sensitivity', width: 32 });
    expect(s.candidates).toEqual([]);
  });
});

describe('candidates', () => {
  it('blocks: every assignment of two widths to 7 blocks, the all-full one merged with the parent', () => {
    const c = sweepCandidates(parse({}), parent35);
    expect(c).toHaveLength(128);
    expect(c[0]!.origin).toBe('parent');
    expect(new Set(c.map((x) => x.hash)).size).toBe(128);
    expect(c.every((x) => x.spec.ffn.length === 35 && x.spec.skip.length === 0)).toBe(true);
  });

  it('params bound filters generated candidates but never the parent', () => {
    const all = sweepCandidates(parse({}), parent35);
    const mid = all.map((c) => c.params.effective).sort((a, b) => a - b)[64]!;
    const bounded = sweepCandidates(parse({ params: [0, mid] }), parent35);
    expect(bounded[0]!.origin).toBe('parent');
    expect(bounded.slice(1).every((c) => c.params.effective <= mid)).toBe(true);
    expect(bounded.length).toBeLessThan(all.length);
  });

  it('skips: only sets that keep every KV producer that is read; spec entries name their key on errors', () => {
    // Layers 18 and 19 are the last producers (sliding, full): consumers 20.. read them.
    const s = parse({ candidates: [{ generate: 'skips', range: [15, 21], count: [1, 2] }] });
    const c = sweepCandidates(s, parent35).slice(1);
    expect(c.length).toBeGreaterThan(0);
    expect(c.some((x) => x.spec.skip.includes(18) || x.spec.skip.includes(19))).toBe(false);
    expect(c.every((x) => x.spec.ffn.length === 35 - x.spec.skip.length)).toBe(true);
    expect(() => sweepCandidates(parse({ candidates: [{ ffn: '64x3' }] }), parent35)).toThrow(
      /^sweep.yaml: candidates\[0\]\.ffn: 3 widths given/,
    );
    expect(() => sweepCandidates(parse({ candidates: [{ skip: [19] }] }), parent35)).toThrow(
      /candidates\[0\]\.skip: layer 19 is a KV producer/,
    );
  });

  it('dedupes by canonical spec: the same submodel written two ways is one candidate', () => {
    const s = parse({
      candidates: [
        { ffn: '64x5,128x30' },
        { blocks: [64, 128, 128, 128, 128, 128, 128] },
        { generate: 'random', n: 5, seed: 3 },
      ],
    });
    const c = sweepCandidates(s, parent35);
    expect(
      c.filter(
        (x) => x.spec.ffn[0] === 64 && x.spec.ffn[5] === 128 && x.spec.ffn.slice(5).every((w) => w === 128),
      ).length,
    ).toBe(1);
    expect(specHash({ skip: [3, 1], ffn: [1] })).toBe(specHash({ skip: [1, 3], ffn: [1] }));
  });
});

describeIfShared(
  'candidates of an E4B parent',
  () => {
    it('presets: all gives the 16 published configs; the official E2B is always a candidate', () => {
      const e4b = parseConfig(
        JSON.parse(fs.readFileSync(path.join(fixturesDir(), 'gemma3n/e4b-config/config.json'), 'utf8')),
      );
      const c = sweepCandidates(parse({ candidates: [{ presets: 'all' }] }), e4b);
      expect(c[1]!.preset?.name).toBe('Config for official E2B Model');
      expect(c.filter((x) => x.preset).length).toBe(16);
      const only = sweepCandidates(parse({ candidates: [{ ffn: 8192 }] }), e4b);
      expect(only.map((x) => x.origin)).toEqual(['parent', 'Config for official E2B Model', 'candidates[0]']);
    });
  },
  ['fixtures/gemma3n/e4b-config/config.json'],
);

describe('strategies', () => {
  const items: SubsetItem[] = ['a', 'b', 'c'].flatMap((s, k) =>
    Array.from({ length: [30, 10, 20][k]! }, (_, index) => ({ subject: s, index })),
  );

  it('nested order: every prefix is stratified by subject, and it is a permutation', () => {
    const o = nestedOrder(items, 1);
    expect(new Set(o.map((q) => `${q.subject}#${q.index}`)).size).toBe(60);
    for (const n of [6, 12, 30]) {
      const count = (s: string) => o.slice(0, n).filter((q) => q.subject === s).length;
      expect(Math.abs(count('a') - n / 2)).toBeLessThanOrEqual(1.5);
      expect(Math.abs(count('b') - n / 6)).toBeLessThanOrEqual(1.5);
    }
    expect(nestedOrder(items, 1)).toEqual(o);
  });

  it('successive halving: sizes grow by eta to the full set; each bucket keeps its best third, pinned ones stay', () => {
    expect(roundSizes(5, 3, 60)).toEqual([5, 15, 45, 60]);
    expect(roundSizes(100, 3, 60)).toEqual([60]);
    const cands: Candidate[] = [
      makeCandidate(parent35, { skip: [], ffn: Array(35).fill(128) }, 'parent'),
      ...Array.from({ length: 12 }, (_, i) =>
        makeCandidate(
          parent35,
          { skip: [], ffn: Array.from({ length: 35 }, (_, l) => (l < i * 2 + 1 ? 64 : 128)) },
          'g',
        ),
      ),
    ];
    const strategy = { kind: 'successive_halving', start: 5, eta: 3, buckets: 2, fast_rungs: 0 } as const;
    const r0 = firstRound(strategy, cands, nestedOrder(items, 0));
    expect(r0.questions).toHaveLength(5);
    // Metric: the index, so larger is better within each bucket.
    const metric = new Map(cands.map((c, i) => [c.hash, i === 0 ? -1 : i]));
    const r1 = nextRound(strategy, cands, nestedOrder(items, 0), r0, metric)!;
    expect(r1.questions).toHaveLength(15);
    expect(r1.candidates).toContain(cands[0]!.hash);
    // Bucket of the 7 smallest (incl. 6 from the narrowest end) keeps ⌈7/3⌉, the other ⌈6/3⌉, + the parent.
    expect(r1.candidates.length).toBe(1 + 3 + 2);
    expect(nextRound({ kind: 'exhaustive' }, cands, items, r0, metric)).toBeNull();
  });

  it('a sensitivity prior predicts drops per layer and seeds random and successive halving', () => {
    const full = Array<number>(35).fill(128);
    const scan = [
      makeCandidate(parent35, { skip: [], ffn: full.map((w, l) => (l === 0 ? 32 : w)) }, 's'),
      makeCandidate(parent35, { skip: [], ffn: full.map((w, l) => (l === 1 ? 32 : w)) }, 's'),
    ];
    const stored = scan.map((c) => ({ spec_hash: c.hash, ffn: c.spec.ffn }) as never);
    const prior = sensitivityPrior(
      7,
      [
        { layer: 0, kind: 'narrow', spec_hash: scan[0]!.hash, drop: 0.3 },
        { layer: 1, kind: 'narrow', spec_hash: scan[1]!.hash, drop: 0.06 },
        { layer: 2, kind: 'skip', spec_hash: 'x', drop: 0.5 },
      ],
      stored,
    );
    expect(prior.narrow.get(0)).toEqual({ width: 32, drop: 0.3 });
    const parent = makeCandidate(parent35, { skip: [], ffn: full }, 'parent');
    const at = (widths: Record<number, number>, skip: number[] = []) =>
      makeCandidate(
        parent35,
        { skip, ffn: full.map((w, l) => widths[l] ?? w).filter((_, l) => !skip.includes(l)) },
        'g',
      );
    const half0 = at({ 0: 80 }); // half of layer 0's scan narrowing (128 → 32): half its drop
    const both = at({ 0: 32, 1: 32 });
    const narrow1 = at({ 1: 32 });
    const skip2 = at({}, [2]);
    const unscanned = at({ 9: 32 }); // no scan row for layer 9: predicted free
    const cands = [parent, half0, both, narrow1, skip2, unscanned];
    const drop = predictedDrops(cands, full, prior);
    expect(drop.get(parent.hash)).toBe(0);
    expect(drop.get(half0.hash)).toBeCloseTo(0.15, 12);
    expect(drop.get(both.hash)).toBeCloseTo(0.36, 12);
    expect(drop.get(narrow1.hash)).toBeCloseTo(0.06, 12);
    expect(drop.get(skip2.hash)).toBeCloseTo(0.5, 12);
    expect(drop.get(unscanned.hash)).toBe(0);

    // random: the N smallest predicted drops (plus the parent), not a uniform draw.
    const order = nestedOrder(items, 0);
    const r = firstRound({ kind: 'random', n: 2, seed: 0 }, cands, order, drop);
    expect(new Set(r.candidates)).toEqual(new Set([parent.hash, unscanned.hash, narrow1.hash]));
    // successive halving: round 0 only the best third of each bucket by prediction, the parent pinned.
    const sh = { kind: 'successive_halving', start: 5, eta: 3, buckets: 1, fast_rungs: 0 } as const;
    const r0 = firstRound(sh, cands, order, drop);
    expect(r0.questions).toHaveLength(5);
    expect(new Set(r0.candidates)).toEqual(new Set([parent.hash, unscanned.hash]));
    expect(firstRound(sh, cands, order).candidates).toHaveLength(cands.length);
  });

  it('prior: sensitivity only seeds random or successive halving', () => {
    expect(parse({ prior: 'sensitivity', strategy: { random: 3 } }).prior).toBe('sensitivity');
    expect(() => parse({ prior: 'sensitivity' })).toThrow(
      'sweep.yaml: prior: seeds random or successive_halving only, not exhaustive',
    );
    expect(() => parse({ prior: 'sens', strategy: { random: 3 } })).toThrow(
      'sweep.yaml: prior: expected sensitivity, got "sens"',
    );
  });
});

describe('fast rungs', () => {
  const halving = (fast_rungs?: number) =>
    parse({
      strategy: {
        successive_halving: { start: 2, eta: 3, ...(fast_rungs === undefined ? {} : { fast_rungs }) },
      },
    });

  it('the first fast_rungs rounds score in int8, the rest and every other strategy in exact', () => {
    const s = halving(2).strategy;
    expect([0, 1, 2, 3].map((i) => roundPrecision(s, i))).toEqual(['int8', 'int8', 'exact', 'exact']);
    expect(roundPrecision(halving().strategy, 0)).toBe('exact');
    expect(roundPrecision(parse({ strategy: 'exhaustive' }).strategy, 0)).toBe('exact');
    // A strategy stored before fast rungs existed has no fast_rungs.
    expect(roundPrecision({ kind: 'successive_halving', start: 2, eta: 3, buckets: 1 } as never, 0)).toBe(
      'exact',
    );
  });

  it('leaves the final rung to exact mode: fast_rungs must be smaller than the number of rungs', () => {
    // 20 questions from 2 by 3: rungs of 2, 6, 18, 20 questions.
    expect(roundSizes(2, 3, 20)).toEqual([2, 6, 18, 20]);
    expect(() => checkFastRungs(halving(3), 20)).not.toThrow();
    expect(() => checkFastRungs(halving(4), 20)).toThrow(
      'sweep.yaml: strategy.successive_halving.fast_rungs: 4 must be smaller than the number of rungs, 4 (of 2, 6, 18, 20 questions): the final rung scores in exact mode',
    );
    expect(() => checkFastRungs(halving(1), 2)).toThrow(
      /fast_rungs: 1 must be smaller than the number of rungs, 1 /,
    );
    expect(() => checkFastRungs(halving(0), 2)).not.toThrow();
  });
});

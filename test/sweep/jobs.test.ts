// How a round becomes jobs for distributed workers (pure): every missing (candidate, question) pair in exactly
// one job, one subject per job, shards and groups within their sizes; groups follow shared layer prefixes.
import fc from 'fast-check';
import { type Candidate, planJobs, prefixOrder } from '../../src/sweep';

const cand = (hash: string, skip: number[], ffn: number[]): Candidate =>
  ({ hash, spec: { skip, ffn } }) as unknown as Candidate;

describe('prefixOrder', () => {
  it('puts candidates with the same first layers next to each other', () => {
    const cs = [
      cand('a', [], [64, 64, 64, 64]),
      cand('b', [], [32, 64, 64, 64]),
      cand('c', [], [64, 64, 32, 32]),
      cand('d', [1], [32, 64, 64]),
      cand('e', [], [32, 64, 32, 32]),
    ];
    // Layer by layer: 32 before 64, a skipped layer (d's layer 1) before any width.
    expect(prefixOrder(cs).map((c) => c.hash)).toEqual(['d', 'e', 'b', 'c', 'a']);
  });
});

describe('planJobs', () => {
  const subjects = ['anatomy', 'astronomy', 'virology'];
  const arb = fc.record({
    questions: fc.uniqueArray(fc.tuple(fc.constantFrom(...subjects), fc.integer({ min: 0, max: 20 })), {
      minLength: 1,
      maxLength: 30,
      selector: ([s, i]) => `${s}#${i}`,
    }),
    candidates: fc.integer({ min: 1, max: 6 }),
    scored: fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
    questionsPerJob: fc.integer({ min: 1, max: 8 }),
    candidatesPerJob: fc.integer({ min: 0, max: 4 }),
  });

  it('covers every missing pair exactly once, within the job sizes, one subject per job', () => {
    fc.assert(
      fc.property(arb, (a) => {
        const questions = a.questions.map(([subject, index]) => ({ subject, index }));
        const cs = Array.from({ length: a.candidates }, (_, i) => cand(`h${i}`, [], [16 * (i + 1)]));
        const missing = new Map<string, Set<string>>();
        let k = 0;
        for (const c of cs)
          missing.set(
            c.hash,
            new Set(questions.map((q) => `${q.subject}#${q.index}`).filter(() => !a.scored[k++ % 200])),
          );
        const round = { index: 0, questions, candidates: cs.map((c) => c.hash) };
        const jobs = planJobs(round, missing, prefixOrder(cs), {
          questionsPerJob: a.questionsPerJob,
          candidatesPerJob: a.candidatesPerJob,
          leaseSeconds: 60,
        });
        const seen = new Map<string, number>();
        jobs.forEach((j, n) => {
          expect(j.job).toBe(n);
          expect(j.questions.length).toBeLessThanOrEqual(a.questionsPerJob);
          if (a.candidatesPerJob > 0) expect(j.candidates.length).toBeLessThanOrEqual(a.candidatesPerJob);
          expect(new Set(j.questions.map((q) => q.subject))).toEqual(new Set([j.subject]));
          let pairs = 0;
          for (const h of j.candidates)
            for (const q of j.questions) {
              const key = `${h}/${q.subject}#${q.index}`;
              if (!missing.get(h)!.has(`${q.subject}#${q.index}`)) continue;
              seen.set(key, (seen.get(key) ?? 0) + 1);
              pairs++;
            }
          expect(pairs).toBe(j.pairs);
          expect(pairs).toBeGreaterThan(0);
        });
        const want = [...missing].flatMap(([h, m]) => [...m].map((q) => `${h}/${q}`)).sort();
        expect([...seen.keys()].sort()).toEqual(want);
        expect([...seen.values()].every((n) => n === 1)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

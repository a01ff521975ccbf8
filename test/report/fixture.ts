// A sweep's results as `results --json` prints them, made up for tests: a 35-layer parent, block-level
// candidates, skips, a successive-halving funnel, a sensitivity scan and one candidate whose id is markup.
import { paretoFrontier } from '../../src/report';
import type { SweepCandidate, SweepResults } from '../../src/report';

export const XSS_ID = '<img src=x onerror="window.__xss=1">';
export const DEPTH = 35;

/** A deterministic pseudo-random number in [0, 1) for index i (no shared state between tests). */
const frac = (i: number) => {
  const x = Math.sin(i * 12.9898 + 1) * 43758.5453;
  return x - Math.floor(x);
};

export function sweepFixture(count = 14): SweepResults {
  const raw: Omit<SweepCandidate, 'pareto'>[] = [];
  for (let i = 0; i < count; i++) {
    // Blocks of 5 layers; candidate i narrows the blocks whose bit is set, and skips layer 20+i%5 when i%4==3.
    const skip = i % 4 === 3 ? [20 + (i % 5)] : [];
    const ffn: number[] = [];
    for (let l = 0; l < DEPTH; l++) if (!skip.includes(l)) ffn.push((i >> Math.floor(l / 5)) & 1 ? 128 : 256);
    const effective = 2_000_000 + ffn.reduce((s, w) => s + 192 * w, 0);
    const metric = i === 0 ? 1 : Math.min(0.98, 0.5 + 0.45 * (effective / 3_720_000) + 0.05 * frac(i));
    const n = i < 4 ? 18 : 6;
    const half = 0.5 / Math.sqrt(n);
    raw.push({
      id: i === 5 ? XSS_ID : i === 0 ? 'parent' : `c${i}`,
      spec: { skip, ffn },
      params: { effective, embeddings: 16_793_600 },
      result: {
        metric,
        acc: 0.2 + 0.1 * frac(i + 100),
        n,
        ci: [Math.max(0, metric - half), Math.min(1, metric + half)],
        categories: {
          stem: { acc: 0.25 + 0.1 * frac(i + 7), n: 12, ci: [0.1, 0.5] },
          humanities: { acc: 0.2 + 0.1 * frac(i + 9), n: 6, ci: [0.05, 0.6] },
        },
      },
      preset: i === 2 ? 'Config for <b>bold</b> & "quoted"' : null,
    });
  }
  const front = new Set(
    paretoFrontier(raw.map((c) => ({ params: c.params.effective, metric: c.result!.metric }))),
  );
  return {
    runs: [
      {
        id: 1,
        sweep_file: 'sweep.yaml',
        model: '/data/demo parent',
        tool_version: '0.1.0',
        model_fingerprint: 'f00dfeed',
        backend: 'wasm',
        subset_id: '64f5db6ee2441952',
        shots: 5,
        metric: 'agreement',
        strategy: { successive_halving: { start: 6, eta: 3, buckets: 2 } },
        timings: { load: 1.2, score: 40.5, total: 42 },
        work: { layer_tokens_done: 100_000, layer_tokens_needed: 420_000 },
        rungs: [
          { candidates: count, questions: 6 },
          { candidates: 4, questions: 18 },
        ],
        sensitivity: Array.from({ length: DEPTH }, (_, l) => [
          { layer: l, kind: 'narrow' as const, drop: 0.01 * frac(l) },
          ...(l >= 20 ? [{ layer: l, kind: 'skip' as const, drop: 0.05 * frac(l + 50) }] : []),
        ]).flat(),
      },
    ],
    candidates: raw.map((c, i) => ({ ...c, pareto: front.has(i) })),
  };
}

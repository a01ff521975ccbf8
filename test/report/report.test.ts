// The report as a pure function: input validation, the frontier, escaping, what the page holds.
import fc from 'fast-check';
import { loadConfig, loadPublishedConfigs, textParams } from '../../src/gemma3n';
import {
  type EvalSummary,
  chanceWarning,
  paretoFrontier,
  parseSweepResults,
  renderReport,
  scriptJson,
  sensitivityRun,
  sweepResultsFromEvals,
  widthsByLayer,
} from '../../src/report';
import { DEPTH, XSS_ID, sweepFixture } from './fixture';
import { repoRoot } from '../helpers/cli';
import * as path from 'path';

// A stand-in bundle: these tests check the page around plotly, the browser test runs the real one.
const PLOTLY = 'window.Plotly={newPlot:function(){}};';
const published = loadPublishedConfigs();

// The edits below poke at untyped JSON on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

describe('parseSweepResults', () => {
  const good = () => JSON.parse(JSON.stringify(sweepFixture(4))) as Record<string, unknown>;

  test('accepts results --json output and keeps its fields', () => {
    const r = parseSweepResults(good(), 'r.json');
    expect(r.candidates).toHaveLength(4);
    expect(r.runs[0]!.rungs).toEqual([
      { candidates: 4, questions: 6 },
      { candidates: 4, questions: 18 },
    ]);
    expect(r.candidates[0]!.spec.ffn).toHaveLength(DEPTH);
  });

  test.each([
    [
      'candidates[1].spec.ffn[3]',
      (j: Json) => (j.candidates[1].spec.ffn[3] = 0),
      'expected a positive integer',
    ],
    [
      'candidates[0].result.ci',
      (j: Json) => (j.candidates[0].result.ci = [0.9, 0.1]),
      'low 0.9 is above high 0.1',
    ],
    ['runs[0].metric', (j: Json) => (j.runs[0].metric = 'perplexity'), 'expected "accuracy" or "agreement"'],
    [
      'runs[0].sensitivity[2].kind',
      (j: Json) => (j.runs[0].sensitivity[2].kind = 'wide'),
      'expected "narrow"',
    ],
    ['candidates[2].spec', (j: Json) => j.candidates[2].spec.ffn.pop(), 'describes a 34-layer parent'],
    [
      'candidates[3].spec.skip',
      (j: Json) => (j.candidates[3].spec.skip = [21, 20]),
      'expected sorted, unique layer indices',
    ],
    ['runs', (j: Json) => (j.runs = []), 'expected at least one run'],
  ])('%s: one line naming the key path', (at, edit, what) => {
    const j = good();
    edit(j);
    expect(() => parseSweepResults(j, 'r.json')).toThrow(`r.json: ${at}: ${what}`);
  });
});

describe("parseSweepResults on the store's own field names", () => {
  // What the sweep store's `results --json` writes: counts on the run, the owning run and its sensitivity scan
  // at the top level, the round each candidate reached, labels beside hash ids, McNemar for the frontier.
  const storeShaped = {
    runs: [
      {
        id: 4,
        sweep_file: 's.yaml',
        tool_version: '0.1.0',
        model_path: '/m',
        model_fingerprint: 'fp',
        backend: 'wasm',
        metric: 'agreement',
        strategy: 'successive_halving',
        shots: 5,
        split: 'test',
        layer_tokens_done: 250,
        layer_tokens_unshared: 1000,
        seconds: 12.5,
        rounds: 2,
        sharing: 4,
      },
    ],
    run: 4,
    metric: 'agreement',
    sensitivity: [{ layer: 3, kind: 'narrow', id: 'abc', drop: 0.1 }],
    candidates: [
      {
        id: 'aaaa',
        label: 'parent',
        origin: 'parent',
        preset: null,
        spec: { skip: [], ffn: [8, 8] },
        params: { effective: 100, text_total: 200, layers: 2 },
        pareto: true,
        mcnemar: null,
        published_mmlu: null,
        result: { metric: 1, acc: 0.3, correct: 3, n: 10, ci: [0.7, 1], agreement: 1, kl: 0, round: 1 },
      },
      {
        id: 'bbbb',
        label: 'skip 1',
        origin: 'skips',
        preset: null,
        spec: { skip: [1], ffn: [8] },
        params: { effective: 60, text_total: 160, layers: 1 },
        pareto: true,
        published_mmlu: null,
        mcnemar: {
          paired: 10,
          both_correct: 1,
          only_parent: 2,
          only_candidate: 0,
          both_wrong: 7,
          p_value: 0.5,
          significant: false,
          alpha: 0.05,
        },
        result: {
          metric: 0.8,
          acc: 0.2,
          correct: 2,
          n: 10,
          ci: [0.5, 0.95],
          agreement: 0.8,
          kl: 0.1,
          round: 1,
        },
      },
      {
        id: 'cccc',
        label: 'narrow',
        origin: 'blocks',
        preset: null,
        spec: { skip: [], ffn: [4, 8] },
        params: { effective: 80, text_total: 180, layers: 2 },
        pareto: false,
        mcnemar: null,
        published_mmlu: null,
        result: {
          metric: 0.5,
          acc: 0.2,
          correct: 1,
          n: 3,
          ci: [0.1, 0.9],
          agreement: 0.5,
          kl: 0.3,
          round: 0,
        },
      },
    ],
  };

  test("maps them onto the report's input", () => {
    const r = parseSweepResults(storeShaped, 'r.json');
    const run = r.runs[0]!;
    expect(run.model).toBe('/m');
    expect(run.work).toEqual({ layer_tokens_done: 250, layer_tokens_needed: 1000 });
    expect(run.timings).toEqual({ score: 12.5 });
    expect(run.sensitivity).toEqual([{ layer: 3, kind: 'narrow', drop: 0.1 }]);
    // Round 0: all three candidates on 3 questions; round 1: the two that went on, on 10.
    expect(run.rungs).toEqual([
      { candidates: 3, questions: 3 },
      { candidates: 2, questions: 10 },
    ]);
    expect(r.candidates.map((c) => c.run_id)).toEqual([4, 4, 4]);
    const html = renderReport(r, { published, plotlyJs: PLOTLY });
    expect(html).toContain('McNemar p vs parent');
    expect(html).toContain('skip 1 <span class="ci">bbbb</span>');
    expect(html).toContain('4.00× less');
    expect(() =>
      renderReport({ ...r, runs: [...r.runs, { ...run, id: 5 }] }, { published, plotlyJs: PLOTLY, runId: 5 }),
    ).toThrow('--run: the input holds the candidates of run 4 only');
  });
});

describe('paretoFrontier', () => {
  test('equals the brute-force definition on random point sets', () => {
    const point = fc.record({
      params: fc.integer({ min: 1, max: 50 }),
      metric: fc.integer({ min: 0, max: 20 }),
    });
    fc.assert(
      fc.property(fc.array(point, { maxLength: 30 }), (pts) => {
        const front = paretoFrontier(pts);
        const dominated = (i: number) =>
          pts.some(
            (q, j) =>
              j !== i &&
              q.params <= pts[i]!.params &&
              q.metric >= pts[i]!.metric &&
              (q.params < pts[i]!.params || q.metric > pts[i]!.metric),
          );
        // Every frontier point is undominated; every undominated point is on it or an exact duplicate of one.
        for (const i of front) expect(dominated(i)).toBe(false);
        for (let i = 0; i < pts.length; i++)
          if (!dominated(i))
            expect(
              front.some((f) => pts[f]!.params === pts[i]!.params && pts[f]!.metric === pts[i]!.metric),
            ).toBe(true);
        for (let k = 1; k < front.length; k++)
          expect(pts[front[k]!]!.params).toBeGreaterThan(pts[front[k - 1]!]!.params);
      }),
    );
  });
});

describe('renderReport', () => {
  const results = sweepFixture();
  const html = renderReport(results, { published, plotlyJs: PLOTLY, generatedAt: 'fixed' });

  test('is self-contained: no external script, stylesheet or image', () => {
    expect(html).not.toMatch(/<script[^>]*\ssrc=/i);
    expect(html).not.toMatch(/<link[^>]*\shref=/i);
    expect(html).not.toMatch(/<img/i);
    expect(html).toContain(PLOTLY);
  });

  test('escapes every string from the input', () => {
    expect(html).not.toContain(XSS_ID);
    expect(html).not.toContain('<b>bold</b>');
    expect(html).toContain('&#60;img src=x onerror=&#34;window.__xss=1&#34;&#62;');
    // The data island cannot close its <script> element early.
    const start = html.indexOf('id="report-data">') + 'id="report-data">'.length;
    const island = html.slice(start, html.indexOf('</script>', start));
    expect(island).not.toMatch(/<\/?[a-z]/i);
    expect(scriptJson({ a: '</script><b>\u2028' })).toBe(
      '{"a":"\\u003c/script\\u003e\\u003cb\\u003e\\u2028"}',
    );
  });

  test('holds every section when the run has them, and only then', () => {
    for (const id of ['plot-pareto', 'plot-layers', 'plot-sensitivity', 'plot-categories', 'plot-funnel'])
      expect(html).toContain(`id="${id}"`);
    const bare = { ...results, runs: [{ ...results.runs[0]!, rungs: undefined, sensitivity: undefined }] };
    const plain = renderReport(bare, { published, plotlyJs: PLOTLY });
    expect(plain).not.toContain('id="plot-sensitivity"');
    expect(plain).not.toContain('id="plot-funnel"');
  });

  test('a table row per candidate with the slice command that reproduces it', () => {
    const rows = html.slice(html.indexOf('<tbody>'), html.indexOf('</tbody>')).match(/<tr/g) ?? [];
    expect(rows).toHaveLength(results.candidates.length);
    const skipper = results.candidates.find((c) => c.spec.skip.length > 0)!;
    expect(html).toContain(
      `matformer-lab slice &#39;/data/demo parent&#39; --out ./slice-${skipper.id} --skip ${skipper.spec.skip[0]} --ffn `,
    );
    expect(html).toContain('4.20× less'); // 420,000 / 100,000 layer-token evaluations
  });

  test("a sensitivity scan run of the same checkpoint and subset shows in the other runs' reports", () => {
    const scan = results.runs[0]!;
    const halving = { ...scan, id: 2, sensitivity: undefined };
    const other = { ...halving, id: 3, model_fingerprint: 'other' };
    const both = { runs: [scan, halving, other], candidates: results.candidates };
    expect(sensitivityRun(both, halving)).toBe(scan);
    expect(sensitivityRun(both, other)).toBeNull();
    expect(renderReport(both, { published, plotlyJs: PLOTLY, runId: 2 })).toContain(
      'From the sensitivity scan of run 1',
    );
  });

  test('--run picks a run and names the known ones when it is absent', () => {
    expect(() => renderReport(results, { published, plotlyJs: PLOTLY, runId: 7 })).toThrow(
      '--run: no run "7" (runs: 1)',
    );
  });

  test('refuses a bundle that would end its <script> element', () => {
    expect(() => renderReport(results, { published, plotlyJs: 'x="</script>"' })).toThrow('</script');
  });

  test('widthsByLayer puts the kept widths back at their parent indices', () => {
    expect(widthsByLayer({ skip: [1, 3], ffn: [10, 20, 30] }, 5)).toEqual([10, null, 20, null, 30]);
  });
});

describe('chanceWarning', () => {
  const run = sweepFixture(2).runs[0]!;
  const cand = (acc: number, n: number) => ({
    id: 'x',
    spec: { skip: [], ffn: [1] },
    params: { effective: 1 },
    result: { metric: acc, acc, n, ci: [0, 1] as const },
    pareto: true,
  });

  test('warns when the best accuracy is consistent with guessing, not when it is clearly above', () => {
    expect(chanceWarning(run, [cand(0.3, 18), cand(0.2, 18)])).toMatch(/chance level.*30\.0%/);
    expect(chanceWarning(run, [cand(0.62, 1000)])).toBeNull();
    expect(chanceWarning({ ...run, random_weights: true }, [cand(0.62, 1000)])).toMatch(/random weights/);
  });
});

describe('sweepResultsFromEvals', () => {
  const config = loadConfig(path.join(repoRoot, 'configs', 'demo', 'config.json'));
  const record = (
    file: string,
    spec: EvalSummary['spec'],
    acc: number,
    over: Partial<EvalSummary> = {},
  ): EvalSummary => ({
    file,
    model: '/m',
    spec,
    subset_id: 's1',
    shots: 5,
    backend: 'wasm',
    overall: { acc, n: 18, ci: [acc / 2, Math.min(1, acc * 1.5)] },
    categories: {},
    seconds: 3,
    tokens_processed: 100,
    tokens_naive: 400,
    ...over,
  });
  const L = config.text.num_hidden_layers;

  test('counts parameters from the parent config and marks the frontier', () => {
    const small = { skip: [12, 13], ffn: Array(L - 2).fill(128) };
    const r = sweepResultsFromEvals(
      [
        record('a/parent.json', null, 0.3),
        record('b/small.json', small, 0.4),
        record('c/small.json', small, 0.1),
      ],
      config.text,
      { toolVersion: 't' },
    );
    expect(r.candidates.map((c) => c.id)).toEqual(['parent', 'small', 'small#2']);
    expect(r.candidates[1]!.params.effective).toBe(textParams(config.text, small).effective);
    expect(r.candidates.map((c) => c.pareto)).toEqual([false, true, false]);
    expect(r.runs[0]!.work).toEqual({
      layer_tokens_done: 100 * L + 2 * 100 * (L - 2),
      layer_tokens_needed: 400 * L + 2 * 400 * (L - 2),
    });
  });

  test('refuses to mix subsets, shots or checkpoints', () => {
    const a = record('a.json', null, 0.3);
    expect(() =>
      sweepResultsFromEvals([a, record('b.json', null, 0.3, { subset_id: 's2' })], config.text, {
        toolVersion: 't',
      }),
    ).toThrow('b.json: subset "s2" differs from a.json\'s "s1"');
    expect(() =>
      sweepResultsFromEvals([a, record('b.json', null, 0.3, { model: '/n' })], config.text, {
        toolVersion: 't',
      }),
    ).toThrow('b.json: model "/n" differs');
    expect(() =>
      sweepResultsFromEvals([record('c.json', { skip: [], ffn: [1, 2] }, 0.3)], config.text, {
        toolVersion: 't',
      }),
    ).toThrow(`c.json: spec does not fit the ${L}-layer checkpoint /m`);
  });
});

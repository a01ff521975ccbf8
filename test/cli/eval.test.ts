// `eval` and `compare` end to end through the CLI: the harness protocol on tiny-vocab reproduces
// transformers + lm-evaluation-harness (same predictions, |Δ logprob| ≤ 1e-3) at 0 and 5 shots, with the
// few-shot prefix computed once per subject; the self-made mini-MMLU needs nothing from ../shared.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRandomCheckpoint } from '../../src/gemma3n';
import { repoRoot, runCli } from '../helpers/cli';
import { describeIfShared, fixturesDir, sharedDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';

interface RefItem {
  subject: string;
  index: number;
  shots: number;
  pred: string;
  logprobs: number[];
  n_tokens: number;
}

const readJsonl = (f: string) =>
  fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { subject: string; index: number; pred: string; logprobs: number[] });

describeIfShared(
  'eval on tiny-vocab against the harness reference',
  () => {
    const ref = () =>
      JSON.parse(
        fs.readFileSync(path.join(fixturesDir(), 'gemma3n/tiny-vocab.mmlu-reference.json'), 'utf8'),
      ) as { items: RefItem[] };

    for (const shots of [0, 5]) {
      it(`${shots}-shot: same predictions and log-probabilities`, () => {
        const dir = tmpDir();
        const out = path.join(dir, 'r.json');
        const preds = path.join(dir, 'p.jsonl');
        const r = runCli([
          'eval',
          path.join(fixturesDir(), 'gemma3n/tiny-vocab'),
          '--mmlu',
          path.join(sharedDir(), 'data/mmlu'),
          '--subjects',
          'abstract_algebra,high_school_government_and_politics',
          '--limit-per-subject',
          '10',
          '--shots',
          String(shots),
          '--backend',
          'cpu',
          '--out',
          out,
          '--predictions',
          preds,
        ]);
        expect(r.stderr).not.toMatch(/error/);
        expect(r.code).toBe(0);
        const want = ref().items.filter((it) => it.shots === shots);
        const got = readJsonl(preds);
        expect(got).toHaveLength(want.length);
        for (const w of want) {
          const g = got.find((p) => p.subject === w.subject && p.index === w.index)!;
          expect(g.pred).toBe(w.pred);
          g.logprobs.forEach((lp, j) => expect(Math.abs(lp - w.logprobs[j]!)).toBeLessThanOrEqual(1e-3));
        }
        const results = JSON.parse(fs.readFileSync(out, 'utf8'));
        expect(results.overall.n).toBe(20);
        expect(results.shots).toBe(shots);
        expect(results.timing.tokens_naive).toBe(want.reduce((n, w) => n + w.n_tokens, 0));
        // With shots the prefix runs once per subject, so far fewer tokens than prompt by prompt.
        if (shots === 5)
          expect(results.timing.tokens_processed).toBeLessThan(results.timing.tokens_naive / 3);
      });
    }
  },
  ['fixtures/gemma3n/tiny-vocab', 'data/mmlu'],
);

describe('eval and compare on a self-made checkpoint and mini-MMLU', () => {
  let dir: string;
  let ckpt: string;
  beforeAll(async () => {
    dir = tmpDir();
    ckpt = path.join(dir, 'demo');
    await createRandomCheckpoint({
      config: path.join(repoRoot, 'configs/tiny/config.json'),
      out: ckpt,
      seed: 3,
    });
  });
  const mmlu = path.join(repoRoot, 'examples/mini-mmlu');

  it('an elastic submodel is scored, and compare runs the paired test', () => {
    const common = ['--mmlu', mmlu, '--shots', '2', '--backend', 'cpu', '--subjects', 'world_religions'];
    const a = runCli([
      'eval',
      ckpt,
      ...common,
      '--out',
      path.join(dir, 'a.json'),
      '--predictions',
      path.join(dir, 'a.jsonl'),
    ]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/accuracy [\d.]+% \(\d+\/6/);
    const b = runCli([
      'eval',
      ckpt,
      ...common,
      '--skip',
      '7',
      '--ffn',
      '64',
      '--out',
      path.join(dir, 'b.json'),
      '--predictions',
      path.join(dir, 'b.jsonl'),
    ]);
    expect(b.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'b.json'), 'utf8')).spec).toEqual({
      skip: [7],
      ffn: Array(9).fill(64),
    });
    const c = runCli(['compare', path.join(dir, 'a.json'), path.join(dir, 'b.json'), '--json']);
    expect(c.code).toBe(0);
    const res = JSON.parse(c.stdout);
    expect(res.paired).toBe(6);
    expect(res.both_correct + res.only_a + res.only_b + res.both_wrong).toBe(6);
    expect(res.p_value).toBeGreaterThan(0);
    expect(res.p_value).toBeLessThanOrEqual(1);
  });

  it('bad input: one line naming the flag or file, exit 2', () => {
    const noData = runCli(['eval', ckpt, '--out', path.join(dir, 'x.json')], { env: { MMLU_DIR: '' } });
    expect(noData.code).toBe(2);
    expect(noData.stderr.trim()).toMatch(/^error: --mmlu: /);
    expect(noData.stderr.trim().split('\n')).toHaveLength(1);
    const badSubject = runCli([
      'eval',
      ckpt,
      '--mmlu',
      mmlu,
      '--subjects',
      'astrology',
      '--out',
      path.join(dir, 'x.json'),
    ]);
    expect(badSubject.code).toBe(2);
    expect(badSubject.stderr).toMatch(/astrology/);
    const badOut = runCli(['eval', ckpt, '--mmlu', mmlu, '--out', path.join(dir, 'nope/x.json')]);
    expect(badOut.code).toBe(2);
    expect(badOut.stderr).toMatch(/--out: folder .* does not exist/);
    const noPreds = runCli(['compare', path.join(dir, 'missing.json'), path.join(dir, 'a.json')]);
    expect(noPreds.code).toBe(2);
    expect(noPreds.stderr).toMatch(/missing\.json: no such file/);
    expect(fs.existsSync(path.join(dir, 'x.json'))).toBe(false);
  });
});

// `matformer-lab report` from the CLI: a results --json file or eval results files in, one HTML file out,
// written atomically, never replaced without --force; bad input is one line and exit 2.
import * as fs from 'fs';
import * as path from 'path';
import { repoRoot, runCli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';
import { sweepFixture } from '../report/fixture';

describe('report command', () => {
  const dir = tmpDir('matformer-report-cli-');
  const results = path.join(dir, 'results.json');
  fs.writeFileSync(results, JSON.stringify(sweepFixture(6)));

  test('writes one self-contained page, atomically, and refuses to replace it without --force', () => {
    const out = path.join(dir, 'sweep.html');
    const r = runCli(['report', results, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^wrote .*sweep\.html \([\d.]+ MB\): run 1, 6 candidates, \d+ on the frontier\n$/,
    );
    const html = fs.readFileSync(out, 'utf8');
    expect(html).toContain('window.Plotly');
    expect(html).not.toMatch(/<script[^>]*\ssrc=|<link[^>]*\shref=/i);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const again = runCli(['report', results, '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`error: ${out}: exists (pass --force to replace it)\n`);
    expect(runCli(['report', results, '--out', out, '--force']).code).toBe(0);
  });

  test('goes to reports/ by default', () => {
    const cwd = tmpDir('matformer-report-cwd-');
    const r = runCli(['report', results], { cwd });
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(cwd, 'reports', 'report-1.html'))).toBe(true);
  });

  test('reads eval results files of one checkpoint', () => {
    const ckpt = path.join(dir, 'tiny');
    fs.mkdirSync(ckpt);
    fs.copyFileSync(path.join(repoRoot, 'configs', 'tiny', 'config.json'), path.join(ckpt, 'config.json'));
    const evalFile = (name: string, spec: unknown, acc: number, subset = 's1') => {
      const file = path.join(dir, `${name}.json`);
      fs.writeFileSync(
        file,
        JSON.stringify({
          model: ckpt,
          spec,
          subset: { id: subset, split: 'test', n: 18 },
          shots: 5,
          backend: 'wasm',
          overall: { acc, correct: Math.round(acc * 18), n: 18, ci: [0.1, 0.6] },
          categories: { stem: { acc, correct: 6, n: 12, ci: [0.1, 0.6] } },
          timing: { seconds: 2, tokens_processed: 100, tokens_naive: 300 },
        }),
      );
      return file;
    };
    const files = [
      evalFile('parent', null, 0.3),
      evalFile('small', { skip: [7], ffn: Array(9).fill(64) }, 0.35),
    ];
    const out = path.join(dir, 'evals.html');
    const r = runCli(['report', ...files, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/run eval, 2 candidates, 1 on the frontier/);
    const html = fs.readFileSync(out, 'utf8');
    expect(html).toContain('skip 7 · ffn 64x9');
    expect(html).toContain('id="chance-warning"');
    const mixed = runCli(['report', files[0]!, evalFile('other', null, 0.3, 's2'), '--out', out, '--force']);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/other\.json: subset "s2" differs from .*parent\.json's "s1"/);
  });

  test.each([
    ['a missing file', ['missing.json'], /missing\.json: no such file/],
    ['not JSON', ['garbage.txt'], /garbage\.txt: not JSON; expected the output of `results --json`/],
    ['a bad key', ['bad.json'], /bad\.json: candidates\[0\]\.params\.effective: expected a finite number/],
    ['an unknown run', ['results.json', '--run', '9'], /--run: no run "9" \(runs: 1\)/],
    [
      'a missing --out folder',
      ['results.json', '--out', 'nope/x.html'],
      /--out: folder .*nope does not exist/,
    ],
  ])('%s: one line, exit 2', (_, args, message) => {
    fs.writeFileSync(path.join(dir, 'garbage.txt'), 'not json');
    const bad = sweepFixture(2) as unknown as { candidates: { params: Record<string, unknown> }[] };
    bad.candidates[0]!.params.effective = 'many';
    fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify(bad));
    const r = runCli(['report', ...args], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

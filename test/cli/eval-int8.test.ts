// `eval --precision int8` end to end on a random tiny checkpoint and the repo's mini-MMLU (cpu backend, the int8
// kernels' cpu twins): the results record the precision and the agreement with exact mode, which equals what
// the two modes' own predictions give; a killed int8 run resumes without rescoring its exact sample; a journal
// is never resumed in the other precision.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Agreement, type QuestionPrediction, agreementSample, agreementWith } from '../../src/eval';
import { createRandomCheckpoint } from '../../src/gemma3n';
import { cliPath, repoRoot, runCli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

jest.setTimeout(600_000);

const mmlu = path.join(repoRoot, 'examples/mini-mmlu');
const evalArgs = ['--mmlu', mmlu, '--shots', '0', '--backend', 'cpu'];
const t = { timeoutMs: 300_000 };

interface EvalJson {
  precision: string;
  agreement: Agreement | null;
  overall: { n: number };
  timing: { resumed_questions: number };
}

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as EvalJson;
const readJsonl = (f: string) =>
  fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as QuestionPrediction);
const journalLines = (f: string) =>
  fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).length - 1 : 0;

/** The sample `eval` scores in exact mode, from the exact run's predictions (listed in the subset's order). */
const sampleOf = (exact: QuestionPrediction[], n: number) => {
  const items = agreementSample({ split: 'test', spec: {}, items: exact }, n).items;
  const keys = new Set(items.map((q) => `${q.subject}#${q.index}`));
  return exact.filter((p) => keys.has(`${p.subject}#${p.index}`));
};

const started: ChildProcess[] = [];
afterAll(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('eval --precision int8', () => {
  let dir: string;
  let ckpt: string;
  let exact: QuestionPrediction[];
  let fast: QuestionPrediction[];

  beforeAll(async () => {
    dir = tmpDir();
    ckpt = path.join(dir, 'tiny');
    await createRandomCheckpoint({
      config: path.join(repoRoot, 'configs/tiny/config.json'),
      out: ckpt,
      seed: 5,
    });
  });

  it('records the precision and its agreement with exact mode on the sample', () => {
    const e = path.join(dir, 'e.json');
    let r = runCli(['eval', ckpt, ...evalArgs, '--out', e, '--predictions', path.join(dir, 'e.jsonl')], t);
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/error/)]);
    expect(r.stdout).toMatch(/; precision exact; wrote /);
    expect(readJson(e)).toMatchObject({ precision: 'exact', agreement: null });
    exact = readJsonl(path.join(dir, 'e.jsonl'));
    expect(exact).toHaveLength(18);

    const i = path.join(dir, 'i.json');
    r = runCli(
      [
        'eval',
        ckpt,
        ...evalArgs,
        '--precision',
        'int8',
        '--agreement-sample',
        '5',
        '--out',
        i,
        '--predictions',
        path.join(dir, 'i.jsonl'),
      ],
      t,
    );
    expect(r.code).toBe(0);
    // One engine at a time: exact for the sample, then int8 for every question.
    expect(r.stderr).toMatch(
      /loaded .* on cpu \(exact\) in .*; 5 questions, 0-shot \(exact sample\)\n[^]*loaded .* on cpu \(int8\) in .*; 18 questions/,
    );
    expect(r.stdout).toMatch(
      /; precision int8; agreement with exact on 5 questions: \d+\.\d% same answers, \|Δ log-prob\| max \S+ mean \S+; wrote /,
    );
    const rec = readJson(i);
    expect(rec.precision).toBe('int8');
    fast = readJsonl(path.join(dir, 'i.jsonl'));
    const want = agreementWith(sampleOf(exact, 5), fast);
    const got = rec.agreement!;
    expect(got).toMatchObject({ with: 'exact', questions: 5, predictions: want.predictions });
    expect(got.max_dlogprob).toBeCloseTo(want.max_dlogprob, 4);
    expect(got.mean_dlogprob).toBeCloseTo(want.mean_dlogprob, 4);
    // Fast mode really ran: int8 weights and activations move the log-probabilities, a little.
    expect(got.max_dlogprob).toBeGreaterThan(0);
    expect(got.mean_dlogprob).toBeLessThanOrEqual(got.max_dlogprob);
    expect(got.predictions).toBeGreaterThanOrEqual(0.6);
    expect(fs.readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);

    // compare pairs them, saying the precisions differ.
    const c = runCli(['compare', e, i], t);
    expect(c.code).toBe(0);
    expect(c.stderr).toMatch(/^warning: precisions differ \(A exact, B int8\); /);
    expect(c.stdout).toMatch(/^paired questions: 18 \(precision A exact, B int8\)\n/);

    // --agreement-sample 0: no exact engine, no agreement.
    r = runCli(
      ['eval', ckpt, ...evalArgs, '--precision', 'int8', '--agreement-sample', '0', '--out', i, '--force'],
      t,
    );
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/\(exact\)/);
    expect(readJson(i)).toMatchObject({ precision: 'int8', agreement: null });
  });

  it('a killed int8 run resumes in int8 only, its exact sample not scored again', async () => {
    const out = path.join(dir, 'k.json');
    const journal = path.join(dir, '.k.json.partial.jsonl');
    const sampleJournal = path.join(dir, '.k.json.exact.partial.jsonl');
    const args = [
      'eval',
      ckpt,
      ...evalArgs,
      '--batch-size',
      '1',
      '--precision',
      'int8',
      '--agreement-sample',
      '3',
    ];
    const child = spawn(process.execPath, [cliPath, ...args, '--out', out], {
      cwd: repoRoot,
      stdio: 'ignore',
    });
    started.push(child);
    const exited = new Promise((res) => child.on('exit', res));
    const t0 = Date.now();
    while (journalLines(journal) < 2 && Date.now() - t0 < 300_000)
      await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(journalLines(sampleJournal)).toBe(3);
    const partial = journalLines(journal);
    expect(partial).toBeGreaterThanOrEqual(2);
    expect(partial).toBeLessThan(18);

    // The other precision is refused in one line, the journals left as they were.
    let r = runCli(['eval', ckpt, ...evalArgs, '--batch-size', '1', '--resume', '--out', out], t);
    expect(r.code).toBe(2);
    // (The killed run's lock is stale: removed with a notice.)
    expect(r.stderr.split('\n').filter((l) => l && !l.startsWith('removed the stale lock'))).toEqual([
      expect.stringMatching(
        /^error: --resume: .*\.k\.json\.partial\.jsonl was written by a different run \(precision "int8" vs now "exact"\); pass --force to start over$/,
      ),
    ]);
    expect(journalLines(journal)).toBe(partial);

    r = runCli([...args, '--resume', '--out', out], t);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/resuming: \d+ questions already scored/);
    expect(r.stderr).not.toMatch(/\(exact sample\)/);
    const rec = readJson(out);
    expect(rec.overall.n).toBe(18);
    expect(rec.timing.resumed_questions).toBeGreaterThanOrEqual(partial);
    expect(rec.agreement).toMatchObject({ with: 'exact', questions: 3 });
    const sample = sampleOf(exact, 3);
    expect(rec.agreement!.predictions).toBe(agreementWith(sample, fast).predictions);
    expect(rec.agreement!.max_dlogprob).toBeCloseTo(agreementWith(sample, fast).max_dlogprob, 4);
    expect(fs.existsSync(journal) || fs.existsSync(sampleJournal)).toBe(false);
  });
});

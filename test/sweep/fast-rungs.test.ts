// Successive halving with `fast_rungs` end to end through the CLI on a random 10-layer checkpoint and the repo's
// mini-MMLU (cpu backend, the int8 kernels' cpu twins): the first rung scores in int8, the final one in exact
// mode; results are stored under their precision, the frontier is drawn from exact results only, `results`
// shows the precision; a sweep killed mid-way resumes to the same results; bad fast_rungs get one line.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { type CliResult, cliPath, repoRoot, runCli as run } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';
import { demoConfig, randomCheckpoint } from './helpers';

jest.setTimeout(900_000);

interface Json {
  runs: { id: number; strategy: string }[];
  candidates: {
    id: string;
    pareto: boolean;
    result: { n: number; round: number; precision: string; metric: number };
    predictions?: { subject: string; index: number; logprobs: number[] }[];
  }[];
}

const MMLU = path.join(repoRoot, 'examples/mini-mmlu');
const runCli = (args: string[]): CliResult => run(args, { timeoutMs: 600_000 });

describe('sweep with fast_rungs', () => {
  let dir: string;
  let model: string;
  const sweepFile = (name: string, halving: Record<string, unknown>) => {
    const f = path.join(dir, name);
    fs.writeFileSync(
      f,
      JSON.stringify({
        model,
        data: { mmlu: MMLU, limit_per_subject: 3 },
        shots: 0,
        backend: 'cpu',
        batch_size: 1,
        candidates: [{ generate: 'blocks', widths: [32, 64] }],
        strategy: { successive_halving: { start: 3, eta: 3, buckets: 2, ...halving } },
      }),
    );
    return f;
  };
  const results = (db: string, ...flags: string[]) => {
    const r = runCli(['results', db, '--json', ...flags]);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as Json;
  };
  const rows = (db: string) => {
    const d = new Database(db, { readonly: true });
    try {
      return d
        .prepare('SELECT spec_hash, precision, count(*) AS n FROM results GROUP BY spec_hash, precision')
        .all() as { spec_hash: string; precision: string; n: number }[];
    } finally {
      d.close();
    }
  };

  beforeAll(async () => {
    dir = tmpDir();
    model = await randomCheckpoint(dir, 'm10', demoConfig({ layers: 10, width: 64, kvShared: 4 }), 3);
  });

  it('refuses fast_rungs that leave no exact rung, and with --enqueue, in one line', () => {
    // 9 questions from 3 by 3: rungs of 3 and 9 questions.
    const bad = sweepFile('bad.json', { fast_rungs: 2 });
    const db = path.join(dir, 'bad.sqlite');
    let r = runCli(['sweep', bad, '--db', db]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: ${bad}: strategy.successive_halving.fast_rungs: 2 must be smaller than the number of rungs, 2 (of 3, 9 questions): the final rung scores in exact mode\n`,
    ]);
    expect(fs.existsSync(db)).toBe(false);
    r = runCli([
      'sweep',
      sweepFile('q.json', { fast_rungs: 1 }),
      '--db',
      'postgres://lab@127.0.0.1:1/x',
      '--enqueue',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error: .*q\.json: strategy\.successive_halving\.fast_rungs: not supported with --enqueue \(workers score in exact mode\); run it with plain sweep\n$/,
    );
  });

  it('int8 for the first rung, exact for the last; the frontier from exact results; kill -9 resumes', async () => {
    const f = sweepFile('fast.json', { fast_rungs: 1 });
    const db = path.join(dir, 'fast.sqlite');
    let r = runCli(['sweep', f, '--db', db]);
    expect(r.code).toBe(0);
    // One engine at a time: int8 for rung 0, then exact.
    expect(r.stderr).toMatch(/loaded .* on cpu \(int8\) in [^]*loaded .* on cpu \(exact\) in /);
    const out = results(db, '--predictions');
    expect(JSON.parse(out.runs[0]!.strategy)).toMatchObject({ fast_rungs: 1 });
    const left = out.candidates.filter((c) => c.result.round === 0);
    const finals = out.candidates.filter((c) => c.result.round === 1);
    expect(left.length).toBeGreaterThan(0);
    expect(finals.length).toBeGreaterThan(0);
    for (const c of left) expect(c.result).toMatchObject({ precision: 'int8', n: 3 });
    for (const c of finals) expect(c.result).toMatchObject({ precision: 'exact', n: 9 });
    expect(out.candidates.filter((c) => c.pareto).every((c) => c.result.precision === 'exact')).toBe(true);
    expect(out.candidates.some((c) => c.pareto)).toBe(true);

    // Stored under their precision: every candidate's 3 first-rung questions in int8, the finals' 9 in exact.
    const stored = rows(db);
    for (const c of out.candidates)
      expect(
        stored
          .filter((s) => s.spec_hash === c.id)
          .map((s) => [s.precision, s.n])
          .sort(),
      ).toEqual(
        c.result.round === 0
          ? [['int8', 3]]
          : [
              ['exact', 9],
              ['int8', 3],
            ],
      );

    // `results` shows the precision: a column in the table, a field in the CSV.
    r = runCli(['results', db]);
    expect(r.stdout).toMatch(/round\(s\), the first 1 in int8/);
    expect(r.stdout.split('\n')[1]).toMatch(/\bprecision\b/);
    const csv = runCli(['results', db, '--csv']).stdout.trim().split('\n');
    expect(csv[0]).toMatch(/,acc,precision,agreement,/);
    expect(csv.filter((l) => l.includes(',int8,'))).toHaveLength(left.length);

    // An exhaustive sweep of the same candidates finds nothing of its (exact) work in int8 results.
    const plain = sweepFile('plain.json', {});
    r = runCli(['sweep', plain, '--db', db]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/\(int8\)/);

    // kill -9 in the middle, then the same command: the results of the uninterrupted run.
    const killed = path.join(dir, 'killed.sqlite');
    const child = spawn(process.execPath, [cliPath, 'sweep', f, '--db', killed], { stdio: 'ignore' });
    const exited = new Promise((res) => child.on('exit', res));
    const count = () => {
      try {
        return rows(killed).reduce((n, s) => n + s.n, 0);
      } catch {
        return 0;
      }
    };
    const total = stored.reduce((n, s) => n + s.n, 0);
    // Past the fast rung if possible, so the resumed run starts with exact mode.
    const t0 = Date.now();
    while (count() < total / 2 && Date.now() - t0 < 600_000) await new Promise((res) => setTimeout(res, 50));
    child.kill('SIGKILL');
    await exited;
    const partial = count();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(total);
    r = runCli(['sweep', f, '--db', killed]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/resuming run 1 \(running\)/);
    const a = results(db, '--predictions', '--run', '1').candidates;
    const b = results(killed, '--predictions').candidates;
    expect(b.map((c) => [c.id, c.result.precision, c.result.n, c.pareto])).toEqual(
      a.map((c) => [c.id, c.result.precision, c.result.n, c.pareto]),
    );
    expect(b).toEqual(a);
  });
});

// `sweep` and `results` end to end through the CLI on a random 10-layer checkpoint and the repo's mini-MMLU:
// bad sweep files and databases (or one another sweep is writing) get one line and exit 2; a sweep is stored,
// re-running it does no work, a `kill -9` in the middle loses at most a batch, Ctrl-C stops after the batch
// in flight, and the resumed run gives identical results.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { type CliResult, cliPath, repoRoot, runCli as run } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';
import { demoConfig, randomCheckpoint } from './helpers';

interface Json {
  runs: { id: number; status: string; layer_tokens_done: number; layer_tokens_unshared: number }[];
  candidates: {
    id: string;
    spec: { skip: number[]; ffn: number[] };
    params: { effective: number };
    result: { metric: number; acc: number; n: number; ci: number[] };
    pareto: boolean;
    predictions?: { subject: string; index: number; gold: string; pred: string; logprobs: number[] }[];
  }[];
}

const MMLU = path.join(repoRoot, 'examples/mini-mmlu');
/** Sweeps on a busy 2-core machine take minutes. */
const runCli = (args: string[]): CliResult => run(args, { timeoutMs: 600_000 });

describe('sweep CLI', () => {
  let dir: string;
  let model: string;
  const sweepFile = (name: string, body: Record<string, unknown>) => {
    const f = path.join(dir, name);
    fs.writeFileSync(
      f,
      JSON.stringify({ model, data: { mmlu: MMLU }, shots: 0, backend: 'cpu', ...body }, null, 1),
    );
    return f;
  };
  const results = (db: string, ...flags: string[]) => {
    const r = runCli(['results', db, '--json', ...flags]);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as Json;
  };

  beforeAll(async () => {
    dir = tmpDir();
    model = await randomCheckpoint(
      dir,
      'm10',
      demoConfig({ layers: 10, width: 64, kvShared: 4 }),
      3,
      4_000_000,
    );
  });

  it('bad sweep files and databases: one line naming the key or file, exit 2, nothing touched', () => {
    const bad = sweepFile('bad.json', { candidates: [{ ffn: 32 }, { ffn: '32x3' }] });
    let r = runCli(['sweep', bad, '--db', path.join(dir, 'x.sqlite')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: .*bad\.json: candidates\[1\]\.ffn: 3 widths given; expected 1 or 10/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'x.sqlite'))).toBe(false);

    const ok = sweepFile('ok.json', {
      candidates: [{ ffn: 32 }],
      data: { mmlu: MMLU, limit_per_subject: 1 },
    });
    const text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, 'my notes\n');
    r = runCli(['sweep', ok, '--db', text]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: --db ${text}: not an SQLite database (refusing to touch it)\n`,
    ]);
    expect(fs.readFileSync(text, 'utf8')).toBe('my notes\n');

    const newer = path.join(dir, 'newer.sqlite');
    const db = new Database(newer);
    db.exec('CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (99);');
    db.close();
    r = runCli(['sweep', ok, '--db', newer]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/schema version 99 is newer than this tool's 2/);
    // A database another sweep is writing (its lock, held by a live process) is refused, nothing created.
    const busy = path.join(dir, 'busy.sqlite');
    fs.writeFileSync(path.join(dir, '.busy.sqlite.lock'), `${process.pid}\n`);
    r = runCli(['sweep', ok, '--db', busy]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(`^error: --db: ${busy} is being written by another run \\(process ${process.pid}\\)`),
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(busy)).toBe(false);
    // Nor a database inside the checkpoint (or the data) it reads.
    const inside = path.join(model, 'r.sqlite');
    r = runCli(['sweep', ok, '--db', inside]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: --db: ${inside} is inside the input model ${model}; choose another path\n`,
    ]);
    expect(fs.existsSync(inside)).toBe(false);
    r = runCli(['results', path.join(dir, 'none.sqlite')]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: ${path.join(dir, 'none.sqlite')}: no such results database\n`,
    ]);
  });

  it('out of memory (a wasm memory limit): one line, exit 1, the database unlocked; the same command resumes', () => {
    const f = sweepFile('oom.json', {
      backend: 'wasm',
      candidates: [{ ffn: 32 }],
      data: { mmlu: MMLU, limit_per_subject: 1 },
    });
    const db = path.join(dir, 'oom.sqlite');
    // 256 pages = 16 MiB of wasm memory: the parent's 33 MB embedding cannot be placed.
    const oom = spawnSync(process.execPath, ['--wasm-max-mem-pages=256', cliPath, 'sweep', f, '--db', db], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    expect(oom.status).toBe(1);
    expect(oom.stderr).toMatch(
      /^error: out of memory \(WebAssembly memory allocation failed: \d+ bytes for a tensor on wasm\)\n$/,
    );
    expect(fs.existsSync(path.join(dir, '.oom.sqlite.lock'))).toBe(false);
    const before = results(db);
    expect(before.runs[0]).toMatchObject({ id: 1, status: 'running' });
    expect(before.candidates.map((c) => c.result.n)).toEqual([0, 0]);
    const r = runCli(['sweep', f, '--db', db]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/resuming run 1 \(running\)/);
    const after = results(db);
    expect(after.runs[0]).toMatchObject({ id: 1, status: 'done' });
    expect(after.candidates.map((c) => c.result.n)).toEqual([3, 3]);
  }, 900_000);

  it('stores a sweep; re-running it does no work; a changed checkpoint under the same path is refused', () => {
    const f = sweepFile('blocks.json', {
      data: { mmlu: MMLU, limit_per_subject: 1 },
      metric: 'agreement',
      candidates: [
        { generate: 'blocks', widths: [32, 64] },
        { skip: [3], ffn: 48 },
      ],
    });
    const db = path.join(dir, 'blocks.sqlite');
    let r = runCli(['sweep', f, '--db', db]);
    expect(r.code).toBe(0);
    const out = results(db, '--predictions');
    expect(out.runs[0]).toMatchObject({ id: 1, status: 'done' });
    expect(out.runs[0]!.layer_tokens_done).toBeLessThan(out.runs[0]!.layer_tokens_unshared);
    // Parent + 3 block assignments (the all-64 one is the parent) + the skip spec.
    expect(out.candidates).toHaveLength(5);
    const parent = out.candidates[0]!;
    expect(parent.spec).toEqual({ skip: [], ffn: Array(10).fill(64) });
    expect(parent.result).toMatchObject({ metric: 1, n: 3 });
    expect(parent.pareto).toBe(true);
    const skip = out.candidates.find((c) => c.spec.skip.length === 1)!;
    expect(skip.spec).toEqual({ skip: [3], ffn: Array(9).fill(48) });
    for (const c of out.candidates) {
      expect(c.predictions).toHaveLength(3);
      expect(c.result.ci[0]).toBeLessThanOrEqual(c.result.metric);
      // Agreement: the share of questions where the candidate's answer is the parent's.
      const agree = c.predictions!.filter((p, i) => p.pred === parent.predictions![i]!.pred).length / 3;
      expect(c.result.metric).toBeCloseTo(agree, 12);
    }

    r = runCli(['sweep', f, '--db', db]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/0 new results \(nothing missing: the model was not loaded\)/);
    expect(results(db, '--predictions').candidates).toEqual(out.candidates);
    const csv = runCli(['results', db, '--csv']).stdout.trim().split('\n');
    expect(csv).toHaveLength(6);

    // report reads the database itself: the same run, every candidate in the page's table.
    const page = path.join(dir, 'report.html');
    r = runCli(['report', db, '--out', page]);
    expect(r.code).toBe(0);
    const html = fs.readFileSync(page, 'utf8');
    for (const c of out.candidates) expect(html).toContain(c.id);
    r = runCli(['report', db, '--run', '9', '--out', path.join(dir, 'none.html')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--run: no run 9/);

    // export-best: the frontier's best, written in one pass, byte for byte what `slice` writes for its spec.
    const best = path.join(dir, 'best');
    r = runCli(['export-best', db, '--top', '2', '--out', best]);
    expect(r.code).toBe(0);
    const frontier = out.candidates
      .filter((c) => c.pareto && c.spec.ffn.some((w) => w !== 64))
      .sort((a, b) => b.result.metric - a.result.metric || a.params.effective - b.params.effective);
    const dirs = fs.readdirSync(best).sort();
    expect(dirs).toEqual(frontier.slice(0, 2).map((c, i) => `0${i + 1}-${c.id}`));
    for (const [i, d] of dirs.entries()) {
      const c = frontier[i]!;
      const ref = path.join(dir, `slice-${i}`);
      const flags = c.spec.skip.length > 0 ? ['--skip', c.spec.skip.join(',')] : [];
      expect(runCli(['slice', model, '--out', ref, '--ffn', c.spec.ffn.join(','), ...flags]).code).toBe(0);
      const shards = fs.readdirSync(ref).filter((f) => f.endsWith('.safetensors') || f.endsWith('.json'));
      expect(shards.length).toBeGreaterThan(2);
      for (const f of shards)
        expect(fs.readFileSync(path.join(best, d, f)).equals(fs.readFileSync(path.join(ref, f)))).toBe(true);
      expect(fs.readFileSync(path.join(best, d, 'README.md'), 'utf8')).toMatch(
        /## Measured[\s\S]*agreement \| [\d.]+% \(95% CI/,
      );
    }
    r = runCli(['export-best', db, '--top', '2', '--out', best]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already exists; pass --force/);

    // Same path, different checkpoint: refused, database untouched.
    const cfg = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8'));
    const changed = path.join(dir, 'changed');
    fs.cpSync(model, changed, { recursive: true });
    const g = sweepFile('changed.json', {
      candidates: [{ ffn: 32 }],
      data: { mmlu: MMLU, limit_per_subject: 1 },
    });
    const spec = JSON.parse(fs.readFileSync(g, 'utf8'));
    fs.writeFileSync(g, JSON.stringify({ ...spec, model: changed }));
    expect(runCli(['sweep', g, '--db', db]).code).toBe(0);
    cfg.text_config.rms_norm_eps = 1e-5;
    fs.writeFileSync(path.join(changed, 'config.json'), JSON.stringify(cfg));
    const before = fs.statSync(db).mtimeMs;
    r = runCli(['sweep', g, '--db', db]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/changed: the checkpoint changed since this database scored it/);
    expect(fs.statSync(db).mtimeMs).toBe(before);
  }, 900_000);

  it('sensitivity: each layer alone narrowed and each skippable one skipped, the drop stored per layer; it seeds random', () => {
    const f = sweepFile('sens.json', {
      metric: 'agreement',
      data: { mmlu: MMLU, limit_per_subject: 1 },
      strategy: { sensitivity: { width: 16 } },
    });
    const db = path.join(dir, 'sens.sqlite');
    expect(runCli(['sweep', f, '--db', db]).code).toBe(0);
    const out = JSON.parse(runCli(['results', db, '--json']).stdout) as Json & {
      sensitivity: { layer: number; kind: string; id: string; drop: number }[];
    };
    const narrow = out.sensitivity.filter((s) => s.kind === 'narrow');
    expect(narrow.map((s) => s.layer)).toEqual([...Array(10).keys()]);
    // Producers read by consumers (layers 4 and 5 here) cannot be skipped alone.
    const skipped = out.sensitivity.filter((s) => s.kind === 'skip').map((s) => s.layer);
    expect(skipped).not.toContain(4);
    expect(skipped).not.toContain(5);
    expect(skipped.length).toBeGreaterThan(4);
    for (const s of out.sensitivity) {
      const c = out.candidates.find((x) => x.id === s.id)!;
      expect(s.drop).toBeCloseTo(1 - c.result.metric, 12);
      if (s.kind === 'narrow') expect(c.spec.ffn[s.layer]).toBe(16);
      else expect(c.spec.skip).toEqual([s.layer]);
    }

    // The scan seeds a random search: of the two one-block narrowings (and both blocks), `random: 1` takes
    // the one whose layers' measured drops sum lowest, not a uniform draw.
    const seeded = sweepFile('seeded.json', {
      metric: 'agreement',
      data: { mmlu: MMLU, limit_per_subject: 1 },
      prior: 'sensitivity',
      strategy: { random: 1 },
      candidates: [{ generate: 'blocks', widths: [16, 64] }],
    });
    let r = runCli(['sweep', seeded, '--db', path.join(dir, 'noscan.sqlite')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error: .*seeded\.json: prior: the database holds no finished sensitivity scan/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    r = runCli(['sweep', seeded, '--db', db]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/prior: the sensitivity scan of run 1/);
    const run2 = results(db);
    const scored = run2.candidates.filter((c) => c.result.n > 0 && c.spec.ffn.some((w) => w !== 64));
    expect(scored).toHaveLength(1);
    const narrowSum = (layers: number[]) =>
      narrow.filter((s) => layers.includes(s.layer)).reduce((sum, s) => sum + s.drop, 0);
    const first = narrowSum([0, 1, 2, 3, 4]);
    const second = narrowSum([5, 6, 7, 8, 9]);
    const expected = first < second ? [16, 64] : [64, 16];
    if (first !== second) expect([scored[0]!.spec.ffn[0], scored[0]!.spec.ffn[9]]).toEqual(expected);
  }, 900_000);

  it('kill -9, then resumed and stopped by Ctrl-C, then resumed: identical results to an uninterrupted run', async () => {
    const f = sweepFile('kill.json', {
      batch_size: 1,
      data: { mmlu: MMLU, limit_per_subject: 3 },
      candidates: [{ generate: 'blocks', widths: [32, 64] }],
      strategy: { successive_halving: { start: 3, eta: 3, buckets: 2 } },
    });
    const whole = path.join(dir, 'whole.sqlite');
    expect(runCli(['sweep', f, '--db', whole]).code).toBe(0);

    const killed = path.join(dir, 'killed.sqlite');
    const child = spawn(process.execPath, [cliPath, 'sweep', f, '--db', killed], { stdio: 'ignore' });
    const count = () => {
      if (!fs.existsSync(killed)) return 0;
      try {
        const db = new Database(killed, { readonly: true });
        try {
          return (db.prepare('SELECT count(*) AS n FROM results').get() as { n: number }).n;
        } finally {
          db.close();
        }
      } catch {
        return 0;
      }
    };
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    let n = 0;
    for (let i = 0; i < 12_000 && n === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      n = count();
    }
    child.kill('SIGKILL');
    expect(await exited).toBeNull();
    const partial = count();
    expect(partial).toBeGreaterThan(0);
    const total = results(whole).candidates.reduce((s, c) => s + c.result.n, 0);
    expect(partial).toBeLessThan(total);

    // Resumed, then Ctrl-C: the batch in flight is finished and stored, the database closed cleanly, the
    // lock gone, and the line says how many results were saved.
    const lock = path.join(dir, '.killed.sqlite.lock');
    expect(fs.existsSync(lock)).toBe(true); // left by the killed run: stale, its process is gone
    const resumed = spawn(process.execPath, [cliPath, 'sweep', f, '--db', killed], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    resumed.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const resumedExit = new Promise<number | null>((res) => resumed.on('exit', (code) => res(code)));
    let m = partial;
    for (let i = 0; i < 12_000 && m === partial; i++) {
      await new Promise((res) => setTimeout(res, 50));
      m = count();
    }
    expect(fs.readFileSync(lock, 'utf8').trim()).toBe(String(resumed.pid));
    resumed.kill('SIGINT');
    expect(await resumedExit).toBe(130);
    expect(stderr).toMatch(
      /removed the stale lock .*killed\.sqlite\.lock of process \d+ \(no longer running\)/,
    );
    expect(stderr).toMatch(/resuming run 1 \(running\)/);
    expect(stderr).toMatch(/stopping after the batch in flight/);
    const saved =
      /\ninterrupted: (\d+) new results saved in .*killed\.sqlite; run the same command to resume\n$/.exec(
        stderr,
      );
    expect(saved).not.toBeNull();
    const afterInt = count();
    expect(afterInt - partial).toBe(Number(saved![1]));
    expect(afterInt).toBeLessThan(total);
    expect(fs.existsSync(lock)).toBe(false);
    const check = new Database(killed, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();

    const r = runCli(['sweep', f, '--db', killed]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/resuming run 1 \(running\)/);
    const a = results(whole, '--predictions').candidates;
    const b = results(killed, '--predictions').candidates;
    expect(b).toEqual(a);
  }, 900_000);
});

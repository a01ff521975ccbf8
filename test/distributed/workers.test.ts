// Distributed sweeps against a real PostgreSQL server (started here, on a loopback port, in a temporary
// folder): the store has the SQLite store's schema; bad URLs and refusals are one line and exit 2; several
// worker processes on the cpu backend, one SIGKILLed mid-job and the server restarted once, end with results
// identical to a single-process SQLite run of the same sweep.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { type CliResult, cliPath, repoRoot, runCli as run } from '../helpers/cli';
import { type PgServer, startPostgres } from '../helpers/postgres';
import { tmpDir } from '../helpers/tmp';
import { demoConfig, randomCheckpoint } from '../sweep/helpers';
import { PG_SCHEMA_VERSION, PostgresSweepStore, SqliteSweepStore } from '../../src/sweep';

const MMLU = path.join(repoRoot, 'examples/mini-mmlu');
const runCli = (args: string[]): CliResult => run(args, { timeoutMs: 300_000 });

interface Json {
  candidates: { id: string; result: { n: number }; predictions?: unknown[] }[];
  distributed?: {
    rungs: { round: number; jobs: number; jobs_done: number; completed_at: string | null }[];
    workers: { name: string; status: string; jobs: number; results: number }[];
  };
}

interface Worker {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  log(): string;
}

function startWorker(db: string, name: string): Worker {
  const child = spawn(
    process.execPath,
    [cliPath, 'worker', '--db', db, '--name', name, '--poll', '0.3', '--maintenance', '1'],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, exited, log: () => err };
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, values)).rows;
  } finally {
    await c.end();
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | null>, ms = 120_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('distributed sweeps on PostgreSQL', () => {
  let server: PgServer;
  let dir: string;
  let model: string;
  let sweep: string;

  beforeAll(async () => {
    server = await startPostgres();
    dir = tmpDir();
    model = await randomCheckpoint(dir, 'm10', demoConfig({ layers: 10, width: 64, kvShared: 4 }), 3);
    sweep = path.join(dir, 'halving.json');
    fs.writeFileSync(
      sweep,
      JSON.stringify({
        model,
        data: { mmlu: MMLU, limit_per_subject: 2 },
        shots: 0,
        backend: 'cpu',
        batch_size: 1,
        candidates: [{ generate: 'blocks', widths: [32, 64] }],
        strategy: { successive_halving: { start: 2, eta: 3, buckets: 2 } },
      }),
    );
  });
  afterAll(() => server?.stop());

  it('the PostgreSQL store has the tables, columns and keys of the SQLite store', async () => {
    const url = await server.createDatabase('schema');
    const pgStore = await PostgresSweepStore.open(url);
    await pgStore.end();
    const file = path.join(dir, 'schema.sqlite');
    SqliteSweepStore.open(file).close();
    const lite = new Database(file, { readonly: true });
    const sqliteTables = (
      lite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
        name: string;
      }[]
    ).map((t) => t.name);
    const sqlite = sqliteTables.map((t) => ({
      table: t,
      columns: (lite.prepare(`PRAGMA table_info(${t})`).all() as { name: string; pk: number }[]).map(
        (c) => `${c.name}${c.pk ? ` pk${c.pk}` : ''}`,
      ),
    }));
    lite.close();
    const cols = await query<{ table_name: string; column_name: string; pk: number | null }>(
      url,
      `SELECT c.table_name, c.column_name, k.ordinal_position AS pk
       FROM information_schema.columns c
       LEFT JOIN information_schema.table_constraints t
         ON t.table_name = c.table_name AND t.constraint_type = 'PRIMARY KEY' AND t.table_schema = c.table_schema
       LEFT JOIN information_schema.key_column_usage k
         ON k.constraint_name = t.constraint_name AND k.column_name = c.column_name AND k.table_schema = c.table_schema
       WHERE c.table_schema = 'public' ORDER BY c.table_name, c.ordinal_position`,
    );
    const postgres = sqliteTables.map((t) => ({
      table: t,
      columns: cols
        .filter((c) => c.table_name === t)
        .map((c) => `${c.column_name}${c.pk ? ` pk${c.pk}` : ''}`),
    }));
    expect(postgres).toEqual(sqlite);
    const versions = await query<{ version: number }>(
      url,
      'SELECT version::int AS version FROM schema_version ORDER BY version',
    );
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3]);
  });

  it('bad URLs, other databases and a wrong checkpoint: one line naming the flag, exit 2', async () => {
    let r = runCli(['sweep', sweep, '--db', 'postgres://lab@127.0.0.1:99999/x']);
    expect([r.code, r.stderr]).toEqual([
      2,
      'error: --db postgres://lab@127.0.0.1:99999/x: not a valid PostgreSQL URL (expected postgres://user@host:port/database)\n',
    ]);
    r = runCli(['sweep', sweep, '--db', 'postgres://lab@127.0.0.1:0/x']);
    expect([r.code, r.stderr]).toEqual([
      2,
      'error: --db postgres://lab@127.0.0.1:0/x: port 0 is not a TCP port\n',
    ]);
    r = runCli(['results', 'postgres://lab@127.0.0.1/']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: postgres:\/\/lab@127\.0\.0\.1\/: the PostgreSQL URL names no database/);
    // A port nobody listens on: the server that was there is gone.
    r = runCli(['worker', '--db', `postgres://lab:secret@127.0.0.1:${server.port + 1}/x`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error: --db postgres:\/\/lab:\*\*\*@127\.0\.0\.1:\d+\/x: cannot connect to PostgreSQL \(.*ECONNREFUSED/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    r = runCli(['sweep', sweep, '--db', path.join(dir, 'x.sqlite'), '--enqueue']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --db .*x\.sqlite: distributed sweeps need a PostgreSQL database/);
    expect(fs.existsSync(path.join(dir, 'x.sqlite'))).toBe(false);

    const other = await server.createDatabase('other');
    await query(other, 'CREATE TABLE notes (body text)');
    r = runCli(['sweep', sweep, '--db', other]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `error: --db ${other}: a PostgreSQL database of something else (no schema_version table)\n`,
    ]);
    const newer = await server.createDatabase('newer');
    await query(
      newer,
      'CREATE TABLE schema_version (version integer); INSERT INTO schema_version VALUES (99)',
    );
    r = runCli(['results', newer]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `schema version 99 is newer than this tool's ${PG_SCHEMA_VERSION}; upgrade matformer-lab`,
    );

    // A worker on an empty database has nothing to do; one with another checkpoint refuses the run's jobs.
    const db = await server.createDatabase('refuse');
    r = runCli(['worker', '--db', db]);
    expect([r.code, r.stderr]).toEqual([0, `${db}: no unfinished distributed run; nothing to do\n`]);
    expect(runCli(['sweep', sweep, '--db', db, '--enqueue']).code).toBe(0);
    // The fingerprint covers config.json and the shard headers: the same checkpoint with another epsilon.
    const impostor = path.join(dir, 'impostor');
    fs.cpSync(model, impostor, { recursive: true });
    const cfg = JSON.parse(fs.readFileSync(path.join(impostor, 'config.json'), 'utf8'));
    cfg.text_config.rms_norm_eps = 1e-5;
    fs.writeFileSync(path.join(impostor, 'config.json'), JSON.stringify(cfg));
    r = runCli(['worker', '--db', db, '--model', impostor]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^error: --model ${impostor}: checkpoint fingerprint \\w+ differs from the sweep's \\w+ \\(run 1 scored ${model}\\); refusing its jobs\\n$`,
      ),
    );
    const claimed = await query<{ n: number }>(
      db,
      'SELECT count(*)::int AS n FROM dist_jobs WHERE claims > 0',
    );
    expect(claimed[0]!.n).toBe(0);
  });

  it('workers, one SIGKILLed mid-job, the server restarted: the results of a single SQLite run', async () => {
    const lite = path.join(dir, 'single.sqlite');
    expect(runCli(['sweep', sweep, '--db', lite]).code).toBe(0);
    const expected = JSON.parse(runCli(['results', lite, '--json', '--predictions']).stdout) as Json;

    const db = await server.createDatabase('dist');
    let r = runCli(['sweep', sweep, '--db', db, '--enqueue', '--job-questions', '1', '--lease', '6']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^run 1: round 0: 2 jobs \(8 candidate × question pairs\) on the queue/m);
    // Enqueuing again changes nothing.
    r = runCli(['sweep', sweep, '--db', db, '--enqueue']);
    expect(r.stderr).toMatch(/run 1: enqueued before; round 0: 2 jobs/);

    // The victim claims a job and is killed while scoring it: the job is lost only until its lease expires.
    const victim = startWorker(db, 'victim');
    const inFlight = await waitFor('the victim to claim a job', async () => {
      const rows = await query<{ round: number; job: number }>(
        db,
        "SELECT round, job FROM dist_jobs WHERE worker = 'victim' AND finished_at IS NULL AND claims > 0",
      );
      return rows[0] ?? null;
    });
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBeNull();
    const [lost] = await query<{ finished_at: string | null }>(
      db,
      'SELECT finished_at FROM dist_jobs WHERE round = $1 AND job = $2',
      [inFlight.round, inFlight.job],
    );
    expect(lost!.finished_at).toBeNull();

    const workers = ['w1', 'w2'].map((n) => startWorker(db, n));
    // Once the survivors have completed a job, the server goes down and comes back.
    await waitFor('a completed job', async () => {
      const rows = await query(
        db,
        "SELECT 1 FROM dist_jobs WHERE worker IN ('w1', 'w2') AND finished_at IS NOT NULL",
      );
      return rows.length > 0 ? true : null;
    });
    server.restart();
    const codes = await Promise.all(workers.map((w) => w.exited));
    const logs = workers.map((w) => w.log());
    expect({ codes, logs }).toEqual({ codes: [0, 0], logs: expect.any(Array) });
    expect(logs.join('\n')).toMatch(/database connection lost[\s\S]*reconnected to the database/);
    for (const log of logs) expect(log).toMatch(/worker: run 1 finished/);

    const out = JSON.parse(runCli(['results', db, '--json', '--predictions']).stdout) as Json;
    expect(out.candidates).toEqual(expected.candidates);
    const [job] = await query<{ claims: number; worker: string; finished_at: string | null }>(
      db,
      'SELECT claims, worker, finished_at FROM dist_jobs WHERE round = $1 AND job = $2',
      [inFlight.round, inFlight.job],
    );
    expect(job!.claims).toBeGreaterThanOrEqual(2);
    expect(job!.finished_at).not.toBeNull();
    // Every (candidate, question) once: the unique keys hold whoever scored it.
    const total = expected.candidates.reduce((n, c) => n + (c.predictions?.length ?? 0), 0);
    const [count] = await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM results');
    expect(count!.n).toBe(total);
    // Progress per rung and per worker.
    expect(
      out.distributed!.rungs.map((g) => [g.round, g.jobs_done === g.jobs, g.completed_at !== null]),
    ).toEqual([
      [0, true, true],
      [1, true, true],
    ]);
    const byName = new Map(out.distributed!.workers.map((w) => [w.name, w]));
    expect(byName.get('w1')!.status).toBe('done');
    expect(byName.get('victim')!.status).toBe('working');
    expect(out.distributed!.workers.reduce((n, w) => n + w.results, 0)).toBe(total);
    const text = runCli(['results', db]).stdout;
    expect(text).toMatch(/^ {2}round 1: (\d+)\/\1 jobs, (\d+)\/\2 pairs, complete$/m);
    expect(text).toMatch(/^ {2}worker w2 \(cpu, done, last seen .*\): \d+ jobs, \d+ results/m);
    // report and export-best read the PostgreSQL database too.
    expect(runCli(['report', db, '--out', path.join(dir, 'dist.html')]).code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'dist.html'), 'utf8')).toContain(expected.candidates[1]!.id);
    const best = path.join(dir, 'best');
    r = runCli(['export-best', db, '--top', '1', '--out', best]);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(best, fs.readdirSync(best)[0]!, 'README.md'), 'utf8')).toContain(
      `results ${db} --run 1 --json`,
    );
  }, 300_000);
});

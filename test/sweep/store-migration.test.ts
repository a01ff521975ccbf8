// Results are keyed by precision (schema 2 in SQLite, 3 in PostgreSQL): a database of the schema before is
// migrated by its first writer (every earlier result was exact), read as it is by a SQLite reader, refused by a
// PostgreSQL reader until migrated; an int8 result never answers for an exact one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  PostgresSweepStore,
  type ResultScope,
  type RunInfo,
  SCHEMA,
  SCHEMA_VERSION,
  SqliteSweepStore,
  type SweepStore,
} from '../../src/sweep';
import type { QuestionPrediction } from '../../src/eval';
import { type PgServer, startPostgres } from '../helpers/postgres';
import { tmpDir } from '../helpers/tmp';

const exact: ResultScope = { fingerprint: 'fp', shots: 0, split: 'test', precision: 'exact' };
const int8: ResultScope = { ...exact, precision: 'int8' };
const row = (lp: number): QuestionPrediction & { spec_hash: string } => ({
  spec_hash: 'h1',
  subject: 'virology',
  index: 3,
  gold: 'B',
  pred: 'A',
  logprobs: [lp, -2, -3, -4],
});
const run: RunInfo = {
  sweep_hash: 's',
  sweep_file: '/s.yaml',
  sweep_json: '{}',
  tool_version: 't',
  model_path: '/m',
  model_fingerprint: 'fp',
  backend: 'cpu',
  metric: 'accuracy',
  strategy: '{"kind":"exhaustive"}',
  shots: 0,
  split: 'test',
  protocol: 'mmlu-harness-1',
};
const stats = { seconds: 1, layerTokensDone: 1, layerTokensUnshared: 1 };

/** What the version-1 tool left: its tables, one run and one (exact) result. */
function writeVersion1(file: string): void {
  const db = new Database(file);
  db.exec(SCHEMA);
  db.prepare('INSERT INTO schema_version (version) VALUES (1)').run();
  db.prepare(
    `INSERT INTO results (model_fingerprint, spec_hash, split, subject, idx, shots, protocol, gold, pred,
       lp_a, lp_b, lp_c, lp_d) VALUES ('fp', 'h1', 'test', 'virology', 3, 0, 'mmlu-harness-1', 'B', 'A', -0.5, -2, -3, -4)`,
  ).run();
  db.close();
}

/** The int8 result of the question the exact one answers: stored beside it, each read only in its scope. */
async function expectKeptApart(store: SweepStore): Promise<void> {
  const id = await store.createRun(run);
  expect((await store.scored(int8, ['h1'])).get('h1')).toEqual(new Set());
  await store.writeBatch(id, int8, [row(-0.25)], stats);
  expect((await store.predictions(int8, 'h1')).map((p) => p.logprobs[0])).toEqual([-0.25]);
  expect((await store.predictions(exact, 'h1')).map((p) => p.logprobs[0])).toEqual([-0.5]);
  // Writing the exact one again keeps the first (unique keys), still apart from int8.
  await store.writeBatch(id, exact, [row(-9)], stats);
  expect((await store.predictions(exact, 'h1')).map((p) => p.logprobs[0])).toEqual([-0.5]);
  expect((await store.scored(exact, ['h1'])).get('h1')).toEqual(new Set(['virology#3']));
}

describe('SQLite store migration', () => {
  it('a new database is at the latest version, results keyed by precision', () => {
    const file = path.join(tmpDir(), 'new.sqlite');
    SqliteSweepStore.open(file).close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT version FROM schema_version ORDER BY version').all()).toEqual(
      [1, 2].map((version) => ({ version })),
    );
    expect(SCHEMA_VERSION).toBe(2);
    const cols = db.prepare('PRAGMA table_info(results)').all() as { name: string; pk: number }[];
    expect(cols.find((c) => c.name === 'precision')?.pk).toBe(8);
    db.close();
  });

  it('a reader sees a version-1 database as exact results without changing a byte', async () => {
    const file = path.join(tmpDir(), 'v1.sqlite');
    writeVersion1(file);
    const before = fs.readFileSync(file);
    const store = SqliteSweepStore.open(file, { readonly: true });
    expect((await store.predictions(exact, 'h1')).map((p) => p.logprobs)).toEqual([[-0.5, -2, -3, -4]]);
    expect(await store.predictions(int8, 'h1')).toEqual([]);
    store.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('the first writer migrates it: old results exact, int8 results apart', async () => {
    const file = path.join(tmpDir(), 'v1w.sqlite');
    writeVersion1(file);
    const store = SqliteSweepStore.open(file);
    await expectKeptApart(store);
    store.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT max(version) AS v FROM schema_version').get()).toEqual({ v: 2 });
    expect(db.prepare('SELECT precision, lp_a FROM results ORDER BY precision').all()).toEqual([
      { precision: 'exact', lp_a: -0.5 },
      { precision: 'int8', lp_a: -0.25 },
    ]);
    db.close();
  });
});

describe('PostgreSQL store migration', () => {
  let server: PgServer;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(() => server?.stop());

  it('migrates a version-2 database (the tool before precision) to 3; a reader refuses it until then', async () => {
    expect(PG_SCHEMA_VERSION).toBe(3);
    const url = await server.createDatabase('v2');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      for (const m of PG_MIGRATIONS.filter((x) => x.version <= 2)) {
        await c.query(m.sql);
        await c.query('INSERT INTO schema_version (version) VALUES ($1)', [m.version]);
      }
      await c.query(
        `INSERT INTO results (model_fingerprint, spec_hash, split, subject, idx, shots, protocol, gold, pred,
           lp_a, lp_b, lp_c, lp_d) VALUES ('fp', 'h1', 'test', 'virology', 3, 0, 'mmlu-harness-1', 'B', 'A', -0.5, -2, -3, -4)`,
      );
    } finally {
      await c.end();
    }
    await expect(PostgresSweepStore.open(url, { readonly: true, flag: '--db' })).rejects.toThrow(
      /^--db .*: schema version 2 predates this tool's 3; run a sweep or worker of this version on it once to migrate it$/,
    );
    const store = await PostgresSweepStore.open(url);
    try {
      expect(store.version).toBe(3);
      await expectKeptApart(store);
    } finally {
      await store.end();
    }
    const reader = await PostgresSweepStore.open(url, { readonly: true });
    try {
      expect((await reader.predictions(exact, 'h1')).map((p) => p.logprobs[0])).toEqual([-0.5]);
    } finally {
      await reader.end();
    }
  }, 60_000);
});

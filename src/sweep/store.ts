// Where sweeps keep everything: runs, candidates, rounds and every scored question. `SweepStore` is the
// interface the sweep uses; SQLite (better-sqlite3, WAL) is one implementation. Per-question results are keyed
// by (model fingerprint, spec hash, split, subject, index, shots, protocol, precision), so a question any sweep
// in the database scored is never scored again, and an int8 (fast mode) score is never taken for an exact one.
// Each batch of results is one transaction: a kill loses at most it. The schema is versioned: version 1 is
// SCHEMA, later versions are MIGRATIONS applied in order (PostgreSQL applies the same ones, translated).
import * as fs from 'node:fs';
import Database from 'better-sqlite3';
import { type InputSpec, OutputGuard, UserInputError } from '../formats';
import type { QuestionPrediction, SubsetItem } from '../eval';
import type { Precision } from '../engine';
import type { Candidate } from './candidates';
import type { Round } from './strategy';

/** Bumped when the prompt or scoring protocol changes: old results then no longer count. */
export const PROTOCOL_VERSION = 'mmlu-harness-1';

export class StoreError extends UserInputError {
  override name = 'StoreError';
}

export interface RunInfo {
  readonly sweep_hash: string;
  readonly sweep_file: string;
  readonly sweep_json: string;
  readonly tool_version: string;
  readonly model_path: string;
  readonly model_fingerprint: string;
  readonly backend: string;
  readonly metric: string;
  readonly strategy: string;
  readonly shots: number;
  readonly split: string;
  readonly protocol: string;
}

export interface RunRecord extends RunInfo {
  readonly id: number;
  readonly status: 'running' | 'done';
  readonly started_at: string;
  readonly finished_at: string | null;
  /** Layer-token evaluations done (shared) and needed by evaluating each candidate alone. */
  readonly layer_tokens_done: number;
  readonly layer_tokens_unshared: number;
  /** Seconds spent scoring, over all sessions of the run. */
  readonly seconds: number;
}

export interface StoredCandidate {
  readonly spec_hash: string;
  readonly skip: number[];
  readonly ffn: number[];
  readonly effective: number;
  readonly text_total: number;
  readonly layers: number;
  readonly origin: string;
  readonly preset: string | null;
  /** Last round the candidate took part in. */
  readonly round_reached: number;
}

export interface StoredRound {
  readonly round: number;
  readonly questions: SubsetItem[];
  readonly candidates: string[];
}

export interface SensitivityRow {
  readonly layer: number;
  readonly kind: 'narrow' | 'skip';
  readonly spec_hash: string;
  /** Metric of the parent minus the candidate's. */
  readonly drop: number;
}

/** What identifies a result besides the candidate and the question. */
export interface ResultScope {
  readonly fingerprint: string;
  readonly shots: number;
  readonly split: string;
  /** The engine's numerics the results were scored in. */
  readonly precision: Precision;
}

export interface BatchStats {
  readonly seconds: number;
  readonly layerTokensDone: number;
  readonly layerTokensUnshared: number;
}

export interface SweepStore {
  /** Records the checkpoint at `path`; refuses one whose fingerprint changed since. */
  checkModel(path: string, fingerprint: string): Promise<void>;
  findRun(sweepHash: string, fingerprint: string): Promise<RunRecord | null>;
  createRun(info: RunInfo): Promise<number>;
  /** Deletes a run and the results of its candidates under its scope (`--fresh`). */
  deleteRun(id: number): Promise<void>;
  putCandidates(runId: number, candidates: readonly Candidate[]): Promise<void>;
  putRound(runId: number, round: Round): Promise<void>;
  /** Keys `subject#index` already scored, per candidate hash. */
  scored(scope: ResultScope, hashes: readonly string[]): Promise<Map<string, Set<string>>>;
  predictions(scope: ResultScope, hash: string): Promise<QuestionPrediction[]>;
  /** One transaction: the batch's results of every candidate and the run's counters. */
  writeBatch(
    runId: number,
    scope: ResultScope,
    rows: readonly (QuestionPrediction & { spec_hash: string })[],
    stats: BatchStats,
  ): Promise<void>;
  putSensitivity(runId: number, rows: readonly SensitivityRow[]): Promise<void>;
  finishRun(runId: number): Promise<void>;
  runs(): Promise<RunRecord[]>;
  runCandidates(runId: number): Promise<StoredCandidate[]>;
  rounds(runId: number): Promise<StoredRound[]>;
  sensitivity(runId: number): Promise<SensitivityRow[]>;
  close(): void;
}

const SQLITE_MAGIC = 'SQLite format 3\0';

/** The tables of schema version 1 (SQLite's dialect; PostgreSQL's store translates it, pg-store.ts). */
export const SCHEMA = `
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE models (path TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, first_seen TEXT NOT NULL);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  sweep_hash TEXT NOT NULL, sweep_file TEXT NOT NULL, sweep_json TEXT NOT NULL, tool_version TEXT NOT NULL,
  model_path TEXT NOT NULL, model_fingerprint TEXT NOT NULL, backend TEXT NOT NULL, metric TEXT NOT NULL,
  strategy TEXT NOT NULL, shots INTEGER NOT NULL, split TEXT NOT NULL, protocol TEXT NOT NULL,
  status TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
  layer_tokens_done INTEGER NOT NULL DEFAULT 0, layer_tokens_unshared INTEGER NOT NULL DEFAULT 0,
  seconds REAL NOT NULL DEFAULT 0
);
CREATE TABLE candidates (
  spec_hash TEXT PRIMARY KEY, skip TEXT NOT NULL, ffn TEXT NOT NULL,
  effective INTEGER NOT NULL, text_total INTEGER NOT NULL, layers INTEGER NOT NULL
);
CREATE TABLE run_candidates (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, spec_hash TEXT NOT NULL REFERENCES candidates,
  origin TEXT NOT NULL, preset TEXT, round_reached INTEGER NOT NULL DEFAULT 0, ord INTEGER NOT NULL,
  PRIMARY KEY (run_id, spec_hash)
);
CREATE TABLE rounds (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, round INTEGER NOT NULL,
  questions TEXT NOT NULL, candidates TEXT NOT NULL, PRIMARY KEY (run_id, round)
);
CREATE TABLE results (
  model_fingerprint TEXT NOT NULL, spec_hash TEXT NOT NULL, split TEXT NOT NULL, subject TEXT NOT NULL,
  idx INTEGER NOT NULL, shots INTEGER NOT NULL, protocol TEXT NOT NULL,
  gold TEXT NOT NULL, pred TEXT NOT NULL, lp_a REAL NOT NULL, lp_b REAL NOT NULL, lp_c REAL NOT NULL, lp_d REAL NOT NULL,
  PRIMARY KEY (model_fingerprint, spec_hash, split, subject, idx, shots, protocol)
) WITHOUT ROWID;
CREATE TABLE timings (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, at TEXT NOT NULL, questions INTEGER NOT NULL,
  seconds REAL NOT NULL, layer_tokens_done INTEGER NOT NULL, layer_tokens_unshared INTEGER NOT NULL
);
CREATE TABLE sensitivity (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, layer INTEGER NOT NULL, kind TEXT NOT NULL,
  spec_hash TEXT NOT NULL, drop_ REAL NOT NULL, PRIMARY KEY (run_id, layer, kind)
);
`;

export interface Migration {
  readonly version: number;
  readonly sql: string;
}

/**
 * The schema after version 1, in SQLite's dialect (PostgreSQL's store applies each translated). Version 2:
 * results keyed by precision too ('exact' or 'int8'); every earlier result was scored in exact mode.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 2,
    sql: `
CREATE TABLE results_v2 (
  model_fingerprint TEXT NOT NULL, spec_hash TEXT NOT NULL, split TEXT NOT NULL, subject TEXT NOT NULL,
  idx INTEGER NOT NULL, shots INTEGER NOT NULL, protocol TEXT NOT NULL, precision TEXT NOT NULL,
  gold TEXT NOT NULL, pred TEXT NOT NULL, lp_a REAL NOT NULL, lp_b REAL NOT NULL, lp_c REAL NOT NULL, lp_d REAL NOT NULL,
  PRIMARY KEY (model_fingerprint, spec_hash, split, subject, idx, shots, protocol, precision)
) WITHOUT ROWID;
INSERT INTO results_v2 (model_fingerprint, spec_hash, split, subject, idx, shots, protocol, precision, gold, pred,
    lp_a, lp_b, lp_c, lp_d)
  SELECT model_fingerprint, spec_hash, split, subject, idx, shots, protocol, 'exact', gold, pred, lp_a, lp_b, lp_c, lp_d
  FROM results;
DROP TABLE results;
ALTER TABLE results_v2 RENAME TO results;
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 1;

const key = (subject: string, index: number) => `${subject}#${index}`;

/** Rows as both stores keep them (lists as JSON text), and their decoding. */
export type CandidateRow = Omit<StoredCandidate, 'skip' | 'ffn'> & { skip: string; ffn: string };
export interface RoundRow {
  readonly round: number;
  readonly questions: string;
  readonly candidates: string;
}
export type SensitivityDbRow = Omit<SensitivityRow, 'drop'> & { drop_: number };

export const decodeCandidate = (r: CandidateRow): StoredCandidate => ({
  ...r,
  skip: JSON.parse(r.skip) as number[],
  ffn: JSON.parse(r.ffn) as number[],
});

export const decodeRound = (r: RoundRow): StoredRound => ({
  round: r.round,
  questions: (JSON.parse(r.questions) as [string, number][]).map(([subject, index]) => ({ subject, index })),
  candidates: JSON.parse(r.candidates) as string[],
});

export interface ResultRow {
  readonly subject: string;
  readonly idx: number;
  readonly gold: QuestionPrediction['gold'];
  readonly pred: QuestionPrediction['pred'];
  readonly lp_a: number;
  readonly lp_b: number;
  readonly lp_c: number;
  readonly lp_d: number;
}

export const decodeResult = (r: ResultRow): QuestionPrediction => ({
  subject: r.subject,
  index: r.idx,
  gold: r.gold,
  pred: r.pred,
  logprobs: [r.lp_a, r.lp_b, r.lp_c, r.lp_d],
});

export const decodeSensitivity = ({ drop_, ...r }: SensitivityDbRow): SensitivityRow => ({
  ...r,
  drop: drop_,
});

/** Applies the migrations after `from` (inside the caller's transaction), recording each version. */
function migrate(db: Database.Database, from: number): void {
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(m.version);
  }
}

export class SqliteSweepStore implements SweepStore {
  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    /** A writer's lock beside the file: one writing process per database (readers take none). */
    private readonly lock: OutputGuard | null,
  ) {}

  /**
   * Opens (or creates) a results database. Refuses, without writing anything, a file that is not SQLite,
   * a SQLite file that is not ours, or a newer schema. A writer takes a lock beside the file, so a second
   * sweep on the same database refuses instead of interleaving its runs and counters with the first.
   * `readonly`: never creates or changes the file, takes no lock, and reads one snapshot (a sweep writing
   * meanwhile is seen as it was at the first read, never half of a batch or of a round).
   */
  static open(
    file: string,
    opts: {
      readonly?: boolean;
      flag?: string;
      onNotice?: (line: string) => void;
      /** Folders a writer's database must not be in (the checkpoint, the data). */
      inputs?: readonly InputSpec[];
    } = {},
  ): SqliteSweepStore {
    const label = opts.flag ? `${opts.flag} ${file}` : file;
    const exists = fs.existsSync(file);
    if (!exists && opts.readonly) throw new StoreError(`${label}: no such results database`);
    if (exists) {
      const st = fs.statSync(file);
      if (!st.isFile()) throw new StoreError(`${label}: not a file`);
      if (st.size > 0) {
        const head = Buffer.alloc(16);
        const fd = fs.openSync(file, 'r');
        try {
          fs.readSync(fd, head, 0, 16, 0);
        } finally {
          fs.closeSync(fd);
        }
        if (head.toString('latin1') !== SQLITE_MAGIC)
          throw new StoreError(`${label}: not an SQLite database (refusing to touch it)`);
      }
    }
    const lock = opts.readonly
      ? null
      : OutputGuard.lock(
          { flag: opts.flag ?? 'database', path: file },
          { inputs: opts.inputs, onNotice: opts.onNotice },
        );
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: Boolean(opts.readonly), fileMustExist: Boolean(opts.readonly) });
    } catch (e) {
      lock?.release();
      throw new StoreError(`${label}: cannot open (${(e as Error).message})`);
    }
    try {
      const tables = (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
      ).map((r) => r.name);
      if (tables.length === 0) {
        if (opts.readonly) throw new StoreError(`${label}: an empty database, not a sweep results database`);
        db.pragma('journal_mode = WAL');
        db.transaction(() => {
          db.exec(SCHEMA);
          db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(1);
          migrate(db, 1);
        })();
      } else {
        if (!tables.includes('schema_version'))
          throw new StoreError(`${label}: an SQLite database of something else (no schema_version table)`);
        const row = db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null };
        if (row.v === null || row.v > SCHEMA_VERSION)
          throw new StoreError(
            `${label}: schema version ${row.v} is newer than this tool's ${SCHEMA_VERSION}; upgrade matformer-lab`,
          );
        if (opts.readonly) {
          // Never written: an older schema is read through temporary views of what its rows mean now.
          if (row.v < 2)
            db.exec(`CREATE TEMP VIEW results AS SELECT *, 'exact' AS precision FROM main.results`);
        } else {
          db.pragma('journal_mode = WAL');
          db.transaction(() => migrate(db, row.v!))();
        }
      }
      db.pragma('foreign_keys = ON');
      db.pragma('synchronous = NORMAL');
      if (opts.readonly) db.exec('BEGIN'); // the snapshot starts at the first read and lasts until close
    } catch (e) {
      db.close();
      lock?.release();
      if (e instanceof StoreError) throw e;
      throw new StoreError(`${label}: not a usable SQLite database (${(e as Error).message})`);
    }
    return new SqliteSweepStore(db, file, lock);
  }

  async checkModel(path: string, fingerprint: string): Promise<void> {
    const row = this.db.prepare('SELECT fingerprint FROM models WHERE path = ?').get(path) as
      { fingerprint: string } | undefined;
    if (row && row.fingerprint !== fingerprint) {
      throw new StoreError(
        `${path}: the checkpoint changed since this database scored it (fingerprint ${row.fingerprint} → ${fingerprint}); use another --db`,
      );
    }
    if (!row)
      this.db
        .prepare('INSERT INTO models (path, fingerprint, first_seen) VALUES (?, ?, ?)')
        .run(path, fingerprint, new Date().toISOString());
  }

  async findRun(sweepHash: string, fingerprint: string): Promise<RunRecord | null> {
    const r = this.db
      .prepare('SELECT * FROM runs WHERE sweep_hash = ? AND model_fingerprint = ? ORDER BY id DESC LIMIT 1')
      .get(sweepHash, fingerprint) as RunRecord | undefined;
    return r ?? null;
  }

  async createRun(info: RunInfo): Promise<number> {
    const r = this.db
      .prepare(
        `INSERT INTO runs (sweep_hash, sweep_file, sweep_json, tool_version, model_path, model_fingerprint, backend,
           metric, strategy, shots, split, protocol, status, started_at)
         VALUES (@sweep_hash, @sweep_file, @sweep_json, @tool_version, @model_path, @model_fingerprint, @backend,
           @metric, @strategy, @shots, @split, @protocol, 'running', @started_at)`,
      )
      .run({ ...info, started_at: new Date().toISOString() });
    return Number(r.lastInsertRowid);
  }

  async deleteRun(id: number): Promise<void> {
    this.db.transaction(() => {
      const run = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRecord | undefined;
      if (!run) return;
      this.db
        .prepare(
          `DELETE FROM results WHERE model_fingerprint = ? AND shots = ? AND split = ? AND protocol = ?
             AND spec_hash IN (SELECT spec_hash FROM run_candidates WHERE run_id = ?)`,
        )
        .run(run.model_fingerprint, run.shots, run.split, run.protocol, id);
      this.db.prepare('DELETE FROM runs WHERE id = ?').run(id);
    })();
  }

  async putCandidates(runId: number, candidates: readonly Candidate[]): Promise<void> {
    const cand = this.db.prepare(
      'INSERT OR IGNORE INTO candidates (spec_hash, skip, ffn, effective, text_total, layers) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const link = this.db.prepare(
      'INSERT OR IGNORE INTO run_candidates (run_id, spec_hash, origin, preset, ord) VALUES (?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      candidates.forEach((c, i) => {
        cand.run(
          c.hash,
          JSON.stringify(c.spec.skip),
          JSON.stringify(c.spec.ffn),
          c.params.effective,
          c.params.textTotal,
          c.params.layers,
        );
        link.run(runId, c.hash, c.origin, c.preset?.name ?? null, i);
      });
    })();
  }

  async putRound(runId: number, round: Round): Promise<void> {
    const reach = this.db.prepare(
      'UPDATE run_candidates SET round_reached = max(round_reached, ?) WHERE run_id = ? AND spec_hash = ?',
    );
    this.db.transaction(() => {
      this.db
        .prepare('INSERT OR REPLACE INTO rounds (run_id, round, questions, candidates) VALUES (?, ?, ?, ?)')
        .run(
          runId,
          round.index,
          JSON.stringify(round.questions.map((q) => [q.subject, q.index])),
          JSON.stringify(round.candidates),
        );
      for (const h of round.candidates) reach.run(round.index, runId, h);
    })();
  }

  async scored(scope: ResultScope, hashes: readonly string[]): Promise<Map<string, Set<string>>> {
    const q = this.db.prepare(
      `SELECT subject, idx FROM results WHERE model_fingerprint = ? AND spec_hash = ? AND split = ? AND shots = ?
         AND protocol = ? AND precision = ?`,
    );
    const out = new Map<string, Set<string>>();
    for (const h of hashes) {
      const rows = q.all(
        scope.fingerprint,
        h,
        scope.split,
        scope.shots,
        PROTOCOL_VERSION,
        scope.precision,
      ) as {
        subject: string;
        idx: number;
      }[];
      out.set(h, new Set(rows.map((r) => key(r.subject, r.idx))));
    }
    return out;
  }

  async predictions(scope: ResultScope, hash: string): Promise<QuestionPrediction[]> {
    const rows = this.db
      .prepare(
        `SELECT subject, idx, gold, pred, lp_a, lp_b, lp_c, lp_d FROM results
         WHERE model_fingerprint = ? AND spec_hash = ? AND split = ? AND shots = ? AND protocol = ? AND precision = ?
         ORDER BY subject, idx`,
      )
      .all(
        scope.fingerprint,
        hash,
        scope.split,
        scope.shots,
        PROTOCOL_VERSION,
        scope.precision,
      ) as ResultRow[];
    return rows.map(decodeResult);
  }

  async writeBatch(
    runId: number,
    scope: ResultScope,
    rows: readonly (QuestionPrediction & { spec_hash: string })[],
    stats: BatchStats,
  ): Promise<void> {
    const ins = this.db.prepare(
      `INSERT OR IGNORE INTO results (model_fingerprint, spec_hash, split, subject, idx, shots, protocol, precision,
         gold, pred, lp_a, lp_b, lp_c, lp_d) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const r of rows) {
        const [a, b, c, d] = r.logprobs;
        ins.run(
          scope.fingerprint,
          r.spec_hash,
          scope.split,
          r.subject,
          r.index,
          scope.shots,
          PROTOCOL_VERSION,
          scope.precision,
          r.gold,
          r.pred,
          a,
          b,
          c,
          d,
        );
      }
      this.db
        .prepare(
          `UPDATE runs SET layer_tokens_done = layer_tokens_done + ?, layer_tokens_unshared = layer_tokens_unshared + ?,
             seconds = seconds + ? WHERE id = ?`,
        )
        .run(stats.layerTokensDone, stats.layerTokensUnshared, stats.seconds, runId);
      this.db
        .prepare(
          'INSERT INTO timings (run_id, at, questions, seconds, layer_tokens_done, layer_tokens_unshared) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(
          runId,
          new Date().toISOString(),
          rows.length,
          stats.seconds,
          stats.layerTokensDone,
          stats.layerTokensUnshared,
        );
    })();
  }

  async putSensitivity(runId: number, rows: readonly SensitivityRow[]): Promise<void> {
    const ins = this.db.prepare(
      'INSERT OR REPLACE INTO sensitivity (run_id, layer, kind, spec_hash, drop_) VALUES (?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => rows.forEach((r) => ins.run(runId, r.layer, r.kind, r.spec_hash, r.drop)))();
  }

  async finishRun(runId: number): Promise<void> {
    this.db
      .prepare("UPDATE runs SET status = 'done', finished_at = ? WHERE id = ? AND status != 'done'")
      .run(new Date().toISOString(), runId);
  }

  async runs(): Promise<RunRecord[]> {
    return this.db.prepare('SELECT * FROM runs ORDER BY id').all() as RunRecord[];
  }

  async runCandidates(runId: number): Promise<StoredCandidate[]> {
    const rows = this.db
      .prepare(
        `SELECT c.spec_hash, c.skip, c.ffn, c.effective, c.text_total, c.layers, rc.origin, rc.preset, rc.round_reached
         FROM run_candidates rc JOIN candidates c USING (spec_hash) WHERE rc.run_id = ? ORDER BY rc.ord`,
      )
      .all(runId) as CandidateRow[];
    return rows.map(decodeCandidate);
  }

  async rounds(runId: number): Promise<StoredRound[]> {
    const rows = this.db
      .prepare('SELECT * FROM rounds WHERE run_id = ? ORDER BY round')
      .all(runId) as RoundRow[];
    return rows.map(decodeRound);
  }

  async sensitivity(runId: number): Promise<SensitivityRow[]> {
    const rows = this.db
      .prepare('SELECT layer, kind, spec_hash, drop_ FROM sensitivity WHERE run_id = ? ORDER BY layer, kind')
      .all(runId) as SensitivityDbRow[];
    return rows.map(decodeSensitivity);
  }

  close(): void {
    if (this.db.open) this.db.close();
    this.lock?.release();
  }
}

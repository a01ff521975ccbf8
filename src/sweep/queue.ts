// Distributed sweeps: a round's missing (candidate, question) pairs become jobs on a PostgreSQL queue
// (pg-boss), one per question shard of one subject and group of candidates that share layer prefixes. Jobs are
// recorded in `dist_jobs` beside the queue; the transaction that completes a round's last job also ranks the
// round and enqueues the next one (successive halving), or finishes the run, so the queue and the results
// never disagree: at every commit either jobs are pending or the run is done.
import type pg from 'pg';
import PgBoss from 'pg-boss';
import type { SubsetItem } from '../eval';
import type { Candidate } from './candidates';
import { type SweepPlan, bySubject, openRun, planSweep, qkey, roundMetrics, sensitivityRows } from './plan';
import {
  type PostgresSweepStore,
  type Queryable,
  finishRunOn,
  isConnectionError,
  predictionsOn,
  putRoundOn,
  putSensitivityOn,
  scoredOn,
  transaction,
} from './pg-store';
import { type ResultScope, StoreError } from './store';
import { type Round, firstRound, nextRound } from './strategy';
import { type SweepFile, SweepFileError } from './sweep-file';

/** How a run's rounds are cut into jobs, and how long a claimed job may run before it returns to the queue. */
export interface JobSettings {
  /** Questions of one subject per job. */
  readonly questionsPerJob: number;
  /** Candidates per job (0: all of the round's in one group). */
  readonly candidatesPerJob: number;
  /** A claimed job whose worker has not renewed it for this long goes to another worker (presumed dead). */
  readonly leaseSeconds: number;
}

export const DEFAULT_JOB_SETTINGS: JobSettings = {
  questionsPerJob: 16,
  candidatesPerJob: 0,
  leaseSeconds: 300,
};

/** A job's payload on the queue: where its work is described (`dist_jobs`). */
export interface JobData {
  readonly run_id: number;
  readonly round: number;
  readonly job: number;
}

export interface JobSpec {
  readonly job: number;
  readonly subject: string;
  readonly questions: readonly SubsetItem[];
  readonly candidates: readonly string[];
  /** Pairs of the job not yet scored when it was made. */
  readonly pairs: number;
}

/** Enough retries that only a job that kills every worker ends up failed. */
const RETRY_LIMIT = 50;

export const queueName = (runId: number) => `matformer-sweep-run-${runId}`;

/**
 * Candidates in the order of their layer plans (a skipped layer sorts first, then by width, layer by layer),
 * so neighbours share the longest prefix of layers: groups cut from this order share the most computation.
 */
export function prefixOrder(candidates: readonly Candidate[]): Candidate[] {
  const layers = Math.max(0, ...candidates.map((c) => c.spec.skip.length + c.spec.ffn.length));
  const seq = (c: Candidate) => {
    const skip = new Set(c.spec.skip);
    let k = 0;
    return Array.from({ length: layers }, (_, l) => (skip.has(l) ? -1 : (c.spec.ffn[k++] ?? 0)));
  };
  const keyed = candidates.map((c) => ({ c, s: seq(c) }));
  keyed.sort((a, b) => {
    for (let i = 0; i < layers; i++) {
      const d = (a.s[i] ?? 0) - (b.s[i] ?? 0);
      if (d !== 0) return d;
    }
    return a.c.hash < b.c.hash ? -1 : a.c.hash > b.c.hash ? 1 : 0;
  });
  return keyed.map((k) => k.c);
}

/** The jobs of a round: per subject, shards of the questions some candidate lacks, per candidate group. */
export function planJobs(
  round: Round,
  missing: ReadonlyMap<string, ReadonlySet<string>>,
  ordered: readonly Candidate[],
  settings: JobSettings,
): JobSpec[] {
  const inRound = new Set(round.candidates);
  const cands = ordered.map((c) => c.hash).filter((h) => inRound.has(h) && (missing.get(h)?.size ?? 0) > 0);
  const per = settings.candidatesPerJob > 0 ? settings.candidatesPerJob : Math.max(1, cands.length);
  const jobs: JobSpec[] = [];
  for (const [subject, items] of bySubject(round.questions)) {
    const needed = items.filter((it) => cands.some((h) => missing.get(h)!.has(qkey(it))));
    for (let q = 0; q < needed.length; q += settings.questionsPerJob) {
      const shard = needed.slice(q, q + settings.questionsPerJob);
      for (let g = 0; g < cands.length; g += per) {
        const group = cands
          .slice(g, g + per)
          .filter((h) => shard.some((it) => missing.get(h)!.has(qkey(it))));
        if (group.length === 0) continue;
        const pairs = group.reduce(
          (n, h) => n + shard.filter((it) => missing.get(h)!.has(qkey(it))).length,
          0,
        );
        jobs.push({ job: jobs.length, subject, questions: shard, candidates: group, pairs });
      }
    }
  }
  return jobs;
}

/** What enqueuing and completing jobs need to know about a run. */
export interface DistributedRun {
  readonly store: PostgresSweepStore;
  readonly boss: PgBoss;
  readonly sweep: SweepFile;
  readonly plan: SweepPlan;
  readonly runId: number;
  readonly scope: ResultScope;
  readonly settings: JobSettings;
}

/** pg-boss on our own pool, so one pool (and its reconnects) serves both. */
export function createBoss(pool: pg.Pool, opts: { supervise: boolean; maintenanceSeconds?: number }): PgBoss {
  const boss = new PgBoss({
    db: { executeSql: (text: string, values: unknown[]) => pool.query(text, values) },
    supervise: opts.supervise,
    maintenanceIntervalSeconds: opts.maintenanceSeconds ?? 30,
    schedule: false,
  });
  // Maintenance runs on a timer: a lost connection there is retried on the next tick.
  boss.on('error', (e: Error) => {
    if (!isConnectionError(e)) process.stderr.write(`job queue: ${e.message}\n`);
  });
  return boss;
}

/** A pg-boss `db` on a client inside our transaction: the queue's writes commit or roll back with ours. */
export const onClient = (c: Queryable): PgBoss.Db => ({
  executeSql: async (text: string, values: unknown[]) => c.query(text, values),
});

export interface DistRunRow {
  readonly run_id: number;
  readonly queue: string;
  readonly questions_per_job: number;
  readonly candidates_per_job: number;
  readonly lease_seconds: number;
}

export async function distRun(c: Queryable, runId: number): Promise<DistRunRow | null> {
  const { rows } = await c.query<DistRunRow>('SELECT * FROM dist_runs WHERE run_id = $1', [runId]);
  return rows[0] ?? null;
}

export const settingsOf = (r: DistRunRow): JobSettings => ({
  questionsPerJob: r.questions_per_job,
  candidatesPerJob: r.candidates_per_job,
  leaseSeconds: r.lease_seconds,
});

/** Creates the run's queue unless there (outside any transaction: pg-boss makes a partition per queue). */
export async function ensureQueue(boss: PgBoss, runId: number, settings: JobSettings): Promise<void> {
  const name = queueName(runId);
  if (await boss.getQueue(name)) return;
  try {
    await boss.createQueue(name, {
      name,
      expireInSeconds: settings.leaseSeconds,
      retryLimit: RETRY_LIMIT,
      retryDelay: 0,
    });
  } catch (e) {
    if (!(await boss.getQueue(name))) throw e; // else another process created it meanwhile
  }
}

export interface EnqueueOutcome {
  readonly runId: number;
  /** false: the run was enqueued before (the rest says where it stands). */
  readonly created: boolean;
  readonly round: number;
  readonly jobs: number;
  readonly pairs: number;
  readonly done: boolean;
}

/**
 * Makes the run's first round into jobs, in one transaction with the run's queue settings. A run enqueued
 * before is left as it is (the outcome describes where it stands).
 */
async function enqueueRun(run: DistributedRun): Promise<Omit<EnqueueOutcome, 'runId'>> {
  await ensureQueue(run.boss, run.runId, run.settings);
  return transaction(run.store.pool, async (c) => {
    await c.query('SELECT id FROM runs WHERE id = $1 FOR UPDATE', [run.runId]);
    if (await distRun(c, run.runId)) {
      const { rows } = await c.query<{ round: number; jobs: number; pairs: number; status: string }>(
        `SELECT g.round, g.jobs, g.pairs, r.status FROM dist_rungs g JOIN runs r ON r.id = g.run_id
         WHERE g.run_id = $1 ORDER BY g.round DESC LIMIT 1`,
        [run.runId],
      );
      const last = rows[0];
      return {
        created: false,
        round: last?.round ?? 0,
        jobs: last?.jobs ?? 0,
        pairs: last?.pairs ?? 0,
        done: last?.status === 'done',
      };
    }
    await c.query(
      `INSERT INTO dist_runs (run_id, queue, questions_per_job, candidates_per_job, lease_seconds, enqueued_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        run.runId,
        queueName(run.runId),
        run.settings.questionsPerJob,
        run.settings.candidatesPerJob,
        run.settings.leaseSeconds,
        new Date().toISOString(),
      ],
    );
    const first = firstRound(run.sweep.strategy, run.plan.candidates, run.plan.order);
    const r = await startRound(c, run, first);
    return { created: true, ...r };
  });
}

/**
 * Records `round` and enqueues its jobs; a round with nothing missing (scored by an earlier sweep) is ranked
 * at once and the next one started, until a round has work or the run is finished.
 */
async function startRound(
  c: pg.PoolClient,
  run: DistributedRun,
  round: Round,
): Promise<{ round: number; jobs: number; pairs: number; done: boolean }> {
  for (let r: Round | null = round; r;) {
    await putRoundOn(c, run.runId, r);
    const have = await scoredOn(c, run.scope, r.candidates);
    const keys = r.questions.map(qkey);
    const missing = new Map(r.candidates.map((h) => [h, new Set(keys.filter((k) => !have.get(h)!.has(k)))]));
    const jobs = planJobs(r, missing, prefixOrder(run.plan.candidates), run.settings);
    const pairs = jobs.reduce((n, j) => n + j.pairs, 0);
    await c.query(
      `INSERT INTO dist_rungs (run_id, round, jobs, pairs, enqueued_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (run_id, round) DO NOTHING`,
      [
        run.runId,
        r.index,
        jobs.length,
        pairs,
        new Date().toISOString(),
        jobs.length === 0 ? new Date().toISOString() : null,
      ],
    );
    if (jobs.length > 0) {
      await c.query(
        `INSERT INTO dist_jobs (run_id, round, job, subject, questions, candidates, pairs)
         SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::int[])`,
        [
          run.runId,
          r.index,
          jobs.map((j) => j.job),
          jobs.map((j) => j.subject),
          jobs.map((j) => JSON.stringify(j.questions.map((q) => q.index))),
          jobs.map((j) => JSON.stringify(j.candidates)),
          jobs.map((j) => j.pairs),
        ],
      );
      await run.boss.insert(
        jobs.map((j) => ({
          name: queueName(run.runId),
          data: { run_id: run.runId, round: r!.index, job: j.job } satisfies JobData,
          expireInSeconds: run.settings.leaseSeconds,
          retryLimit: RETRY_LIMIT,
          retryDelay: 0,
        })),
        { db: onClient(c) },
      );
      return { round: r.index, jobs: jobs.length, pairs, done: false };
    }
    const next = await rankRound(c, run, r);
    if (!next) return { round: r.index, jobs: 0, pairs: 0, done: true };
    r = next;
  }
  throw new Error('unreachable');
}

/** The round after `round` (its metrics from the stored results), or null once the run is finished. */
async function rankRound(c: Queryable, run: DistributedRun, round: Round): Promise<Round | null> {
  const preds = (h: string) => predictionsOn(c, run.scope, h);
  const metrics = await roundMetrics(run.sweep, run.plan.parentHash, round, preds);
  const next = nextRound(run.sweep.strategy, run.plan.candidates, run.plan.order, round, metrics);
  if (next) return next;
  if (run.sweep.strategy.kind === 'sensitivity')
    await putSensitivityOn(c, run.runId, await sensitivityRows(run.sweep, run.plan, preds));
  await finishRunOn(c, run.runId);
  return null;
}

/** A job as `dist_jobs` describes it. */
export interface StoredJob {
  readonly round: number;
  readonly job: number;
  readonly subject: string;
  readonly questions: SubsetItem[];
  readonly candidates: string[];
  readonly finished: boolean;
}

export async function loadJob(c: Queryable, data: JobData): Promise<StoredJob> {
  const { rows } = await c.query<{
    subject: string;
    questions: string;
    candidates: string;
    finished_at: string | null;
  }>(
    'SELECT subject, questions, candidates, finished_at FROM dist_jobs WHERE run_id = $1 AND round = $2 AND job = $3',
    [data.run_id, data.round, data.job],
  );
  const row = rows[0];
  if (!row) throw new StoreError(`job ${data.run_id}/${data.round}/${data.job}: not in dist_jobs`);
  return {
    round: data.round,
    job: data.job,
    subject: row.subject,
    questions: (JSON.parse(row.questions) as number[]).map((index) => ({ subject: row.subject, index })),
    candidates: JSON.parse(row.candidates) as string[],
    finished: row.finished_at !== null,
  };
}

/**
 * Completes a job in the transaction that writes its results (`write`): marks it done in `dist_jobs` and in the
 * queue; when it was the round's last, ranks the round and enqueues the next (or finishes the run). Completions
 * of one round are serialised by a lock on its `dist_rungs` row. A job completed before (its lease had expired
 * and another worker did it too) changes nothing: the results' unique keys keep the first copy.
 */
export async function completeJob(
  run: DistributedRun,
  bossId: string,
  data: JobData,
  worker: string,
  seconds: number,
  write: (c: pg.PoolClient) => Promise<number>,
): Promise<{ inserted: number; advanced: boolean; finished: boolean }> {
  return transaction(run.store.pool, async (c) => {
    await c.query('SELECT 1 FROM dist_rungs WHERE run_id = $1 AND round = $2 FOR UPDATE', [
      data.run_id,
      data.round,
    ]);
    const inserted = await write(c);
    const mark = await c.query(
      `UPDATE dist_jobs SET finished_at = $4, worker = $5, scored = $6, seconds = $7
       WHERE run_id = $1 AND round = $2 AND job = $3 AND finished_at IS NULL`,
      [data.run_id, data.round, data.job, new Date().toISOString(), worker, inserted, seconds],
    );
    await run.boss.complete(queueName(data.run_id), bossId, {}, { db: onClient(c) });
    if (mark.rowCount !== 1) return { inserted, advanced: false, finished: false };
    const left = await c.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM dist_jobs WHERE run_id = $1 AND round = $2 AND finished_at IS NULL',
      [data.run_id, data.round],
    );
    if ((left.rows[0]?.n ?? 0) > 0) return { inserted, advanced: false, finished: false };
    await c.query('UPDATE dist_rungs SET completed_at = $3 WHERE run_id = $1 AND round = $2', [
      data.run_id,
      data.round,
      new Date().toISOString(),
    ]);
    const stored = (await run.store.rounds(data.run_id)).find((r) => r.round === data.round);
    if (!stored) throw new StoreError(`run ${data.run_id}: round ${data.round} is not recorded`);
    const round: Round = { index: stored.round, questions: stored.questions, candidates: stored.candidates };
    const next = await rankRound(c, run, round);
    if (!next) return { inserted, advanced: true, finished: true };
    const started = await startRound(c, run, next);
    return { inserted, advanced: true, finished: started.done };
  });
}

export interface RungProgress {
  readonly round: number;
  readonly jobs: number;
  readonly jobs_done: number;
  readonly pairs: number;
  readonly pairs_done: number;
  readonly enqueued_at: string;
  readonly completed_at: string | null;
}

export interface WorkerProgress {
  readonly name: string;
  readonly host: string | null;
  readonly backend: string | null;
  readonly status: string | null;
  readonly last_seen: string | null;
  readonly jobs: number;
  readonly results: number;
  readonly seconds: number;
}

export interface DistributedProgress {
  readonly queue: string;
  readonly settings: JobSettings;
  readonly rungs: RungProgress[];
  readonly workers: WorkerProgress[];
}

/** Where a distributed run stands, per round and per worker (null: the run was not enqueued). */
export async function distributedProgress(
  store: PostgresSweepStore,
  runId: number,
): Promise<DistributedProgress | null> {
  if (store.version < 2) return null;
  const dist = await distRun(store.pool, runId);
  if (!dist) return null;
  const rungs = await store.pool.query<RungProgress>(
    `SELECT g.round, g.jobs, g.pairs, g.enqueued_at, g.completed_at,
       count(j.finished_at)::int AS jobs_done,
       coalesce(sum(j.pairs) FILTER (WHERE j.finished_at IS NOT NULL), 0)::int AS pairs_done
     FROM dist_rungs g LEFT JOIN dist_jobs j USING (run_id, round)
     WHERE g.run_id = $1 GROUP BY g.run_id, g.round ORDER BY g.round`,
    [runId],
  );
  const seen = await store.pool.query<
    Pick<WorkerProgress, 'name' | 'host' | 'backend' | 'status' | 'last_seen'>
  >('SELECT name, host, backend, status, last_seen FROM dist_workers WHERE run_id = $1 ORDER BY name', [
    runId,
  ]);
  const done = await store.pool.query<{ name: string; jobs: number; results: number; seconds: number }>(
    `SELECT worker AS name, count(*)::int AS jobs, coalesce(sum(scored), 0)::int AS results,
       coalesce(sum(seconds), 0)::float8 AS seconds
     FROM dist_jobs WHERE run_id = $1 AND finished_at IS NOT NULL GROUP BY worker`,
    [runId],
  );
  const byName = new Map(done.rows.map((r) => [r.name, r]));
  const workers: WorkerProgress[] = seen.rows.map((w) => ({
    ...w,
    jobs: byName.get(w.name)?.jobs ?? 0,
    results: byName.get(w.name)?.results ?? 0,
    seconds: byName.get(w.name)?.seconds ?? 0,
  }));
  return { queue: dist.queue, settings: settingsOf(dist), rungs: rungs.rows, workers };
}

/**
 * `sweep --enqueue`: the sweep's run (found or created, as `sweep` does) made into jobs for workers. Nothing is
 * scored here and the weights are not loaded.
 */
/** What a distributed run cannot do yet, refused in one line before any database is touched. */
export function checkEnqueueable(sweep: SweepFile): void {
  // Jobs carry no precision and workers load one engine: distributed rungs score in exact mode only.
  if (sweep.strategy.kind === 'successive_halving' && sweep.strategy.fast_rungs > 0)
    throw new SweepFileError(
      `${sweep.file}: strategy.successive_halving.fast_rungs: not supported with --enqueue (workers score in exact mode); run it with plain sweep`,
    );
}

export async function enqueueSweep(opts: {
  readonly sweep: SweepFile;
  readonly store: PostgresSweepStore;
  readonly settings: JobSettings;
  readonly fresh?: boolean;
  readonly toolVersion: string;
  readonly log?: (m: string) => void;
}): Promise<EnqueueOutcome> {
  // The prior needs the scan's results before the first round is cut; the queue does not read them yet.
  if (opts.sweep.prior)
    throw new SweepFileError(
      `${opts.sweep.file}: prior: not supported with --enqueue; run it with plain sweep`,
    );
  checkEnqueueable(opts.sweep);
  const plan = await planSweep(opts.sweep);
  const { runId, scope } = await openRun(opts.store, opts.sweep, plan, opts);
  const boss = createBoss(opts.store.pool, { supervise: false });
  await boss.start();
  try {
    const run: DistributedRun = {
      store: opts.store,
      boss,
      sweep: opts.sweep,
      plan,
      runId,
      scope,
      settings: opts.settings,
    };
    return { runId, ...(await enqueueRun(run)) };
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
  }
}

// A worker of a distributed sweep: finds the run, checks that its own copy of the checkpoint is the one the
// sweep scored (fingerprint), loads the parent once and claims jobs until the run is finished. Each job's
// results are written in the transaction that completes it; a lost database connection is waited out (the
// results in hand are kept and written once the server is back).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine, type TextModel } from '../engine';
import { CONFIG_FILE, UserInputError } from '../formats';
import { modelFingerprint } from './fingerprint';
import { type ScoredRow, planSweep, qkey, scoreBatch, subjectBatches } from './plan';
import {
  type PostgresSweepStore,
  describePgError,
  isConnectionError,
  scoredOn,
  writeBatchOn,
} from './pg-store';
import {
  type DistributedRun,
  type JobData,
  completeJob,
  createBoss,
  distRun,
  loadJob,
  queueName,
  settingsOf,
} from './queue';
import { type RunRecord, type ResultScope, StoreError } from './store';
import { parseSweep } from './sweep-file';

export interface WorkerOptions {
  readonly store: PostgresSweepStore;
  /** The run to work on (default: the latest unfinished distributed run). */
  readonly run?: number;
  /** This host's copy of the parent checkpoint (default: the run's path). */
  readonly model?: string;
  /** This host's copy of the MMLU data (default: the sweep's path). */
  readonly mmlu?: string;
  /** Backend (default: the sweep file's). */
  readonly backend?: string;
  readonly name?: string;
  /** Seconds between looks at an empty queue. */
  readonly pollSeconds?: number;
  /** Seconds between the queue's maintenance passes (they return expired jobs to the queue). */
  readonly maintenanceSeconds?: number;
  /** How long a lost database is waited for before the worker gives up. */
  readonly reconnectSeconds?: number;
  readonly log?: (message: string) => void;
  /** Checked between jobs: true stops the worker there. */
  readonly shouldStop?: () => boolean;
}

export interface WorkerOutcome {
  /** null: no unfinished distributed run in the database. */
  readonly runId: number | null;
  readonly jobs: number;
  readonly results: number;
  readonly finished: boolean;
  readonly stopped: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runWorker(opts: WorkerOptions): Promise<WorkerOutcome> {
  const { store } = opts;
  const log = opts.log ?? (() => undefined);
  const name = opts.name ?? `${os.hostname()}:${process.pid}`;
  const reconnectMs = (opts.reconnectSeconds ?? 600) * 1000;

  /** Runs `fn` again while the database is unreachable, up to the reconnect timeout. */
  const persist = async <T>(fn: () => Promise<T>): Promise<T> => {
    let lostAt = 0;
    for (;;) {
      try {
        const out = await fn();
        if (lostAt) log(`reconnected to the database after ${((Date.now() - lostAt) / 1000).toFixed(1)} s`);
        return out;
      } catch (e) {
        if (!isConnectionError(e)) throw e;
        if (!lostAt) {
          lostAt = Date.now();
          log(`database connection lost (${describePgError(e)}); waiting for it`);
        }
        if (Date.now() - lostAt > reconnectMs)
          throw new StoreError(
            `--db: the database has been unreachable for ${Math.round(reconnectMs / 1000)} s (${describePgError(e)})`,
          );
        await sleep(1000);
      }
    }
  };

  const run = await findRun(store, opts.run);
  if (!run) return { runId: null, jobs: 0, results: 0, finished: false, stopped: false };
  const dist = await distRun(store.pool, run.id);
  if (!dist)
    throw new UserInputError(`--run ${run.id}: not a distributed run (enqueue it with sweep --enqueue)`);

  const raw = JSON.parse(run.sweep_json) as Record<string, unknown>;
  const parsed = parseSweep(raw, run.sweep_file);
  const model = opts.model ? path.resolve(opts.model) : run.model_path;
  const flag = opts.model ? `--model ${model}` : `run ${run.id}'s checkpoint ${model}`;
  if (!fs.existsSync(path.join(model, CONFIG_FILE)))
    throw new UserInputError(
      `${flag}: no checkpoint there (no ${CONFIG_FILE})${opts.model ? '' : '; pass --model with this host’s copy'}`,
    );
  const fingerprint = modelFingerprint(model);
  if (fingerprint !== run.model_fingerprint)
    throw new UserInputError(
      `${flag}: checkpoint fingerprint ${fingerprint} differs from the sweep's ${run.model_fingerprint} ` +
        `(run ${run.id} scored ${run.model_path}); refusing its jobs`,
    );
  const sweep = {
    ...parsed,
    model,
    backend: opts.backend ?? parsed.backend,
    data: { ...parsed.data, mmlu: opts.mmlu ? path.resolve(opts.mmlu) : parsed.data.mmlu },
  };
  const plan = await planSweep(sweep);
  const stored = new Set((await store.runCandidates(run.id)).map((c) => c.spec_hash));
  if (stored.size !== plan.candidates.length || plan.candidates.some((c) => !stored.has(c.hash)))
    throw new UserInputError(
      `--run ${run.id}: this worker derives other candidates from the sweep than the run recorded ` +
        `(run made by matformer-lab ${run.tool_version}); use that version`,
    );
  // Distributed sweeps score in exact mode only (enqueueing refuses fast_rungs).
  const scope: ResultScope = { fingerprint, shots: sweep.shots, split: plan.split, precision: 'exact' };

  const heartbeat = (status: string) =>
    store.pool.query(
      `INSERT INTO dist_workers (name, host, pid, backend, run_id, started_at, last_seen, status)
       VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
       ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, status = excluded.status,
         run_id = excluded.run_id, backend = excluded.backend`,
      [name, os.hostname(), process.pid, sweep.backend, run.id, new Date().toISOString(), status],
    );
  await heartbeat('loading');

  const boss = createBoss(store.pool, { supervise: true, maintenanceSeconds: opts.maintenanceSeconds });
  await boss.start();
  const ctx: DistributedRun = { store, boss, sweep, plan, runId: run.id, scope, settings: settingsOf(dist) };
  const queue = queueName(run.id);

  let jobs = 0;
  let results = 0;
  let engine: Engine | null = null;
  try {
    const t0 = performance.now();
    engine = await Engine.load(sweep.model, { backend: sweep.backend as never });
    const e = engine;
    const parentView = e.view();
    log(
      `worker ${name}: run ${run.id} (${plan.candidates.length} candidates), ${sweep.model} on ${e.backend.name} ` +
        `loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const views = new Map<string, TextModel>();
    const viewOf = (h: string) => {
      let v = views.get(h);
      if (!v) {
        v = h === plan.parentHash ? parentView : e.view(plan.byHash.get(h)!.spec);
        views.set(h, v);
      }
      return v;
    };

    for (;;) {
      if (opts.shouldStop?.()) {
        await persist(() => heartbeat('stopped'));
        return { runId: run.id, jobs, results, finished: false, stopped: true };
      }
      const [job] = await boss.fetch<JobData>(queue, { batchSize: 1 });
      if (!job) {
        const state = await persist(() => runState(store, run.id, queue));
        if (state.status === 'done') break;
        if (state.pending === 0)
          throw new StoreError(
            `run ${run.id}: unfinished, yet its queue holds no job (jobs failed ${'repeatedly'}); see results`,
          );
        await persist(() => heartbeat('idle'));
        await sleep((opts.pollSeconds ?? 1) * 1000);
        continue;
      }
      const t1 = performance.now();
      const data = job.data;
      const beat = renewLease(store, queue, job.id, ctx.settings.leaseSeconds);
      try {
        const spec = await persist(() => loadJob(store.pool, data));
        await persist(() =>
          store.pool.query(
            `UPDATE dist_jobs SET claims = claims + 1, worker = coalesce(worker, $4), claimed_at = $5
           WHERE run_id = $1 AND round = $2 AND job = $3`,
            [data.run_id, data.round, data.job, name, new Date().toISOString()],
          ),
        );
        await persist(() => heartbeat('working'));
        const have = spec.finished ? null : await persist(() => scoredOn(store.pool, scope, spec.candidates));
        const missing = new Map(
          spec.candidates.map((h) => [
            h,
            new Set(spec.questions.map(qkey).filter((k) => have !== null && !have.get(h)!.has(k))),
          ]),
        );
        const rows: ScoredRow[] = [];
        const stats = { seconds: 0, layerTokensDone: 0, layerTokensUnshared: 0 };
        const cands = spec.candidates.filter((h) => missing.get(h)!.size > 0);
        const needed = spec.questions.filter((q) => cands.some((h) => missing.get(h)!.has(qkey(q))));
        if (needed.length > 0)
          for (const batch of subjectBatches(plan, sweep.shots, spec.subject, needed)) {
            const r = await scoreBatch(
              sweep,
              plan,
              parentView,
              cands.map((h) => ({ key: h, model: viewOf(h) })),
              batch,
              (h, k) => missing.get(h)!.has(k),
            );
            rows.push(...r.rows);
            await new Promise((res) => setImmediate(res)); // a turn of the event loop: the lease timer beats
            stats.seconds += r.stats.seconds;
            stats.layerTokensDone += r.stats.layerTokensDone;
            stats.layerTokensUnshared += r.stats.layerTokensUnshared;
          }
        const seconds = (performance.now() - t1) / 1000;
        const out = await persist(() =>
          completeJob(ctx, job.id, data, name, seconds, (c) =>
            rows.length > 0 ? writeBatchOn(c, run.id, scope, rows, stats) : Promise.resolve(0),
          ),
        );
        jobs++;
        results += out.inserted;
        log(
          `job ${data.round}/${data.job} (${spec.subject}, ${spec.questions.length} questions × ${spec.candidates.length} candidates): ` +
            `${out.inserted} results in ${seconds.toFixed(1)} s` +
            (out.finished
              ? '; the run is finished'
              : out.advanced
                ? `; round ${data.round} complete, next enqueued`
                : ''),
        );
      } finally {
        clearInterval(beat);
      }
    }
    await persist(() => heartbeat('done'));
    return { runId: run.id, jobs, results, finished: true, stopped: false };
  } finally {
    engine?.dispose();
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
  }
}

async function findRun(store: PostgresSweepStore, id: number | undefined): Promise<RunRecord | null> {
  if (store.version < 2) return null;
  if (id !== undefined) {
    const { rows } = await store.pool.query<RunRecord>('SELECT * FROM runs WHERE id = $1', [id]);
    if (!rows[0]) throw new UserInputError(`--run ${id}: no such run in the database`);
    return rows[0];
  }
  const { rows } = await store.pool.query<RunRecord>(
    `SELECT r.* FROM runs r JOIN dist_runs d ON d.run_id = r.id WHERE r.status != 'done' ORDER BY r.id DESC LIMIT 1`,
  );
  return rows[0] ?? null;
}

/**
 * Keeps a claimed job's lease while this worker lives: every third of the lease its start is moved to now, so
 * the queue's expiry (start + lease < now) takes the job back only from a worker that stopped beating.
 * (pg-boss 10 has no call for it; `pgboss.job` is its table, the version is pinned.)
 */
function renewLease(store: PostgresSweepStore, queue: string, id: string, leaseSeconds: number) {
  return setInterval(
    () =>
      void store.pool
        .query(`UPDATE pgboss.job SET started_on = now() WHERE name = $1 AND id = $2 AND state = 'active'`, [
          queue,
          id,
        ])
        .catch(() => undefined), // a lost connection: the next beat, or the lease, decides
    Math.max(500, (leaseSeconds * 1000) / 3),
  );
}

/** The run's status and its jobs still to do, read in one snapshot. */
async function runState(
  store: PostgresSweepStore,
  runId: number,
  queue: string,
): Promise<{ status: string; pending: number }> {
  const { rows } = await store.pool.query<{ status: string; pending: number }>(
    `SELECT status, (SELECT count(*)::int FROM pgboss.job WHERE name = $2 AND state < 'completed') AS pending
     FROM runs WHERE id = $1`,
    [runId, queue],
  );
  return rows[0] ?? { status: 'missing', pending: 0 };
}

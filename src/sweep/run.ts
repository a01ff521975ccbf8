// Runs a sweep: candidates and rounds are planned from the sweep file and the stored results, and only the
// (candidate, question) pairs the database lacks are scored, through the shared trie, one transaction per
// batch. A finished sweep re-run finds nothing missing and never loads the weights. Successive halving's first
// `fast_rungs` rounds score in int8 fast mode, the rest in exact mode: one engine at a time, each round's
// results stored (and read back for its metrics) under its own precision.
import { Engine, type Precision, type TextModel } from '../engine';
import {
  bySubject,
  openRun,
  planSweep,
  qkey,
  roundMetrics,
  scoreBatch,
  sensitivityRows,
  subjectBatches,
} from './plan';
import type { SweepStore } from './store';
import { type Round, firstRound, nextRound, roundPrecision } from './strategy';
import type { SweepFile } from './sweep-file';
import { type Candidate, describeSpec } from './candidates';

export interface SweepProgress {
  readonly round: number;
  /** Candidate-question pairs scored in this round by this session, and how many the round lacked. */
  readonly done: number;
  readonly total: number;
  /** Candidates of the round with every question scored. */
  readonly candidatesDone: number;
  readonly candidates: number;
  readonly subject: string;
  /** Each candidate the round had work for: its questions scored in this session and how many it lacked. */
  readonly perCandidate: readonly { key: string; label: string; done: number; total: number }[];
}

export interface SweepRunOptions {
  readonly sweep: SweepFile;
  /** The store, or how to open it: opened only once the sweep, its data and the checkpoint have checked out. */
  readonly store: SweepStore | (() => SweepStore | Promise<SweepStore>);
  /** Start over: the previous run of this sweep and its candidates' results are deleted. */
  readonly fresh?: boolean;
  readonly toolVersion: string;
  readonly log?: (message: string) => void;
  readonly onProgress?: (p: SweepProgress) => void;
  readonly onLoaded?: (engine: Engine, seconds: number) => void;
  /** Checked after every batch: true stops the sweep there (it resumes later). */
  readonly shouldStop?: () => boolean;
}

export interface SweepOutcome {
  readonly runId: number;
  readonly stopped: boolean;
  /** Candidate-question pairs scored by this session. */
  readonly scored: number;
  readonly loadedModel: boolean;
  readonly rounds: number;
}

export { sweepHash } from './plan';

export async function runSweep(opts: SweepRunOptions): Promise<SweepOutcome> {
  const { sweep } = opts;
  const log = opts.log ?? (() => undefined);
  const plan = await planSweep(sweep);
  const { candidates, byHash, parentHash, order } = plan;
  const store = typeof opts.store === 'function' ? await opts.store() : opts.store;
  const { runId, scope, predicted } = await openRun(store, sweep, plan, { ...opts, log });

  let engine: Engine | null = null;
  let loadedModel = false;
  let parentView: TextModel | null = null;
  const views = new Map<string, TextModel>();
  const load = async (precision: Precision) => {
    if (engine && engine.precision !== precision) {
      // The fast rungs are over: their engine goes before the exact one loads.
      engine.dispose();
      engine = null;
      views.clear();
    }
    if (!engine) {
      const t0 = performance.now();
      engine = await Engine.load(sweep.model, { backend: sweep.backend as never, precision });
      loadedModel = true;
      parentView = engine.view();
      opts.onLoaded?.(engine, (performance.now() - t0) / 1000);
    }
    return { engine, parentView: parentView! };
  };
  const viewOf = (e: Engine, h: string) => {
    let v = views.get(h);
    if (!v) {
      v = h === parentHash ? parentView! : e.view(byHash.get(h)!.spec);
      views.set(h, v);
    }
    return v;
  };

  let scored = 0;
  let stopped = false;
  let round: Round | null = firstRound(sweep.strategy, candidates, order, predicted ?? undefined);
  let rounds = 0;
  try {
    while (round) {
      rounds++;
      await store.putRound(runId, round);
      const precision = roundPrecision(sweep.strategy, round.index);
      const roundScope = { ...scope, precision };
      const have = await store.scored(roundScope, round.candidates);
      const missing = new Map<string, Set<string>>();
      let total = 0;
      for (const h of round.candidates) {
        const m = new Set(round.questions.map(qkey).filter((k) => !have.get(h)!.has(k)));
        if (m.size > 0) missing.set(h, m);
        total += m.size;
      }
      if (total > 0) {
        const { engine: e, parentView: pv } = await load(precision);
        let done = 0;
        const left = new Map([...missing].map(([h, m]) => [h, m.size]));
        const need = new Map(left);
        const r = round;
        const progress = (subject: string) =>
          opts.onProgress?.({
            round: r.index,
            done,
            total,
            candidatesDone: r.candidates.length - [...left.values()].filter((n) => n > 0).length,
            candidates: r.candidates.length,
            subject,
            perCandidate: [...need].map(([h, n]) => ({
              key: h,
              label: candidateLabel(byHash.get(h)!),
              done: n - left.get(h)!,
              total: n,
            })),
          });
        progress('');
        for (const [subject, items] of bySubject(round.questions)) {
          const needed = items.filter((it) => [...missing.values()].some((m) => m.has(qkey(it))));
          if (needed.length === 0) continue;
          const cands = [...missing].filter(([, m]) => needed.some((it) => m.has(qkey(it)))).map(([h]) => h);
          for (const batch of subjectBatches(plan, sweep.shots, subject, needed)) {
            const { rows, stats } = await scoreBatch(
              sweep,
              plan,
              pv,
              cands.map((h) => ({ key: h, model: viewOf(e, h) })),
              batch,
              (h, k) => missing.get(h)!.has(k),
            );
            await store.writeBatch(runId, roundScope, rows, stats);
            for (const r of rows) {
              missing.get(r.spec_hash)!.delete(qkey(r));
              left.set(r.spec_hash, left.get(r.spec_hash)! - 1);
            }
            done += rows.length;
            scored += rows.length;
            progress(subject);
            // Signals (Ctrl-C) are delivered by the event loop, which scoring on cpu never reaches by itself:
            // let it run once per batch so a stop request is seen after this batch, not after the sweep.
            await new Promise((res) => setImmediate(res));
            if (opts.shouldStop?.()) {
              stopped = true;
              return { runId, stopped, scored, loadedModel, rounds };
            }
          }
        }
      }
      const metrics = await roundMetrics(sweep, parentHash, round, (h) => store.predictions(roundScope, h));
      round = nextRound(sweep.strategy, candidates, order, round, metrics);
    }
    if (sweep.strategy.kind === 'sensitivity')
      await store.putSensitivity(
        runId,
        await sensitivityRows(sweep, plan, (h) => store.predictions(scope, h)),
      );
    await store.finishRun(runId);
    return { runId, stopped, scored, loadedModel, rounds };
  } finally {
    (engine as Engine | null)?.dispose();
  }
}

/** A candidate as progress shows it: `parent`, a preset, `layer 3 skip`, `skip 3 ffn 48x9`. */
function candidateLabel(c: Candidate): string {
  const sensitivity = /^sensitivity: (.*)$/.exec(c.origin);
  if (sensitivity) return sensitivity[1]!;
  return describeSpec(c.spec, c.preset?.name ?? (c.origin === 'parent' ? 'parent' : undefined));
}

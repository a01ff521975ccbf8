// Runs a sweep: candidates and rounds are planned from the sweep file and the stored results, and only the
// (candidate, question) pairs the database lacks are scored, through the shared trie, one transaction per
// batch. A finished sweep re-run finds nothing missing and never loads the weights.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Engine, type TextModel } from '../engine';
import {
  type MmluDataset,
  type QuestionPrediction,
  type SubsetItem,
  LETTERS,
  choiceTokenIds,
  loadMmlu,
  loadTokenizer,
  predict,
  questionsOf,
  selectSubset,
  tokenizeSubject,
} from '../eval';
import { UserInputError } from '../formats';
import { type ModelConfig, deriveSubmodel, loadConfig } from '../gemma3n';
import { type Candidate, makeCandidate, sweepCandidates } from './candidates';
import { modelFingerprint } from './fingerprint';
import { candidateResult } from './metrics';
import { scoreShared } from './shared-eval';
import { PROTOCOL_VERSION, type ResultScope, type SensitivityRow, type SweepStore } from './store';
import { type Round, firstRound, nestedOrder, nextRound, sensitivitySpecs } from './strategy';
import type { SweepFile } from './sweep-file';

export interface SweepProgress {
  readonly round: number;
  /** Candidate-question pairs scored in this round by this session, and how many the round lacked. */
  readonly done: number;
  readonly total: number;
  /** Candidates of the round with every question scored. */
  readonly candidatesDone: number;
  readonly candidates: number;
  readonly subject: string;
}

export interface SweepRunOptions {
  readonly sweep: SweepFile;
  /** The store, or how to open it: opened only once the sweep, its data and the checkpoint have checked out. */
  readonly store: SweepStore | (() => SweepStore);
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

const qkey = (q: { subject: string; index: number }) => `${q.subject}#${q.index}`;

/** The run's identity: the sweep's content with its paths resolved (the same sweep from anywhere). */
export function sweepHash(sweep: SweepFile): string {
  const canonical = JSON.stringify({ raw: sweep.raw, model: sweep.model, mmlu: sweep.data.mmlu });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** Sensitivity's candidates: the parent, then each layer alone narrowed and each alone skipped (valid ones). */
function sensitivityCandidates(sweep: SweepFile, parent: ModelConfig): Candidate[] {
  const base = sweepCandidates(sweep, parent);
  const width = sweep.strategy.kind === 'sensitivity' ? sweep.strategy.width : undefined;
  const seen = new Set(base.map((c) => c.hash));
  const out = [...base];
  for (const s of sensitivitySpecs(parent.text.intermediate_size, width)) {
    try {
      deriveSubmodel(parent, s);
    } catch (e) {
      if (e instanceof UserInputError) continue; // a KV producer with readers cannot be skipped
      throw e;
    }
    const c = makeCandidate(parent, s, `sensitivity: layer ${s.layer} ${s.kind}`);
    if (!seen.has(c.hash)) out.push(c);
    seen.add(c.hash);
  }
  return out;
}

export async function runSweep(opts: SweepRunOptions): Promise<SweepOutcome> {
  const { sweep } = opts;
  const log = opts.log ?? (() => undefined);
  const parent = loadConfig(sweep.model);
  const candidates =
    sweep.strategy.kind === 'sensitivity'
      ? sensitivityCandidates(sweep, parent)
      : sweepCandidates(sweep, parent);
  const byHash = new Map(candidates.map((c) => [c.hash, c]));
  const parentHash = candidates[0]!.hash;
  const dataset = await loadMmlu(sweep.data.mmlu);
  const subset = selectSubset(dataset, {
    split: sweep.data.split,
    subjects: sweep.data.subjects,
    categories: sweep.data.categories,
    limitPerSubject: sweep.data.limitPerSubject,
    sample: sweep.data.sample,
    seed: sweep.data.seed,
  });
  const order = nestedOrder(subset.items, sweep.data.seed);
  const tokenizer = await loadTokenizer(sweep.model);
  const choiceIds = choiceTokenIds(tokenizer);
  const fingerprint = modelFingerprint(sweep.model);
  const modelPath = path.resolve(sweep.model);
  const store = typeof opts.store === 'function' ? opts.store() : opts.store;
  await store.checkModel(modelPath, fingerprint);
  const scope: ResultScope = { fingerprint, shots: sweep.shots, split: subset.split };

  const hash = sweepHash(sweep);
  let run = await store.findRun(hash, fingerprint);
  if (run && opts.fresh) {
    await store.deleteRun(run.id);
    log(`--fresh: deleted run ${run.id} and its results`);
    run = null;
  }
  const runId =
    run?.id ??
    (await store.createRun({
      sweep_hash: hash,
      sweep_file: path.resolve(sweep.file),
      sweep_json: JSON.stringify(sweep.raw),
      tool_version: opts.toolVersion,
      model_path: modelPath,
      model_fingerprint: fingerprint,
      backend: sweep.backend,
      metric: sweep.metric,
      strategy: JSON.stringify(sweep.strategy),
      shots: sweep.shots,
      split: subset.split,
      protocol: PROTOCOL_VERSION,
    }));
  if (run) log(`resuming run ${runId} (${run.status})`);
  await store.putCandidates(runId, candidates);

  let engine: Engine | null = null;
  let parentView: TextModel | null = null;
  const views = new Map<string, TextModel>();
  const load = async () => {
    if (!engine) {
      const t0 = performance.now();
      engine = await Engine.load(sweep.model, { backend: sweep.backend as never });
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
  let round: Round | null = firstRound(sweep.strategy, candidates, order);
  let rounds = 0;
  try {
    while (round) {
      rounds++;
      await store.putRound(runId, round);
      const have = await store.scored(scope, round.candidates);
      const missing = new Map<string, Set<string>>();
      let total = 0;
      for (const h of round.candidates) {
        const m = new Set(round.questions.map(qkey).filter((k) => !have.get(h)!.has(k)));
        if (m.size > 0) missing.set(h, m);
        total += m.size;
      }
      if (total > 0) {
        const { engine: e, parentView: pv } = await load();
        let done = 0;
        const left = new Map([...missing].map(([h, m]) => [h, m.size]));
        for (const [subject, items] of bySubject(round.questions)) {
          const needed = items.filter((it) => [...missing.values()].some((m) => m.has(qkey(it))));
          if (needed.length === 0) continue;
          const cands = [...missing].filter(([, m]) => needed.some((it) => m.has(qkey(it)))).map(([h]) => h);
          for (const batch of await scoreSubject(subject, needed)) {
            const t0 = performance.now();
            const res = await scoreShared(
              pv,
              cands.map((h) => ({ key: h, model: viewOf(e, h) })),
              batch.prefix,
              batch.prompts.map((p) => p.suffix),
              choiceIds,
              { groupSize: sweep.batchSize, memoryCap: sweep.memoryCap, share: sweep.share },
            );
            const rows: (QuestionPrediction & { spec_hash: string })[] = [];
            for (const h of cands) {
              res.scores.get(h)!.forEach((lp, i) => {
                const q = batch.prompts[i]!.question;
                if (!missing.get(h)!.has(qkey(q))) return;
                rows.push({
                  spec_hash: h,
                  subject: q.subject,
                  index: q.index,
                  gold: LETTERS[q.answer],
                  pred: LETTERS[predict(lp)],
                  logprobs: lp,
                });
              });
            }
            await store.writeBatch(runId, scope, rows, {
              seconds: (performance.now() - t0) / 1000,
              layerTokensDone: res.layerTokensDone,
              layerTokensUnshared: res.layerTokensUnshared,
            });
            for (const r of rows) {
              missing.get(r.spec_hash)!.delete(qkey(r));
              left.set(r.spec_hash, left.get(r.spec_hash)! - 1);
            }
            done += rows.length;
            scored += rows.length;
            opts.onProgress?.({
              round: round.index,
              done,
              total,
              candidatesDone: round.candidates.length - [...left.values()].filter((n) => n > 0).length,
              candidates: round.candidates.length,
              subject,
            });
            if (opts.shouldStop?.()) {
              stopped = true;
              return { runId, stopped, scored, loadedModel: engine !== null, rounds };
            }
          }
        }
      }
      const metrics = new Map<string, number>();
      if (sweep.strategy.kind === 'successive_halving') {
        const keys = new Set(round.questions.map(qkey));
        const parentPreds = (await store.predictions(scope, parentHash)).filter((p) => keys.has(qkey(p)));
        for (const h of round.candidates) {
          const preds = (await store.predictions(scope, h)).filter((p) => keys.has(qkey(p)));
          metrics.set(h, candidateResult(sweep.metric, preds, parentPreds).metric);
        }
      }
      round = nextRound(sweep.strategy, candidates, order, round, metrics);
    }
    if (sweep.strategy.kind === 'sensitivity') await storeSensitivity();
    await store.finishRun(runId);
    return { runId, stopped, scored, loadedModel: engine !== null, rounds };
  } finally {
    (engine as Engine | null)?.dispose();
  }

  /** A subject's questions tokenised like `eval`: batches never mix prefixes. */
  async function scoreSubject(subject: string, items: readonly SubsetItem[]) {
    const pool = questionsOf(dataset as MmluDataset, subset.split, subject);
    const prompts = tokenizeSubject(
      tokenizer,
      dataset,
      items.map((it) => pool[it.index]!),
      sweep.shots,
    );
    return [prompts.filter((p) => p.reuse), prompts.filter((p) => !p.reuse)]
      .filter((g) => g.length > 0)
      .map((g) => ({ prefix: g[0]!.prefix, prompts: g }));
  }

  async function storeSensitivity(): Promise<void> {
    const parentPreds = await store.predictions(scope, parentHash);
    const base = candidateResult(sweep.metric, parentPreds, parentPreds).metric;
    const rows: SensitivityRow[] = [];
    for (const c of candidates) {
      const m = /^sensitivity: layer (\d+) (narrow|skip)$/.exec(c.origin);
      if (!m) continue;
      const r = candidateResult(sweep.metric, await store.predictions(scope, c.hash), parentPreds);
      rows.push({
        layer: Number(m[1]),
        kind: m[2] as 'narrow' | 'skip',
        spec_hash: c.hash,
        drop: base - r.metric,
      });
    }
    await store.putSensitivity(runId, rows);
  }
}

/** Questions grouped by subject, subjects alphabetical, indices ascending (eval's canonical order). */
function bySubject(items: readonly SubsetItem[]): [string, SubsetItem[]][] {
  const m = new Map<string, SubsetItem[]>();
  for (const it of items) {
    const list = m.get(it.subject) ?? [];
    m.set(it.subject, list);
    list.push(it);
  }
  return [...m]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([s, list]) => [s, list.sort((x, y) => x.index - y.index)] as [string, SubsetItem[]]);
}

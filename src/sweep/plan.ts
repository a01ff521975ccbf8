// What a sweep works on, derived from its file alone (so `sweep` and every `worker` derive the same): the
// candidates, the question subset and its nested order, the tokenizer; how a subject's questions are batched;
// the metrics that decide successive halving's next round.
import type { TextModel } from '../engine';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import {
  type MmluDataset,
  type QuestionPrediction,
  type Split,
  type SubsetItem,
  type TextCodec,
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
import { candidateResult } from './metrics';
import { type ShareCandidate, scoreShared } from './shared-eval';
import { modelFingerprint } from './fingerprint';
import {
  type BatchStats,
  type ResultScope,
  type RunRecord,
  type SensitivityRow,
  type SweepStore,
  PROTOCOL_VERSION,
} from './store';
import { type Round, nestedOrder, roundSizes, sensitivitySpecs } from './strategy';
import { type SweepFile, SweepFileError } from './sweep-file';
import { type SensitivityPrior, predictedDrops, sensitivityPrior } from './prior';

export interface SweepPlan {
  readonly parent: ModelConfig;
  readonly candidates: readonly Candidate[];
  readonly byHash: ReadonlyMap<string, Candidate>;
  readonly parentHash: string;
  readonly dataset: MmluDataset;
  readonly split: Split;
  /** The subset in its nested order (successive halving's rounds are prefixes of it). */
  readonly order: readonly SubsetItem[];
  readonly tokenizer: TextCodec;
  readonly choiceIds: readonly number[];
}

export const qkey = (q: { subject: string; index: number }) => `${q.subject}#${q.index}`;

/** Sensitivity's candidates: the parent, then each layer alone narrowed and each alone skipped (valid ones). */
function sensitivityCandidates(sweep: SweepFile, parent: ModelConfig): Candidate[] {
  const base = sweepCandidates(sweep, parent);
  // Default: the smallest width the sweep's candidates use (on an E4B, the official E2B's), else half.
  const parentWidths = parent.text.intermediate_size;
  const narrowest = Math.min(...base.flatMap((c) => c.spec.ffn).filter((w) => w < Math.max(...parentWidths)));
  const width =
    sweep.strategy.kind === 'sensitivity' && sweep.strategy.width !== undefined
      ? sweep.strategy.width
      : Number.isFinite(narrowest)
        ? narrowest
        : undefined;
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

export async function planSweep(sweep: SweepFile): Promise<SweepPlan> {
  const parent = loadConfig(sweep.model);
  const candidates =
    sweep.strategy.kind === 'sensitivity'
      ? sensitivityCandidates(sweep, parent)
      : sweepCandidates(sweep, parent);
  const dataset = await loadMmlu(sweep.data.mmlu);
  const subset = selectSubset(dataset, {
    split: sweep.data.split,
    subjects: sweep.data.subjects,
    categories: sweep.data.categories,
    limitPerSubject: sweep.data.limitPerSubject,
    sample: sweep.data.sample,
    seed: sweep.data.seed,
  });
  checkFastRungs(sweep, subset.items.length);
  const tokenizer = await loadTokenizer(sweep.model);
  return {
    parent,
    candidates,
    byHash: new Map(candidates.map((c) => [c.hash, c])),
    parentHash: candidates[0]!.hash,
    dataset,
    split: subset.split,
    order: nestedOrder(subset.items, sweep.data.seed),
    tokenizer,
    choiceIds: choiceTokenIds(tokenizer),
  };
}

/** fast_rungs leaves at least the final rung to exact mode (the frontier is drawn from exact results only). */
export function checkFastRungs(sweep: SweepFile, questions: number): void {
  if (sweep.strategy.kind !== 'successive_halving' || sweep.strategy.fast_rungs === 0) return;
  const sizes = roundSizes(sweep.strategy.start, sweep.strategy.eta, questions);
  if (sweep.strategy.fast_rungs >= sizes.length)
    throw new SweepFileError(
      `${sweep.file}: strategy.successive_halving.fast_rungs: ${sweep.strategy.fast_rungs} must be smaller than the number of rungs, ${sizes.length} (of ${sizes.join(', ')} questions): the final rung scores in exact mode`,
    );
}

/** A subject's questions tokenised like `eval`: batches never mix prefixes. */
export function subjectBatches(
  plan: SweepPlan,
  shots: number,
  subject: string,
  items: readonly SubsetItem[],
) {
  const pool = questionsOf(plan.dataset, plan.split, subject);
  const prompts = tokenizeSubject(
    plan.tokenizer,
    plan.dataset,
    items.map((it) => pool[it.index]!),
    shots,
  );
  return [prompts.filter((p) => p.reuse), prompts.filter((p) => !p.reuse)]
    .filter((g) => g.length > 0)
    .map((g) => ({ prefix: g[0]!.prefix, prompts: g }));
}

/** Questions grouped by subject, subjects alphabetical, indices ascending (eval's canonical order). */
export function bySubject(items: readonly SubsetItem[]): [string, SubsetItem[]][] {
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

/** The metric of each of the round's candidates on the round's questions (what successive halving ranks). */
export async function roundMetrics(
  sweep: SweepFile,
  parentHash: string,
  round: Round,
  predictions: (hash: string) => Promise<QuestionPrediction[]>,
): Promise<Map<string, number>> {
  const metrics = new Map<string, number>();
  if (sweep.strategy.kind !== 'successive_halving') return metrics;
  const keys = new Set(round.questions.map(qkey));
  const parentPreds = (await predictions(parentHash)).filter((p) => keys.has(qkey(p)));
  for (const h of round.candidates) {
    const preds = (await predictions(h)).filter((p) => keys.has(qkey(p)));
    metrics.set(h, candidateResult(sweep.metric, preds, parentPreds).metric);
  }
  return metrics;
}

export type ScoredRow = QuestionPrediction & { readonly spec_hash: string };

/**
 * Scores one batch of a subject for `models` through the shared trie; the rows are the (candidate, question)
 * pairs `wanted` asks for (the others were scored before), with the batch's counters.
 */
export async function scoreBatch(
  sweep: SweepFile,
  plan: SweepPlan,
  parentView: TextModel,
  models: readonly ShareCandidate[],
  batch: ReturnType<typeof subjectBatches>[number],
  wanted: (hash: string, key: string) => boolean,
): Promise<{ rows: ScoredRow[]; stats: BatchStats }> {
  const t0 = performance.now();
  const res = await scoreShared(
    parentView,
    models,
    batch.prefix,
    batch.prompts.map((p) => p.suffix),
    plan.choiceIds,
    { groupSize: sweep.batchSize, memoryCap: sweep.memoryCap, share: sweep.share },
  );
  const rows: ScoredRow[] = [];
  for (const { key: h } of models) {
    res.scores.get(h)!.forEach((lp, i) => {
      const q = batch.prompts[i]!.question;
      if (!wanted(h, qkey(q))) return;
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
  const stats = {
    seconds: (performance.now() - t0) / 1000,
    layerTokensDone: res.layerTokensDone,
    layerTokensUnshared: res.layerTokensUnshared,
  };
  return { rows, stats };
}

/** The run's identity: the sweep's content with its paths resolved (the same sweep from anywhere). */
export function sweepHash(sweep: SweepFile): string {
  const canonical = JSON.stringify({ raw: sweep.raw, model: sweep.model, mmlu: sweep.data.mmlu });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/**
 * The sweep's run in `store`: the checkpoint checked against the database, the run found (resumed) or
 * created (`fresh`: the previous one deleted first), its candidates recorded.
 */
export async function openRun(
  store: SweepStore,
  sweep: SweepFile,
  plan: SweepPlan,
  opts: { readonly fresh?: boolean; readonly toolVersion: string; readonly log?: (m: string) => void },
): Promise<{
  runId: number;
  resumed: RunRecord | null;
  scope: ResultScope;
  /** With `prior: sensitivity`, each candidate's drop predicted from the latest scan. */
  predicted: Map<string, number> | null;
}> {
  const log = opts.log ?? (() => undefined);
  const fingerprint = modelFingerprint(sweep.model);
  const modelPath = path.resolve(sweep.model);
  await store.checkModel(modelPath, fingerprint);
  // Exact: each round's scope takes its own precision (roundPrecision).
  const scope: ResultScope = { fingerprint, shots: sweep.shots, split: plan.split, precision: 'exact' };
  const hash = sweepHash(sweep);
  let run = await store.findRun(hash, fingerprint);
  if (run && opts.fresh) {
    await store.deleteRun(run.id);
    log(`--fresh: deleted run ${run.id} and its results`);
    run = null;
  }
  // The prior is the latest scan older than this run, so a resumed run replans with the scan it began with.
  const prior = sweep.prior ? await findPrior(store, scope, run?.id ?? Infinity) : null;
  if (sweep.prior && !prior)
    throw new SweepFileError(
      `${sweep.file}: prior: the database holds no finished sensitivity scan of ${sweep.model} with shots ${sweep.shots} on the ${plan.split} split; run a sweep with strategy: sensitivity first`,
    );
  if (prior) log(`prior: the sensitivity scan of run ${prior.run}`);
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
      split: plan.split,
      protocol: PROTOCOL_VERSION,
    }));
  if (run) log(`resuming run ${runId} (${run.status})`);
  await store.putCandidates(runId, plan.candidates);
  const predicted = prior && predictedDrops(plan.candidates, plan.parent.text.intermediate_size, prior);
  return { runId, resumed: run, scope, predicted };
}

/** The latest finished sensitivity scan of the same checkpoint, shots and split before run `before`. */
async function findPrior(
  store: SweepStore,
  scope: ResultScope,
  before: number,
): Promise<SensitivityPrior | null> {
  const scans = (await store.runs()).filter(
    (r) =>
      r.id < before &&
      r.status === 'done' &&
      r.model_fingerprint === scope.fingerprint &&
      r.shots === scope.shots &&
      r.split === scope.split &&
      r.protocol === PROTOCOL_VERSION &&
      (JSON.parse(r.strategy) as { kind?: string }).kind === 'sensitivity',
  );
  const scan = scans[scans.length - 1];
  if (!scan) return null;
  return sensitivityPrior(scan.id, await store.sensitivity(scan.id), await store.runCandidates(scan.id));
}

/** Sensitivity's rows: per layer and kind, the parent's metric minus the candidate's. */
export async function sensitivityRows(
  sweep: SweepFile,
  plan: SweepPlan,
  predictions: (hash: string) => Promise<QuestionPrediction[]>,
): Promise<SensitivityRow[]> {
  const parentPreds = await predictions(plan.parentHash);
  const base = candidateResult(sweep.metric, parentPreds, parentPreds).metric;
  const rows: SensitivityRow[] = [];
  for (const c of plan.candidates) {
    const m = /^sensitivity: layer (\d+) (narrow|skip)$/.exec(c.origin);
    if (!m) continue;
    const r = candidateResult(sweep.metric, await predictions(c.hash), parentPreds);
    rows.push({
      layer: Number(m[1]),
      kind: m[2] as 'narrow' | 'skip',
      spec_hash: c.hash,
      drop: base - r.metric,
    });
  }
  return rows;
}

// The results of a run as data (what `results --json` prints and the HTML report reads): each candidate's
// metric on the questions of the last round it reached (in that round's precision), the Pareto frontier among the
// candidates of the final round (exact results only), McNemar against the parent for frontier candidates,
// Google's published MMLU beside ours for presets.
import {
  type McNemarResult,
  type QuestionPrediction,
  SUBJECTS,
  categoryOf,
  paretoFrontier,
  wilsonInterval,
} from '../eval';
import { loadPublishedConfigs } from '../gemma3n';
import { describeSpec } from './candidates';
import { type CandidateResult, againstParent, candidateResult } from './metrics';
import type { Precision } from '../engine';
import type { ResultScope, RunRecord, StoredCandidate, SweepStore } from './store';
import { roundPrecision } from './strategy';
import type { Metric, Strategy } from './sweep-file';

export interface CandidateReport {
  /** The spec hash (stable across runs and databases). */
  readonly id: string;
  readonly label: string;
  readonly origin: string;
  readonly preset: string | null;
  readonly spec: { readonly skip: number[]; readonly ffn: number[] };
  readonly params: { readonly effective: number; readonly text_total: number; readonly layers: number };
  readonly result: CandidateResult & {
    readonly round: number;
    /** The precision of that round: 'int8' for a candidate that left in a fast rung, else 'exact'. */
    readonly precision: Precision;
    /** MMLU accuracy per category (stem, humanities, ...) on the questions scored. */
    readonly categories: Record<string, { acc: number; n: number; ci: [number, number] }>;
  };
  readonly pareto: boolean;
  /** Paired exact McNemar against the parent (frontier candidates only). */
  readonly mcnemar: McNemarJson | null;
  /** Google's published MMLU accuracy (fraction) for presets. */
  readonly published_mmlu: number | null;
  readonly predictions?: QuestionPrediction[];
}

export interface RunReport {
  readonly runs: (RunRecord & {
    readonly sweep: unknown;
    readonly rounds: number;
    readonly sharing: number | null;
  })[];
  readonly run: number;
  readonly metric: Metric;
  readonly candidates: CandidateReport[];
  readonly sensitivity: { layer: number; kind: string; id: string; drop: number }[];
}

/** `compare`'s McNemar result in the snake_case of written JSON; A = the parent, B = the candidate. */
export interface McNemarJson {
  readonly paired: number;
  readonly both_correct: number;
  readonly only_parent: number;
  readonly only_candidate: number;
  readonly both_wrong: number;
  readonly p_value: number;
  readonly significant: boolean;
  readonly alpha: number;
}

function mcnemarJson(r: McNemarResult | null): McNemarJson | null {
  if (!r) return null;
  return {
    paired: r.paired,
    both_correct: r.bothCorrect,
    only_parent: r.onlyA,
    only_candidate: r.onlyB,
    both_wrong: r.bothWrong,
    p_value: r.pValue,
    significant: r.significant,
    alpha: r.alpha,
  };
}

const qkey = (q: { subject: string; index: number }) => `${q.subject}#${q.index}`;

/** Everything about one run (default: the latest) of the database. */
export async function runReport(
  store: SweepStore,
  opts: { run?: number; predictions?: boolean } = {},
): Promise<RunReport> {
  const all = await store.runs();
  if (all.length === 0) throw new Error('the database holds no runs');
  const run = opts.run === undefined ? all[all.length - 1]! : all.find((r) => r.id === opts.run);
  if (!run) throw new RangeError(`no run ${opts.run} (runs: ${all.map((r) => r.id).join(', ')})`);
  const metric = run.metric as Metric;
  const strategy = JSON.parse(run.strategy) as Strategy;
  const scopeOf = (round: number): ResultScope => ({
    fingerprint: run.model_fingerprint,
    shots: run.shots,
    split: run.split,
    precision: roundPrecision(strategy, round),
  });
  const rounds = await store.rounds(run.id);
  const cands = await store.runCandidates(run.id);
  const parent = cands.find((c) => c.origin === 'parent');
  // The parent's predictions in each precision, read once (it is scored in every round).
  const parentBy = new Map<Precision, QuestionPrediction[]>();
  const parentPredsIn = async (p: Precision) => {
    if (!parentBy.has(p))
      parentBy.set(
        p,
        parent ? await store.predictions({ ...scopeOf(0), precision: p }, parent.spec_hash) : [],
      );
    return parentBy.get(p)!;
  };
  const parentPreds = await parentPredsIn('exact');
  const published = new Map(loadPublishedConfigs().map((p) => [p.name, p.mmluPct / 100]));
  const lastRound = Math.max(0, ...rounds.map((r) => r.round));

  const rows: { row: CandidateReport; preds: QuestionPrediction[]; final: boolean }[] = [];
  for (const c of cands) {
    const round = rounds.find((r) => r.round === c.round_reached);
    const keys = new Set((round?.questions ?? []).map(qkey));
    const scope = scopeOf(c.round_reached);
    const preds = (await store.predictions(scope, c.spec_hash)).filter((p) => keys.has(qkey(p)));
    const parentOn = (await parentPredsIn(scope.precision)).filter((p) => keys.has(qkey(p)));
    rows.push({
      row: candidateRow(c, metric, preds, parentOn, published, scope.precision),
      preds,
      final: c.round_reached === lastRound,
    });
  }
  // The frontier is drawn among the candidates that reached the last round (all of them, but for halving),
  // from exact results only (the last round is always exact; the check keeps it so).
  const finals = rows.filter((r) => r.final && r.row.result.n > 0 && r.row.result.precision === 'exact');
  const front = paretoFrontier(
    finals.map((r) => ({ params: r.row.params.effective, metric: r.row.result.metric })),
  );
  const onFront = new Set(front.map((k) => finals[k]!));
  const candidates = rows.map((r) => {
    const pareto = onFront.has(r);
    const keys = new Set(r.preds.map(qkey));
    const mcnemar =
      pareto && r.row.origin !== 'parent'
        ? mcnemarJson(
            againstParent(
              parentPreds.filter((p) => keys.has(qkey(p))),
              r.preds,
            ),
          )
        : null;
    return { ...r.row, pareto, mcnemar, ...(opts.predictions ? { predictions: r.preds } : {}) };
  });
  const scanOf = async (id: number) =>
    (await store.sensitivity(id)).map((s) => ({
      layer: s.layer,
      kind: s.kind,
      id: s.spec_hash,
      drop: s.drop,
    }));
  const sensitivity = await scanOf(run.id);
  const chosen = opts.run === undefined ? all : [run];
  return {
    runs: await Promise.all(
      chosen.map(async (r) => ({
        ...r,
        sweep: JSON.parse(r.sweep_json) as unknown,
        rounds: (await store.rounds(r.id)).length,
        sharing: r.layer_tokens_done > 0 ? r.layer_tokens_unshared / r.layer_tokens_done : null,
        // Each run's own scan, so a report can pair a sweep with the scan run of the same subset.
        sensitivity: r.id === run.id ? sensitivity : await scanOf(r.id),
      })),
    ),
    run: run.id,
    metric,
    candidates,
    sensitivity,
  };
}

/** MMLU accuracy per category (the report's bars), over the questions the candidate was scored on. */
function categoryAccuracy(
  preds: readonly QuestionPrediction[],
): Record<string, { acc: number; n: number; ci: [number, number] }> {
  const tally = new Map<string, { correct: number; n: number }>();
  for (const p of preds) {
    if (!SUBJECTS.includes(p.subject)) continue;
    const t = tally.get(categoryOf(p.subject)) ?? { correct: 0, n: 0 };
    t.n++;
    if (p.pred === p.gold) t.correct++;
    tally.set(categoryOf(p.subject), t);
  }
  return Object.fromEntries(
    [...tally].map(([cat, t]) => [cat, { acc: t.correct / t.n, n: t.n, ci: wilsonInterval(t.correct, t.n) }]),
  );
}

function candidateRow(
  c: StoredCandidate,
  metric: Metric,
  preds: QuestionPrediction[],
  parentPreds: QuestionPrediction[],
  published: ReadonlyMap<string, number>,
  precision: Precision,
): CandidateReport {
  return {
    id: c.spec_hash,
    label: describeSpec(
      { skip: c.skip, ffn: c.ffn },
      c.preset ?? (c.origin === 'parent' ? 'parent' : undefined),
    ),
    origin: c.origin,
    preset: c.preset,
    spec: { skip: c.skip, ffn: c.ffn },
    params: { effective: c.effective, text_total: c.text_total, layers: c.layers },
    result: {
      ...candidateResult(metric, preds, parentPreds),
      round: c.round_reached,
      precision,
      categories: categoryAccuracy(preds),
    },
    pareto: false,
    mcnemar: null,
    published_mmlu: c.preset ? (published.get(c.preset) ?? null) : null,
  };
}

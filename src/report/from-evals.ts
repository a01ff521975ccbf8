// A report of `eval` results files: the submodels of one checkpoint scored on one subset become the
// candidates of a one-run report, so a handful of evaluations can be looked at like a sweep.
import { type MixNMatchSpec, type TextConfig, identitySpec, textParams } from '../gemma3n';
import { JsonReader, ReportInputError } from './parse';
import { paretoFrontier } from './pareto';
import type { CategoryResult, SweepCandidate, SweepResults } from './types';

/** What a report needs from one `eval` results file. */
export interface EvalSummary {
  readonly file: string;
  /** Checkpoint folder that was scored (absolute). */
  readonly model: string;
  /** The elastic submodel, or null for the checkpoint itself. */
  readonly spec: MixNMatchSpec | null;
  readonly subset_id: string;
  readonly shots: number;
  readonly backend: string;
  readonly overall: { readonly acc: number; readonly n: number; readonly ci: readonly [number, number] };
  readonly categories: Readonly<Record<string, CategoryResult>>;
  readonly seconds: number;
  readonly tokens_processed: number;
  readonly tokens_naive: number;
}

/** True when `json` looks like an `eval` results file. */
export function isEvalResults(json: unknown): boolean {
  return typeof json === 'object' && json !== null && 'overall' in json && 'subset' in json;
}

/** Validates the fields of an `eval` results file that a report uses. */
export function parseEvalResults(json: unknown, file: string): EvalSummary {
  const r = new JsonReader(file);
  const o = r.obj(json, '(top level)');
  let spec: MixNMatchSpec | null = null;
  if (o.spec !== null && o.spec !== undefined) {
    const s = r.obj(o.spec, 'spec');
    spec = {
      skip: r.arr(s.skip, 'spec.skip').map((x, i) => r.int(x, `spec.skip[${i}]`)),
      ffn: r.arr(s.ffn, 'spec.ffn').map((x, i) => r.int(x, `spec.ffn[${i}]`, 1)),
    };
  }
  const subset = r.obj(o.subset, 'subset');
  const overall = r.obj(o.overall, 'overall');
  const timing = r.obj(o.timing, 'timing');
  const categories: Record<string, CategoryResult> = {};
  for (const [name, c] of Object.entries(r.obj(o.categories ?? {}, 'categories'))) {
    const co = r.obj(c, `categories.${name}`);
    categories[name] = {
      acc: r.fraction(co.acc, `categories.${name}.acc`),
      n: r.int(co.n, `categories.${name}.n`),
      ci: r.interval(co.ci, `categories.${name}.ci`),
    };
  }
  return {
    file,
    model: r.str(o.model, 'model'),
    spec,
    subset_id: r.str(subset.id, 'subset.id'),
    shots: r.int(o.shots, 'shots'),
    backend: typeof o.backend === 'string' ? o.backend : 'unknown',
    overall: {
      acc: r.fraction(overall.acc, 'overall.acc'),
      n: r.int(overall.n, 'overall.n'),
      ci: r.interval(overall.ci, 'overall.ci'),
    },
    categories,
    seconds: r.num(timing.seconds, 'timing.seconds'),
    tokens_processed: r.int(timing.tokens_processed, 'timing.tokens_processed'),
    tokens_naive: r.int(timing.tokens_naive, 'timing.tokens_naive'),
  };
}

export interface FromEvalsOptions {
  readonly toolVersion: string;
  /** Published configs by spec, to name candidates that are one. */
  readonly presets?: readonly {
    readonly name: string;
    readonly skip: readonly number[];
    readonly ffn: readonly number[];
  }[];
}

const sameList = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * One run whose candidates are the evaluated submodels of `parent` (the config of the checkpoint they all
 * name). Results of different checkpoints, subsets or shot counts are refused rather than mixed.
 */
export function sweepResultsFromEvals(
  evals: readonly EvalSummary[],
  parent: TextConfig,
  opts: FromEvalsOptions,
): SweepResults {
  const first = evals[0];
  if (!first) throw new ReportInputError('give at least one eval results file');
  for (const e of evals.slice(1)) {
    const differs = (what: string, a: unknown, b: unknown) =>
      new ReportInputError(
        `${e.file}: ${what} ${JSON.stringify(b)} differs from ${first.file}'s ${JSON.stringify(a)} (a report compares one checkpoint's submodels on one subset)`,
      );
    if (e.model !== first.model) throw differs('model', first.model, e.model);
    if (e.subset_id !== first.subset_id) throw differs('subset', first.subset_id, e.subset_id);
    if (e.shots !== first.shots) throw differs('shots', first.shots, e.shots);
  }
  const names = new Map<string, number>();
  const rows = evals.map((e) => {
    const spec = e.spec ?? identitySpec(parent.intermediate_size);
    if (
      spec.skip.length + spec.ffn.length !== parent.num_hidden_layers ||
      spec.skip.some((l) => l >= parent.num_hidden_layers)
    )
      throw new ReportInputError(
        `${e.file}: spec does not fit the ${parent.num_hidden_layers}-layer checkpoint ${e.model}`,
      );
    const base = (e.file.split(/[\\/]/).pop() ?? e.file).replace(/\.json$/i, '');
    const seen = names.get(base) ?? 0;
    names.set(base, seen + 1);
    const p = textParams(parent, spec);
    return { e, spec, id: seen === 0 ? base : `${base}#${seen + 1}`, params: p, kept: spec.ffn.length };
  });
  const front = new Set(
    paretoFrontier(rows.map((r) => ({ params: r.params.effective, metric: r.e.overall.acc }))),
  );
  const candidates: SweepCandidate[] = rows.map((r, i) => ({
    id: r.id,
    spec: { skip: [...r.spec.skip], ffn: [...r.spec.ffn] },
    params: { effective: r.params.effective, text_total: r.params.textTotal, layers: r.params.layers },
    result: {
      metric: r.e.overall.acc,
      acc: r.e.overall.acc,
      n: r.e.overall.n,
      ci: r.e.overall.ci,
      categories: r.e.categories,
    },
    pareto: front.has(i),
    preset:
      opts.presets?.find((p) => sameList(p.skip, r.spec.skip) && sameList(p.ffn, r.spec.ffn))?.name ?? null,
  }));
  const backends = [...new Set(evals.map((e) => e.backend))];
  return {
    runs: [
      {
        id: 'eval',
        sweep_file: null,
        model: first.model,
        tool_version: opts.toolVersion,
        model_fingerprint: null,
        backend: backends.join(', '),
        subset_id: first.subset_id,
        shots: first.shots,
        metric: 'accuracy',
        strategy: `${evals.length} eval results files`,
        timings: { score: evals.reduce((s, e) => s + e.seconds, 0) },
        // Each evaluation's own saving from running every few-shot prefix once (no sharing across files).
        work: {
          layer_tokens_done: rows.reduce((s, r) => s + r.e.tokens_processed * r.kept, 0),
          layer_tokens_needed: rows.reduce((s, r) => s + r.e.tokens_naive * r.kept, 0),
        },
      },
    ],
    candidates,
  };
}

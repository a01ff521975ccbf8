// export-best: the best candidates of a run per parameter budget (its Pareto frontier, best metric first,
// under an optional parameter cap) as sliced checkpoints, all written in one pass over the parent's shards,
// each with a model card carrying the measured results and the sweep's provenance.
import * as path from 'node:path';
import { Checkpoint, UserInputError } from '../formats';
import { loadConfig, loadPublishedConfigs } from '../gemma3n';
import { executePlans, planSlice, renderCard, sourceTensors, type ExecuteResult } from '../slicing';
import { modelFingerprint } from './fingerprint';
import { databaseName } from './open-store';
import { type CandidateReport, type RunReport, runReport } from './report';
import type { SweepStore } from './store';

export interface ExportBestOptions {
  readonly run?: number;
  readonly top: number;
  readonly maxParams?: number;
  readonly outDir: string;
  readonly force?: boolean;
  readonly db: string;
  readonly toolVersion: string;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export interface ExportedCandidate {
  readonly candidate: CandidateReport;
  readonly result: ExecuteResult;
}

/** The frontier candidates to export (parent excluded), best metric first, at most `top`. */
export function bestCandidates(report: RunReport, top: number, maxParams?: number): CandidateReport[] {
  return report.candidates
    .filter(
      (c) =>
        c.pareto && c.origin !== 'parent' && (maxParams === undefined || c.params.effective <= maxParams),
    )
    .sort((a, b) => b.result.metric - a.result.metric || a.params.effective - b.params.effective)
    .slice(0, top);
}

/** The measured results and provenance of `c`, the section export-best appends to its model card. */
export function measuredSection(c: CandidateReport, report: RunReport, db: string): string {
  const run = report.runs.find((r) => r.id === report.run)!;
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);
  const lines = [
    '## Measured (matformer-lab sweep)',
    '',
    `| | |`,
    `| --- | --- |`,
    `| ${report.metric} | ${pct(c.result.metric)} (95% CI ${pct(c.result.ci[0])}-${pct(c.result.ci[1])}, n = ${c.result.n}) |`,
    `| MMLU accuracy | ${pct(c.result.acc)} |`,
    ...(c.result.agreement !== null
      ? [
          `| top-1 agreement with the parent | ${pct(c.result.agreement)} (mean KL ${c.result.kl?.toFixed(4)} nats) |`,
        ]
      : []),
    ...(c.mcnemar
      ? [
          `| exact McNemar vs the parent | p = ${c.mcnemar.p_value.toPrecision(3)} (${c.mcnemar.paired} paired) |`,
        ]
      : []),
    ...(c.published_mmlu !== null ? [`| Google's published MMLU | ${pct(c.published_mmlu)} |`] : []),
    `| effective parameters | ${c.params.effective.toLocaleString('en-US')} |`,
    '',
    `Provenance: run ${run.id} of \`${databaseName(db)}\` (sweep \`${run.sweep_file}\`, ${run.shots}-shot ${run.split}, ` +
      `${run.backend} backend, parent fingerprint \`${run.model_fingerprint}\`, matformer-lab ${run.tool_version}); ` +
      `candidate id \`${c.id}\`. On the Pareto frontier of effective parameters against ${report.metric}.`,
    '',
    `Reproduce the numbers: \`matformer-lab results ${databaseName(db)} --run ${run.id} --json\``,
    '',
  ];
  return lines.join('\n');
}

export interface BestSelection {
  readonly report: RunReport;
  readonly run: RunReport['runs'][number];
  /** The run's frontier candidates (parent excluded) within the parameter cap, best metric first. */
  readonly ranked: readonly CandidateReport[];
}

/**
 * What export-best may export from a run: its frontier ranked, after checking that the parent still has the
 * fingerprint the run saw. `top` bounds nothing here: a format that refuses some candidates takes the next.
 */
export async function selectBest(
  store: SweepStore,
  opts: Pick<ExportBestOptions, 'run' | 'maxParams'>,
): Promise<BestSelection> {
  const report = await runReport(store, { run: opts.run });
  const run = report.runs.find((r) => r.id === report.run)!;
  const ranked = bestCandidates(report, Infinity, opts.maxParams);
  if (ranked.length === 0)
    throw new UserInputError(
      `--top: run ${run.id} has no frontier candidate besides the parent${opts.maxParams !== undefined ? ` within --max-params ${opts.maxParams}` : ''}`,
    );
  const fp = modelFingerprint(run.model_path);
  if (fp !== run.model_fingerprint)
    throw new UserInputError(
      `${run.model_path}: the checkpoint changed since run ${run.id} scored it (fingerprint ${run.model_fingerprint} → ${fp})`,
    );
  return { report, run, ranked };
}

/** Where export-best puts its k-th output (0-based): `<out>/01-<id>`. */
export function bestOutputName(outDir: string, k: number, c: CandidateReport): string {
  return path.join(outDir, `${String(k + 1).padStart(2, '0')}-${c.id}`);
}

export async function exportBest(store: SweepStore, opts: ExportBestOptions): Promise<ExportedCandidate[]> {
  const { report, run, ranked } = await selectBest(store, opts);
  const chosen = ranked.slice(0, opts.top);
  const parent = loadConfig(run.model_path);
  const presets = new Map(loadPublishedConfigs().map((p) => [p.name, p]));
  const ckpt = Checkpoint.open(run.model_path);
  try {
    const tensors = sourceTensors(ckpt);
    const outputs = chosen.map((c, i) => {
      const plan = planSlice(parent, tensors, c.spec);
      const outDir = bestOutputName(opts.outDir, i, c);
      const card =
        renderCard({
          plan,
          srcDir: path.resolve(run.model_path),
          outDir: path.resolve(outDir),
          preset: c.preset ? presets.get(c.preset) : undefined,
          version: opts.toolVersion,
        }) +
        '\n' +
        measuredSection(c, report, opts.db);
      return { plan, outDir, card };
    });
    const results = await executePlans(outputs, ckpt, {
      force: opts.force,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
    return results.map((result, i) => ({ candidate: chosen[i]!, result }));
  } finally {
    ckpt.close();
  }
}

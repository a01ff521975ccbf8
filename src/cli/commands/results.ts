// `matformer-lab results`: the candidates of a sweep run as a table, JSON or CSV.
import type { Argv, CommandModule } from 'yargs';
import { UserInputError } from '../../formats';
import {
  type DistributedProgress,
  type RunReport,
  PostgresSweepStore,
  closeSweepStore,
  distributedProgress,
  openSweepStore,
  runReport,
} from '../../sweep';

interface ResultsArgs {
  db: string;
  run?: number;
  json: boolean;
  csv: boolean;
  predictions: boolean;
}

const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : `${(x * 100).toFixed(1)}%`);
const billions = (n: number) =>
  n >= 1e8 ? `${(n / 1e9).toFixed(3)}B` : n >= 1e5 ? `${(n / 1e6).toFixed(2)}M` : String(n);

/**
 * The candidates as a plain-text table on stdout, frontier first marked `*`. A run with fast rungs gets a
 * precision column: a candidate that left in an int8 rung shows its int8 metric, never passed off as exact.
 */
export function printTable(report: RunReport, all: boolean): void {
  const rows = [...report.candidates].sort((a, b) => b.params.effective - a.params.effective);
  const shown = all ? rows : rows.filter((r) => r.pareto || r.origin === 'parent' || r.preset);
  const mixed = report.candidates.some((r) => r.result.precision !== 'exact');
  const header = [
    '',
    'candidate',
    'params',
    report.metric,
    '95% CI',
    'n',
    'acc',
    ...(mixed ? ['precision'] : []),
    'published',
    'McNemar p',
  ];
  const table = shown.map((r) => [
    r.pareto ? '*' : '',
    r.label.length > 60 ? r.label.slice(0, 57) + '...' : r.label,
    billions(r.params.effective),
    pct(r.result.metric),
    `${pct(r.result.ci[0])}-${pct(r.result.ci[1])}`,
    String(r.result.n),
    pct(r.result.acc),
    ...(mixed ? [r.result.precision] : []),
    r.published_mmlu === null ? '' : pct(r.published_mmlu),
    r.mcnemar ? r.mcnemar.p_value.toPrecision(3) : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  process.stdout.write([line(header), ...table.map(line)].join('\n') + '\n');
  const hidden = rows.length - shown.length;
  if (hidden > 0)
    process.stdout.write(`(* = Pareto frontier; ${hidden} dominated candidates not shown, see --csv)\n`);
}

/** A distributed run's progress: per round (jobs, pairs) and per worker. */
export function printProgress(p: DistributedProgress): void {
  const per =
    p.settings.candidatesPerJob > 0 ? `${p.settings.candidatesPerJob} candidates` : 'all candidates';
  const lines = [
    `distributed: queue ${p.queue}, jobs of ${p.settings.questionsPerJob} questions × ${per}, lease ${p.settings.leaseSeconds} s`,
    ...p.rungs.map(
      (r) =>
        `  round ${r.round}: ${r.jobs_done}/${r.jobs} jobs, ${r.pairs_done}/${r.pairs} pairs` +
        (r.completed_at ? ', complete' : ''),
    ),
    ...p.workers.map(
      (w) =>
        `  worker ${w.name} (${w.backend ?? '?'}, ${w.status ?? '?'}, last seen ${w.last_seen ?? '-'}): ` +
        `${w.jobs} jobs, ${w.results} results, ${w.seconds.toFixed(1)} s`,
    ),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

/** ", the first 2 in int8" for a run with fast rungs (its stored strategy), else nothing. */
function fastRungs(strategy: string): string {
  const s = JSON.parse(strategy) as { fast_rungs?: number };
  return s.fast_rungs ? `, the first ${s.fast_rungs} in int8` : '';
}

function csvCell(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const resultsCommand: CommandModule<object, ResultsArgs> = {
  command: 'results <db>',
  describe: 'Show the candidates of a sweep run: metric with 95% CI, parameters, Pareto frontier',
  builder: (y: Argv<object>) =>
    y
      .positional('db', {
        type: 'string',
        demandOption: true,
        describe: 'results database of `sweep`: an SQLite file or a postgres:// URL',
      })
      .option('run', { type: 'number', describe: 'run id (default: the latest)' })
      .option('json', { type: 'boolean', default: false, describe: 'print {runs, candidates} as JSON' })
      .option('csv', { type: 'boolean', default: false, describe: 'print one CSV row per candidate' })
      .option('predictions', {
        type: 'boolean',
        default: false,
        describe: 'with --json: per-question records',
      })
      .example('$0 results sweeps.sqlite', '')
      .example(
        '$0 results sweeps.sqlite --run 2 --json --predictions > run2.json',
        '',
      ) as unknown as Argv<ResultsArgs>,
  handler: async (argv) => {
    if (argv.json && argv.csv) throw new UserInputError('--csv: cannot be combined with --json');
    if (argv.predictions && !argv.json) throw new UserInputError('--predictions: only with --json');
    if (argv.run !== undefined && !(Number.isInteger(argv.run) && argv.run >= 1))
      throw new UserInputError(`--run: expected a run id (positive integer), got ${argv.run}`);
    const store = await openSweepStore(argv.db, { readonly: true });
    try {
      let report: RunReport;
      try {
        report = await runReport(store, { run: argv.run, predictions: argv.predictions });
      } catch (e) {
        if (e instanceof RangeError || (e as Error).message === 'the database holds no runs')
          throw new UserInputError(`${argv.run === undefined ? argv.db : '--run'}: ${(e as Error).message}`);
        throw e;
      }
      const progress =
        store instanceof PostgresSweepStore ? await distributedProgress(store, report.run) : null;
      if (argv.json) {
        const out = progress ? { ...report, distributed: progress } : report;
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      } else if (argv.csv) {
        const cols = [
          'id',
          'label',
          'effective_params',
          'metric',
          'ci_low',
          'ci_high',
          'n',
          'acc',
          'precision',
          'agreement',
          'kl',
          'pareto',
          'mcnemar_p',
          'published_mmlu',
          'skip',
          'ffn',
        ];
        const lines = report.candidates.map((c) =>
          [
            c.id,
            c.label,
            c.params.effective,
            c.result.metric,
            c.result.ci[0],
            c.result.ci[1],
            c.result.n,
            c.result.acc,
            c.result.precision,
            c.result.agreement,
            c.result.kl,
            c.pareto,
            c.mcnemar?.p_value ?? '',
            c.published_mmlu ?? '',
            c.spec.skip.join(' '),
            c.spec.ffn.join(' '),
          ]
            .map(csvCell)
            .join(','),
        );
        process.stdout.write([cols.join(','), ...lines].join('\n') + '\n');
      } else {
        const r = report.runs.find((x) => x.id === report.run)!;
        process.stdout.write(
          `run ${r.id} (${r.status}): ${r.sweep_file}, metric ${report.metric}, ${r.rounds} round(s)${fastRungs(r.strategy)}, ${report.candidates.length} candidates` +
            (r.sharing ? `, ${r.sharing.toFixed(2)}× fewer layer-token evaluations than one by one` : '') +
            '\n',
        );
        if (progress) printProgress(progress);
        printTable(report, false);
      }
    } finally {
      await closeSweepStore(store);
    }
  },
};

// `matformer-lab report`: one self-contained HTML page of a sweep's results (or of a few eval results files).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { OutputGuard, UserInputError, formatBytes } from '../../formats';
import { loadConfig, loadPublishedConfigs } from '../../gemma3n';
import {
  type SweepResults,
  fileSafeName,
  isEvalResults,
  isSweepResults,
  loadPlotlyBundle,
  parseEvalResults,
  parseSweepResults,
  renderReport,
  selectRun,
  sweepResultsFromEvals,
} from '../../report';
import { closeSweepStore, isPostgresUrl, openSweepStore, runReport } from '../../sweep';
import { version } from '../../../package.json';

/** Where reports go unless --out says otherwise (git-ignored, beside reports/README.md). */
export const DEFAULT_REPORTS_DIR = 'reports';

interface ReportArgs {
  inputs: string[];
  run?: string;
  out?: string;
  force: boolean;
}

function readJson(file: string): unknown {
  if (!fs.existsSync(file)) throw new UserInputError(`${file}: no such file`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw new UserInputError(
      `${file}: not JSON; expected the output of \`results --json\` or an eval results file`,
    );
  }
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

function isSqliteFile(file: string): boolean {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(SQLITE_MAGIC.length);
    return fs.readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_MAGIC);
  } finally {
    fs.closeSync(fd);
  }
}

/** A sweep database: the same object `results --json` prints, for one run (default: the latest). */
async function loadDatabaseReport(file: string, run: string | undefined): Promise<SweepResults> {
  const id = run === undefined ? undefined : Number(run);
  if (id !== undefined && !(Number.isInteger(id) && id >= 1))
    throw new UserInputError(`--run: expected a run id (positive integer) for a database, got ${run}`);
  const store = await openSweepStore(file, { readonly: true });
  try {
    const report = await runReport(store, { run: id }).catch((e: unknown) => {
      if (e instanceof RangeError || (e as Error).message === 'the database holds no runs')
        throw new UserInputError(`${id === undefined ? file : '--run'}: ${(e as Error).message}`);
      throw e;
    });
    return parseSweepResults(JSON.parse(JSON.stringify(report)) as unknown, file);
  } finally {
    await closeSweepStore(store);
  }
}

/** A sweep database, or what `loadReportInput` reads. */
async function loadInputs(files: readonly string[], run: string | undefined): Promise<SweepResults> {
  const first = files[0];
  if (first === undefined || !(isPostgresUrl(first) || isSqliteFile(first))) return loadReportInput(files);
  if (files.length > 1) throw new UserInputError(`${files[1]}: give one sweep database`);
  return loadDatabaseReport(first, run);
}

/** The report's input: one `results --json` file, or eval results files of one checkpoint and subset. */
export function loadReportInput(files: readonly string[]): SweepResults {
  const jsons = files.map((f) => ({ file: f, json: readJson(f) }));
  const first = jsons[0]!;
  if (isSweepResults(first.json)) {
    if (jsons.length > 1)
      throw new UserInputError(
        `${jsons[1]!.file}: give one \`results --json\` file (or several eval results files)`,
      );
    return parseSweepResults(first.json, first.file);
  }
  const evals = jsons.map(({ file, json }) => {
    if (!isEvalResults(json))
      throw new UserInputError(`${file}: expected the output of \`results --json\` or an eval results file`);
    return parseEvalResults(json, file);
  });
  const model = evals[0]!.model;
  if (!fs.existsSync(path.join(model, 'config.json')))
    throw new UserInputError(
      `${evals[0]!.file}: its model ${model} has no config.json (needed for parameter counts)`,
    );
  const presets = loadPublishedConfigs();
  return sweepResultsFromEvals(evals, loadConfig(model).text, { toolVersion: version, presets });
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <inputs..>',
  describe: 'Write a self-contained HTML report (frontier, per-layer widths, table) of sweep or eval results',
  builder: (y: Argv<object>) =>
    y
      .positional('inputs', {
        type: 'string',
        array: true,
        demandOption: true,
        describe:
          'a sweep database (SQLite file or postgres:// URL), `results --json` output, or eval results files of one checkpoint',
      })
      .option('run', { type: 'string', describe: 'run id to show (default: the last run)' })
      .option('out', {
        alias: 'o',
        type: 'string',
        describe: `HTML file to write (default: ${DEFAULT_REPORTS_DIR}/report-<run>.html)`,
      })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing --out' })
      .example('$0 report results.json --out sweep.html', 'a sweep, from `results --json`')
      .example(
        '$0 report parent.json e2b.json mix.json',
        'eval results of submodels of one checkpoint',
      ) as unknown as Argv<ReportArgs>,
  handler: async (argv) => {
    const results = await loadInputs(argv.inputs, argv.run);
    const run = selectRun(results, argv.run);
    const out = argv.out ?? path.join(DEFAULT_REPORTS_DIR, `report-${fileSafeName(String(run.id))}.html`);
    if (argv.out === undefined) fs.mkdirSync(DEFAULT_REPORTS_DIR, { recursive: true });
    // The output guard: never one of the inputs, an existing page only with --force (checked again at the
    // rename), and a lock so two reports writing one page do not interleave.
    const guard = OutputGuard.acquire({
      outputs: [{ flag: '--out', path: out, kind: 'file' }],
      inputs: argv.inputs.map((f) => ({ flag: 'file', path: f })),
      force: argv.force,
      onNotice: (n) => process.stderr.write(`${n}\n`),
    });
    let html: string;
    try {
      html = renderReport(results, {
        runId: run.id,
        published: loadPublishedConfigs(),
        plotlyJs: loadPlotlyBundle(),
        generatedAt: new Date().toISOString(),
      });
      await guard.writeFile('--out', (tmp) => fs.promises.writeFile(tmp, html));
    } finally {
      guard.release();
    }
    const mine = results.candidates.filter(
      (c) => c.run_id === undefined || String(c.run_id) === String(run.id),
    );
    process.stdout.write(
      `wrote ${out} (${formatBytes(Buffer.byteLength(html))}): run ${String(run.id)}, ${mine.length} candidates, ` +
        `${mine.filter((c) => c.pareto).length} on the frontier\n`,
    );
  },
};

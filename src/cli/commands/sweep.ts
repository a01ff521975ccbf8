// `matformer-lab sweep`: search Mix-n-Match submodels described by a sweep file; results go to SQLite, a
// killed or interrupted sweep resumes with the same command, a finished one does nothing.
import type { Argv, CommandModule } from 'yargs';
import { InterruptedError } from '../../formats';
import {
  type SweepStore,
  SqliteSweepStore,
  checkPostgresUrl,
  closeSweepStore,
  isPostgresUrl,
  openSweepStore,
  readSweepFile,
  redactUrl,
  runReport,
  runSweep,
} from '../../sweep';
import { interruptible } from '../boundary';
import { SweepProgressBars } from '../sweep-progress';
import { printTable } from './results';
import { type EnqueueArgs, ENQUEUE_OPTIONS, enqueue } from './worker';
import { PRECISION_OPTIONS, type PrecisionFlags, exactOnlyPrecision } from '../flags';

interface SweepArgs extends EnqueueArgs, PrecisionFlags {
  file: string;
  db: string;
  fresh: boolean;
}

declare const __TOOL_VERSION__: string | undefined;
export const TOOL_VERSION = typeof __TOOL_VERSION__ === 'string' ? __TOOL_VERSION__ : '0.1.0';

export const sweepCommand: CommandModule<object, SweepArgs> = {
  command: 'sweep <file>',
  describe: 'Search Mix-n-Match submodels from a sweep file (YAML/JSON); results in SQLite, resumable',
  builder: (y: Argv<object>) =>
    y
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'sweep file (.yaml, .yml or .json)',
      })
      .option('db', {
        type: 'string',
        default: 'results.sqlite',
        describe: 'results database: an SQLite file, or a postgres:// URL',
      })
      .option('fresh', {
        type: 'boolean',
        default: false,
        describe: 'start over: delete this sweep’s previous run and its results first',
      })
      .options(ENQUEUE_OPTIONS)
      .options(PRECISION_OPTIONS)
      .example('$0 sweep examples/sweep-blocks.yaml --db sweeps.sqlite', '')
      .example('$0 results sweeps.sqlite', '')
      .example(
        '$0 sweep e4b.yaml --db postgres://lab@db-host/sweeps --enqueue',
        'jobs for `worker`s',
      ) as unknown as Argv<SweepArgs>,
  handler: async (argv) => {
    exactOnlyPrecision(argv, 'sweep');
    const sweep = readSweepFile(argv.file);
    if (isPostgresUrl(argv.db)) checkPostgresUrl(argv.db, `--db ${redactUrl(argv.db)}`);
    if (argv.enqueue) return enqueue(argv, sweep, TOOL_VERSION);
    const notice = (m: string) => process.stderr.write(`${m}\n`);
    // Opened once the sweep has checked out: a bad sweep file never creates a database. For SQLite a
    // writer's lock beside it makes a second sweep on the same database refuse (PostgreSQL's unique keys
    // and job queue are what keep concurrent writers apart there).
    let store: SweepStore | null = null;
    const openStore = async (): Promise<SweepStore> =>
      (store ??= isPostgresUrl(argv.db)
        ? await openSweepStore(argv.db, { flag: '--db' })
        : SqliteSweepStore.open(argv.db, {
            flag: '--db',
            onNotice: notice,
            inputs: [
              { flag: 'model', path: sweep.model },
              { flag: 'data.mmlu', path: sweep.data.mmlu },
            ],
          }));
    const bars = new SweepProgressBars();
    try {
      // Ctrl-C: the batch in flight is finished and stored, then the sweep stops (a second Ctrl-C quits at
      // once; the batch in flight is then lost, like a kill).
      const outcome = await interruptible((signal) => {
        signal.addEventListener('abort', () =>
          notice('\nstopping after the batch in flight (Ctrl-C again to quit at once)'),
        );
        return runSweep({
          sweep,
          store: openStore,
          fresh: argv.fresh,
          toolVersion: TOOL_VERSION,
          log: notice,
          onLoaded: (e, s) =>
            notice(`loaded ${sweep.model} on ${e.backend.name} (${e.precision}) in ${s.toFixed(1)} s`),
          onProgress: (p) =>
            bars.update({
              round: p.round,
              done: p.done,
              total: p.total,
              subject: p.subject,
              candidates: p.perCandidate,
            }),
          shouldStop: () => signal.aborted,
        });
      });
      bars.stop();
      if (outcome.stopped)
        throw new InterruptedError(
          `${outcome.scored} new results saved in ${argv.db}; run the same command to resume`,
        );
      const report = await runReport(await openStore(), { run: outcome.runId });
      const run = report.runs[0]!;
      notice(
        `run ${outcome.runId}: ${outcome.rounds} round(s), ${outcome.scored} new results` +
          (outcome.loadedModel ? '' : ' (nothing missing: the model was not loaded)') +
          (run.sharing
            ? `; layer-token evaluations ${run.layer_tokens_done} vs ${run.layer_tokens_unshared} one by one (${run.sharing.toFixed(2)}× less)`
            : ''),
      );
      printTable(report, false);
    } finally {
      bars.stop();
      const open = store as SweepStore | null;
      if (open) await closeSweepStore(open);
    }
  },
};

// `matformer-lab sweep`: search Mix-n-Match submodels described by a sweep file; results go to SQLite, a
// killed or interrupted sweep resumes with the same command, a finished one does nothing.
import type { Argv, CommandModule } from 'yargs';
import {
  type SweepStore,
  checkPostgresUrl,
  closeSweepStore,
  isPostgresUrl,
  openSweepStore,
  readSweepFile,
  redactUrl,
  runReport,
  runSweep,
} from '../../sweep';
import { ProgressBars } from '../progress';
import { printTable } from './results';
import { type EnqueueArgs, ENQUEUE_OPTIONS, enqueue } from './worker';

interface SweepArgs extends EnqueueArgs {
  file: string;
  db: string;
  fresh: boolean;
}

/** Exit status of a process ended by Ctrl-C (128 + SIGINT). */
const EXIT_INTERRUPTED = 130;

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
      .example('$0 sweep examples/sweep-blocks.yaml --db sweeps.sqlite', '')
      .example('$0 results sweeps.sqlite', '')
      .example(
        '$0 sweep e4b.yaml --db postgres://lab@db-host/sweeps --enqueue',
        'jobs for `worker`s',
      ) as unknown as Argv<SweepArgs>,
  handler: async (argv) => {
    const sweep = readSweepFile(argv.file);
    if (isPostgresUrl(argv.db)) checkPostgresUrl(argv.db, `--db ${redactUrl(argv.db)}`);
    if (argv.enqueue) return enqueue(argv, sweep, TOOL_VERSION);
    // Opened once the sweep has checked out: a bad sweep file never creates a database.
    let store: SweepStore | null = null;
    const openStore = async () => (store ??= await openSweepStore(argv.db, { flag: '--db' }));
    let stop = false;
    const onSignal = () => {
      if (stop) process.exit(EXIT_INTERRUPTED);
      stop = true;
      process.stderr.write('\nstopping after the batch in flight (Ctrl-C again to quit at once)\n');
    };
    process.on('SIGINT', onSignal);
    let bars: ProgressBars | null = null;
    let round = -1;
    let overall: ReturnType<ProgressBars['add']> | null = null;
    let perCandidate: ReturnType<ProgressBars['add']> | null = null;
    const started = Date.now();
    try {
      const outcome = await runSweep({
        sweep,
        store: openStore,
        fresh: argv.fresh,
        toolVersion: TOOL_VERSION,
        log: (m) => process.stderr.write(`${m}\n`),
        onLoaded: (e, s) =>
          process.stderr.write(`loaded ${sweep.model} on ${e.backend.name} in ${s.toFixed(1)} s\n`),
        onProgress: (p) => {
          if (p.round !== round) {
            bars?.stop();
            bars = new ProgressBars();
            round = p.round;
            overall = bars.add(`round ${p.round}`, p.total);
            perCandidate = bars.add('candidates', p.candidates);
          }
          const secs = Math.max((Date.now() - started) / 1000, 1e-3);
          overall!.update(p.done, `questions×candidates, ${(p.done / secs).toFixed(1)}/s (${p.subject})`);
          perCandidate!.update(p.candidatesDone, 'complete');
        },
        shouldStop: () => stop,
      });
      (bars as ProgressBars | null)?.stop();
      bars = null;
      if (outcome.stopped) {
        process.stderr.write(
          `stopped: ${outcome.scored} results saved in ${argv.db}; run the same command to resume\n`,
        );
        const open = store as SweepStore | null;
        if (open) await closeSweepStore(open);
        process.exit(EXIT_INTERRUPTED);
      }
      const report = await runReport(await openStore(), { run: outcome.runId });
      const run = report.runs[0]!;
      process.stderr.write(
        `run ${outcome.runId}: ${outcome.rounds} round(s), ${outcome.scored} new results` +
          (outcome.loadedModel ? '' : ' (nothing missing: the model was not loaded)') +
          (run.sharing
            ? `; layer-token evaluations ${run.layer_tokens_done} vs ${run.layer_tokens_unshared} one by one (${run.sharing.toFixed(2)}× less)`
            : '') +
          '\n',
      );
      printTable(report, false);
    } finally {
      (bars as ProgressBars | null)?.stop();
      process.off('SIGINT', onSignal);
      const open = store as SweepStore | null;
      if (open) await closeSweepStore(open);
    }
  },
};

// `matformer-lab sweep`: search Mix-n-Match submodels described by a sweep file; results go to SQLite, a
// killed or interrupted sweep resumes with the same command, a finished one does nothing.
import type { Argv, CommandModule } from 'yargs';
import { InterruptedError } from '../../formats';
import { SqliteSweepStore, readSweepFile, runReport, runSweep } from '../../sweep';
import { interruptible } from '../boundary';
import { SweepProgressBars } from '../sweep-progress';
import { printTable } from './results';

interface SweepArgs {
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
      .option('db', { type: 'string', default: 'results.sqlite', describe: 'SQLite results database' })
      .option('fresh', {
        type: 'boolean',
        default: false,
        describe: 'start over: delete this sweep’s previous run and its results first',
      })
      .example('$0 sweep examples/sweep-blocks.yaml --db sweeps.sqlite', '')
      .example('$0 results sweeps.sqlite', '') as unknown as Argv<SweepArgs>,
  handler: async (argv) => {
    const sweep = readSweepFile(argv.file);
    const notice = (m: string) => process.stderr.write(`${m}\n`);
    // Opened once the sweep has checked out: a bad sweep file never creates a database. A writer's lock
    // beside it makes a second sweep on the same database refuse.
    let store: SqliteSweepStore | null = null;
    const openStore = () =>
      (store ??= SqliteSweepStore.open(argv.db, {
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
          onLoaded: (e, s) => notice(`loaded ${sweep.model} on ${e.backend.name} in ${s.toFixed(1)} s`),
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
      const report = await runReport(openStore(), { run: outcome.runId });
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
      (store as SqliteSweepStore | null)?.close();
    }
  },
};

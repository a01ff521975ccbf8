// `matformer-lab export-best`: the best candidates of a sweep run as sliced checkpoints, one pass over the parent.
import type { Argv, CommandModule } from 'yargs';
import { UserInputError } from '../../formats';
import { closeSweepStore, exportBest, openSweepStore } from '../../sweep';
import { ProgressBar } from '../progress';
import { TOOL_VERSION } from './sweep';

interface ExportArgs {
  db: string;
  top: number;
  'max-params'?: number;
  out: string;
  run?: number;
  force: boolean;
}

export const exportBestCommand: CommandModule<object, ExportArgs> = {
  command: 'export-best <db>',
  describe:
    'Write the best Pareto-frontier candidates of a sweep run as sliced checkpoints (one pass over the parent)',
  builder: (y: Argv<object>) =>
    y
      .positional('db', {
        type: 'string',
        demandOption: true,
        describe: 'results database of `sweep`: an SQLite file or a postgres:// URL',
      })
      .option('top', {
        type: 'number',
        demandOption: true,
        describe: 'how many candidates (best metric first)',
      })
      .option('max-params', {
        type: 'number',
        describe: 'only candidates with at most this many effective parameters',
      })
      .option('out', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'folder for the checkpoints',
      })
      .option('run', { type: 'number', describe: 'run id (default: the latest)' })
      .option('force', { type: 'boolean', default: false, describe: 'replace existing outputs' })
      .example(
        '$0 export-best sweeps.sqlite --top 3 --max-params 2.5e9 --out ./best',
        '',
      ) as unknown as Argv<ExportArgs>,
  handler: async (argv) => {
    if (!(Number.isInteger(argv.top) && argv.top >= 1))
      throw new UserInputError(`--top: expected a positive integer, got ${argv.top}`);
    if (argv['max-params'] !== undefined && !(argv['max-params'] > 0))
      throw new UserInputError(`--max-params: expected a positive number, got ${argv['max-params']}`);
    const store = await openSweepStore(argv.db, { readonly: true });
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.on('SIGINT', onSignal);
    let bar: ProgressBar | null = null;
    try {
      const done = await exportBest(store, {
        run: argv.run,
        top: argv.top,
        maxParams: argv['max-params'],
        outDir: argv.out,
        force: argv.force,
        db: argv.db,
        toolVersion: TOOL_VERSION,
        signal: abort.signal,
        onProgress: (d, total) => {
          bar ??= new ProgressBar(total, { label: 'export' });
          bar.update(d);
        },
      });
      (bar as ProgressBar | null)?.finish();
      bar = null;
      for (const { candidate: c, result } of done) {
        process.stdout.write(
          `${result.outDir}: ${c.label} (${c.params.effective.toLocaleString('en-US')} effective params, ${(c.result.metric * 100).toFixed(2)}% ${c.id})\n`,
        );
      }
    } finally {
      (bar as ProgressBar | null)?.clear();
      process.off('SIGINT', onSignal);
      await closeSweepStore(store);
    }
  },
};

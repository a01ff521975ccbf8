// `matformer-lab export-best`: the best candidates of a sweep run as sliced checkpoints (one pass over the
// parent) or, with --format gguf, as GGUFs for llama.cpp, skipping the candidates it cannot run with the reason.
import * as fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { type ExportDtype, checkExport, exportGgufs, ggufRefusal } from '../../export';
import { UserInputError, formatBytes } from '../../formats';
import { rangeList, runLength } from '../../gemma3n';
import { shellQuote } from '../../slicing';
import {
  type CandidateReport,
  type SweepStore,
  bestOutputName,
  closeSweepStore,
  exportBest,
  measuredSection,
  openSweepStore,
  selectBest,
} from '../../sweep';
import { ProgressBar } from '../progress';
import { TOOL_VERSION } from './sweep';

interface ExportArgs {
  db: string;
  top: number;
  'max-params'?: number;
  out: string;
  run?: number;
  force: boolean;
  format: string;
  dtype?: string;
  tokenizer?: string;
  'pad-ffn'?: boolean;
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
      .option('format', {
        type: 'string',
        choices: ['hf', 'gguf'],
        default: 'hf',
        describe: 'sliced HF checkpoints, or GGUF files for llama.cpp (candidates it cannot run are skipped)',
      })
      .option('dtype', {
        type: 'string',
        choices: ['bf16', 'f16', 'f32'],
        describe: 'with --format gguf: weight type (default bf16)',
      })
      .option('tokenizer', {
        type: 'string',
        describe: 'with --format gguf: tokenizer.model or tokenizer.json when the parent has none',
      })
      .option('pad-ffn', {
        type: 'boolean',
        describe: 'with --format gguf: zero-pad narrower FFNs to one width (exact only without sparsity)',
      })
      .example('$0 export-best sweeps.sqlite --top 3 --max-params 2.5e9 --out ./best', '')
      .example(
        '$0 export-best sweeps.sqlite --top 1 --format gguf --out ./best',
        '',
      ) as unknown as Argv<ExportArgs>,
  handler: async (argv) => {
    if (!(Number.isInteger(argv.top) && argv.top >= 1))
      throw new UserInputError(`--top: expected a positive integer, got ${argv.top}`);
    if (argv['max-params'] !== undefined && !(argv['max-params'] > 0))
      throw new UserInputError(`--max-params: expected a positive number, got ${argv['max-params']}`);
    if (argv.format !== 'gguf') {
      for (const flag of ['dtype', 'tokenizer', 'pad-ffn'] as const)
        if (argv[flag] !== undefined) throw new UserInputError(`--${flag}: only with --format gguf`);
    }
    const store = await openSweepStore(argv.db, { readonly: true });
    if (argv.format === 'gguf') {
      try {
        await exportBestGguf(store, argv);
      } finally {
        await closeSweepStore(store);
      }
      return;
    }
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

/**
 * --format gguf: the frontier best first, each candidate llama.cpp cannot run skipped with its reason (one
 * line each), the first --top that it runs exported as `<out>/01-<id>.gguf` + `.md`, the card carrying the
 * sweep's measured results. None runnable: one line, exit 2, nothing written.
 */
async function exportBestGguf(store: SweepStore, argv: ExportArgs): Promise<void> {
  const { report, run, ranked } = await selectBest(store, { run: argv.run, maxParams: argv['max-params'] });
  const padFfn = Boolean(argv['pad-ffn']);
  const chosen: { c: CandidateReport; check: ReturnType<typeof checkExport> }[] = [];
  const refused: string[] = [];
  for (const c of ranked) {
    if (chosen.length === argv.top) break;
    const check = checkExport(run.model_path, { skip: c.spec.skip, ffn: c.spec.ffn }, { padFfn });
    const why = ggufRefusal(check, padFfn);
    if (why) {
      refused.push(why);
      process.stderr.write(`skipped ${c.id} (${c.label}): ${why}\n`);
    } else chosen.push({ c, check });
  }
  if (chosen.length === 0)
    throw new UserInputError(
      `--format gguf: none of run ${run.id}'s ${ranked.length} frontier candidate(s) can be exported for llama.cpp (best: ${refused[0]})`,
    );
  if (chosen.length < argv.top)
    process.stderr.write(
      `warning: --top ${argv.top}: only ${chosen.length} frontier candidate(s) of run ${run.id} run in llama.cpp\n`,
    );
  fs.mkdirSync(argv.out, { recursive: true });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let bar: ProgressBar | null = null;
  // The card's reproduce line: the same file from `export`, without the sweep.
  const reproduce = (c: CandidateReport, out: string) =>
    [
      'matformer-lab',
      'export',
      run.model_path,
      ...(c.spec.skip.length ? ['--skip', rangeList(c.spec.skip)] : []),
      '--ffn',
      runLength(c.spec.ffn),
      ...(argv.dtype ? ['--dtype', argv.dtype] : []),
      ...(padFfn ? ['--pad-ffn'] : []),
      ...(argv.tokenizer ? ['--tokenizer', argv.tokenizer] : []),
      '--out',
      out,
    ]
      .map(shellQuote)
      .join(' ');
  try {
    const done = await exportGgufs(
      chosen.map(({ c, check }, k) => {
        const out = `${bestOutputName(argv.out, k, c)}.gguf`;
        return {
          out,
          flags: { skip: c.spec.skip, ffn: c.spec.ffn },
          check,
          label: `--out (${out})`,
          cardExtra: measuredSection(c, report, argv.db),
          command: reproduce(c, out),
        };
      }),
      {
        src: run.model_path,
        dtype: argv.dtype as ExportDtype | undefined,
        tokenizer: argv.tokenizer,
        force: argv.force,
        padFfn,
        signal: abort.signal,
        onWarning: (w) => process.stderr.write(`warning: ${w}\n`),
        onStage: (s) => {
          bar?.finish();
          bar = null;
          process.stderr.write(`${s}\n`);
        },
        onProgress: (d, total) => {
          bar ??= new ProgressBar(total, { label: 'export' });
          bar.update(d);
        },
      },
    );
    (bar as ProgressBar | null)?.finish();
    bar = null;
    chosen.forEach(({ c }, k) => {
      const r = done[k]!;
      process.stdout.write(
        `${r.out}: ${c.label} (${c.params.effective.toLocaleString('en-US')} effective params, ${(c.result.metric * 100).toFixed(2)}% ${c.id}; ${formatBytes(r.bytes)}, card ${r.card})\n`,
      );
    });
  } catch (err) {
    if (!abort.signal.aborted) throw err;
    (bar as ProgressBar | null)?.clear();
    process.stderr.write(`interrupted: ${argv.out}: no GGUF half-written\n`);
    process.exit(130);
  } finally {
    (bar as ProgressBar | null)?.clear();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

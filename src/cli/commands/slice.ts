// `matformer-lab slice`: write an exact Mix-n-Match submodel of a Gemma 3n checkpoint.
import type { Argv, CommandModule } from 'yargs';
import { UserInputError, formatBytes } from '../../formats';
import { formatParams, sliceCheckpoint } from '../../slicing';
import { ProgressBar } from '../progress';
import { formatPlan } from '../render/plan';
import { interruptible } from '../boundary';
import {
  BUFFER_SIZE_LIMITS,
  SHARD_SIZE_LIMITS,
  SUBMODEL_OPTIONS,
  type SubmodelFlags,
  sizeFlag,
  specFlags,
} from '../flags';
import { HubCheckpoint, isHfUri, openHubCheckpoint, parseHfUri } from '../../hub';
import { hubFlags, hubOptions } from './download';

interface SliceArgs extends SubmodelFlags {
  src: string;
  out?: string;
  'max-shard-size': string;
  'buffer-size': string;
  'dry-run'?: boolean;
  force?: boolean;
  'text-only'?: boolean;
  token?: string;
}

export const sliceCommand: CommandModule<object, SliceArgs> = {
  command: 'slice <src>',
  describe: 'Write a Mix-n-Match submodel (skipped layers, narrower FFNs) of a Gemma 3n checkpoint',
  builder: (y: Argv<object>) =>
    y
      .positional('src', {
        type: 'string',
        demandOption: true,
        describe:
          'parent checkpoint folder, or hf://owner/repo[@revision] to read only the needed bytes from the Hub',
      })
      .option('out', {
        alias: 'o',
        type: 'string',
        describe: 'output folder (built beside it, renamed at the end)',
      })
      .options(SUBMODEL_OPTIONS)
      .option('max-shard-size', {
        type: 'string',
        default: '5GB',
        describe: 'largest output shard (5GB, 500MB, bytes)',
      })
      .option('buffer-size', {
        type: 'string',
        default: '8MiB',
        describe: 'I/O buffer size (up to 4 shard writers, two each)',
      })
      .option('dry-run', { type: 'boolean', describe: 'print the plan, write nothing' })
      .option('force', { type: 'boolean', describe: 'replace an existing output folder' })
      .option('text-only', { type: 'boolean', describe: 'leave out the vision and audio towers' })
      .option('token', hubFlags.token)
      .example('$0 slice ./gemma-3n-E4B --out ./e2b --preset "Config for official E2B Model"', '')
      .example('$0 slice ./gemma-3n-E4B --out ./mix --skip 20-24 --ffn 8192x20,16384x10', '')
      .example('$0 slice ./gemma-3n-E4B --blocks 8192x3,16384x4 --dry-run', '')
      .example(
        '$0 slice hf://google/gemma-3n-E4B --preset "Config for official E2B Model" --text-only --out ./e2b',
        '',
      ) as unknown as Argv<SliceArgs>,
  handler: async (argv) => {
    const dryRun = Boolean(argv['dry-run']);
    if (!dryRun && !argv.out)
      throw new UserInputError('--out: required (or pass --dry-run to only print the plan)');
    const flags = specFlags(argv);
    if (!flags) {
      throw new UserInputError('slice: give the submodel with --ffn/--skip, --blocks, --preset or --spec');
    }
    const maxShardBytes = sizeFlag('--max-shard-size', argv['max-shard-size'], ...SHARD_SIZE_LIMITS);
    const chunkBytes = sizeFlag('--buffer-size', argv['buffer-size'], ...BUFFER_SIZE_LIMITS);
    let bar: ProgressBar | null = null;
    let hub = null as HubCheckpoint | null; // set inside the callback: no narrowing to null
    try {
      // Ctrl-C stops after the current chunk; the executor removes the temporary folder (boundary.ts).
      const outcome = await interruptible(async (signal) => {
        if (isHfUri(argv.src)) {
          hub = await openHubCheckpoint(parseHfUri(argv.src), {
            ...hubOptions(argv.token),
            headersOnly: dryRun,
          });
        }
        return sliceCheckpoint({
          src: hub ? hub.pinned : argv.src,
          parent: hub ?? undefined,
          textOnly: Boolean(argv['text-only']),
          out: argv.out,
          flags,
          maxShardBytes,
          chunkBytes,
          dryRun,
          force: Boolean(argv.force),
          signal,
          onWarning: (w) => process.stderr.write(`warning: ${w}\n`),
          onNotice: (n) => process.stderr.write(`${n}\n`),
          onProgress: (done, total) => {
            bar ??= new ProgressBar(total);
            bar.update(done);
          },
        });
      });
      const { reads } = outcome;
      const readLine =
        `reads ${formatBytes(reads.readBytes)} of the parent's ${formatBytes(outcome.plan.sourceBytes)} ` +
        `(${((100 * reads.readBytes) / Math.max(1, outcome.plan.sourceBytes)).toFixed(1)}%) in ${[...reads.byShard.values()].reduce((n, r) => n + r.length, 0)} byte ranges`;
      if (dryRun) {
        process.stdout.write(
          formatPlan(outcome.plan, hub ? hub.pinned : argv.src, argv.out) + '\n' + readLine + '\n',
        );
        return;
      }
      (bar as ProgressBar | null)?.finish();
      const r = outcome.result!;
      const { plan } = outcome;
      process.stdout.write(
        `wrote ${r.outDir}: ${plan.tensors.length} tensors in ${plan.shards.length} shard(s), ` +
          `${formatBytes(r.bytes)} in ${r.seconds.toFixed(1)} s (${(r.bytes / 1e6 / Math.max(r.seconds, 1e-3)).toFixed(0)} MB/s); ` +
          `${plan.kept.length} layers, effective params ${formatParams(plan.params.child.effective)}` +
          '\n',
      );
      if (hub) {
        const t = hub.transferred();
        process.stdout.write(
          `fetched ${formatBytes(t.bytes)} from ${hub.pinned} in ${t.requests} range requests; ${readLine}\n`,
        );
      }
    } catch (err) {
      (bar as ProgressBar | null)?.clear();
      throw err;
    } finally {
      await hub?.close();
    }
  },
};

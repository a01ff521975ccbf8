// `matformer-lab bench`: prefill and decode throughput of a checkpoint (or submodel) on a backend.
import type { Argv, CommandModule } from 'yargs';
import { loadConfig, maxPositionEmbeddings } from '../../gemma3n';
import { openModel, type BenchResult, renderProfile, runBench } from '../../engine';
import { MODEL_OPTIONS, type ModelFlags, precisionFlag, intFlag, seedFlag, specFlags } from '../flags';

/** Far beyond a useful benchmark batch; a typo such as 80000 would only exhaust memory. */
const MAX_BATCH = 4096;

interface BenchArgs extends ModelFlags {
  dir: string;
  batch: number;
  tokens: number;
  'decode-tokens': number;
  seed: number;
  json?: boolean;
  profile?: boolean;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function render(r: BenchResult & { precision: string }): string {
  return [
    `backend         ${r.backend} (${r.backend_detail})`,
    `precision       ${r.precision}`,
    `model           ${r.layers} layers, load ${r.load_seconds.toFixed(1)} s`,
    `prefill         batch ${r.batch} × ${r.tokens} tokens: ${r.prefill.seconds.toFixed(3)} s, ${r.prefill.tokens_per_second.toFixed(1)} tokens/s`,
    `decode          batch ${r.batch} × ${r.decode.steps} steps: ${(r.decode.seconds_per_step * 1000).toFixed(1)} ms/step, ${r.decode.tokens_per_second.toFixed(1)} tokens/s`,
    `weights         ${mb(r.memory.weight_bytes)} on the backend`,
    `kv cache        ${mb(r.memory.kv_cache_bytes)} after decoding`,
    `backend memory  ${mb(r.memory.backend_bytes)} in ${r.memory.tensors} tensors (peak process RSS ${mb(r.memory.peak_rss_bytes)})`,
    ...(r.profile ?? []).map((p) => '\n' + renderProfile(p)),
  ].join('\n');
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench <dir>',
  describe: 'Measure prefill and decode tokens/s and memory of a checkpoint or Mix-n-Match submodel',
  builder: (y: Argv<object>) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'checkpoint folder' })
      .option('batch', { alias: 'b', type: 'number', default: 1, describe: 'sequences per batch' })
      .option('tokens', {
        alias: 't',
        type: 'number',
        default: 128,
        describe: 'prompt tokens per sequence (prefill)',
      })
      .option('decode-tokens', {
        type: 'number',
        default: 16,
        describe: 'greedy decode steps after the prefill',
      })
      .option('seed', { type: 'number', default: 1, describe: 'seed of the random prompt ids' })
      .option('json', { type: 'boolean', describe: 'print the result as JSON' })
      .option('profile', {
        type: 'boolean',
        describe:
          'per op kind: calls, GPU dispatches, device and host time of prefill, decode and an MMLU batch',
      })
      .options(MODEL_OPTIONS)
      .example('$0 bench ./gemma-3n-E4B --backend webgpu --batch 4 --tokens 256', '')
      .example(
        '$0 bench ./gemma-3n-E4B --preset "Config for official E2B Model" --json',
        '',
      ) as unknown as Argv<BenchArgs>,
  handler: async (argv) => {
    const config = loadConfig(argv.dir);
    const limit = maxPositionEmbeddings(config);
    intFlag('--batch', argv.batch, 1, MAX_BATCH);
    intFlag('--tokens', argv.tokens, 1, limit);
    const steps = intFlag('--decode-tokens', argv['decode-tokens'], 0, limit - argv.tokens);
    seedFlag('--seed', argv.seed);
    const opened = await openModel(
      argv.dir,
      { submodel: specFlags(argv), backend: argv.backend, precision: precisionFlag(argv) },
      {
        onWarning: (w) => process.stderr.write(`warning: ${w}\n`),
      },
    );
    try {
      const r = {
        ...(await runBench(opened, {
          batch: argv.batch,
          tokens: argv.tokens,
          decodeSteps: steps,
          seed: argv.seed,
          profile: argv.profile === true,
        })),
        precision: opened.engine.precision,
      };
      process.stdout.write((argv.json ? JSON.stringify(r) : render(r)) + '\n');
    } finally {
      opened.engine.dispose();
    }
  },
};

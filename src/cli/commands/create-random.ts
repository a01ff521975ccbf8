// `matformer-lab create-random`: a random-weight checkpoint in the published layout, for tests and benchmarks.
import type { CommandModule } from 'yargs';
import { formatBytes } from '../../formats';
import { createRandomCheckpoint, loadConfig } from '../../gemma3n';
import { cutGemmaTokenizer } from '../../eval';
import { interruptible } from '../boundary';
import { SHARD_SIZE_LIMITS, seedFlag, sizeFlag } from '../flags';

interface CreateRandomArgs {
  config: string;
  out: string;
  seed: number;
  sparse: boolean;
  'max-shard-size'?: string;
  force: boolean;
  tokenizer: string;
}

export const createRandomCommand: CommandModule<object, CreateRandomArgs> = {
  command: 'create-random',
  describe: 'Write a checkpoint with random bf16 weights (or sparse holes) for a config.json',
  builder: (y) =>
    y
      .option('config', {
        type: 'string',
        demandOption: true,
        describe: 'config.json (or a folder holding one)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'output folder (created atomically)' })
      .option('seed', { type: 'number', default: 0, describe: 'random seed (same seed, same bytes)' })
      .option('sparse', {
        type: 'boolean',
        default: false,
        describe: 'full-size files whose tensor data are holes',
      })
      .option('max-shard-size', {
        type: 'string',
        describe: 'shard size limit: bytes, or 500MB, 2GiB (default 5GB)',
      })
      .option('force', { type: 'boolean', default: false, describe: 'replace a non-empty --out' })
      .option('tokenizer', {
        type: 'string',
        choices: ['none', 'gemma'],
        default: 'none',
        describe: "gemma: also write Gemma's tokenizer, cut to the config's vocab_size when smaller",
      })
      .example(
        '$0 create-random --config e4b/config.json --out /data/e4b-random',
        'a full-size random E4B (~16 GB)',
      )
      .example(
        '$0 create-random --config configs/demo --tokenizer gemma --out /tmp/demo',
        "the demo model with Gemma's tokenizer cut to its 4,096-entry vocabulary",
      ),
  handler: async (argv) => {
    const seed = seedFlag('--seed', argv.seed);
    const maxShardBytes =
      argv['max-shard-size'] === undefined
        ? undefined
        : sizeFlag('--max-shard-size', argv['max-shard-size'], ...SHARD_SIZE_LIMITS);
    // Before any weights: a vocabulary too small to cut is one line, nothing written.
    const extraFiles =
      argv.tokenizer === 'gemma'
        ? { ...cutGemmaTokenizer(loadConfig(argv.config).text.vocab_size, argv.config) }
        : undefined;
    // Ctrl-C stops after the current chunk and removes the temporary folder, as slice does.
    const res = await interruptible((signal) =>
      createRandomCheckpoint({
        config: argv.config,
        out: argv.out,
        seed,
        sparse: argv.sparse,
        force: argv.force,
        maxShardBytes,
        extraFiles,
        signal,
        onShard: (file, bytes) => process.stderr.write(`wrote ${file} (${formatBytes(bytes)})\n`),
        onNotice: (n) => process.stderr.write(`${n}\n`),
      }),
    );
    process.stdout.write(
      `${res.dir}: ${res.tensors} tensors in ${res.shards.length} file(s), ${formatBytes(res.totalSize)} of ` +
        `${argv.sparse ? 'sparse (hole) ' : 'random bf16 '}data, seed ${argv.seed}\n`,
    );
  },
};

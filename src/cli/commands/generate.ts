// `matformer-lab generate`: greedy decoding with a KV cache, from a text prompt or token ids.
import { type TextCodec, loadTokenizer } from '../../eval';
import type { Argv, CommandModule } from 'yargs';
import { UserInputError } from '../../formats';
import { loadConfig } from '../../gemma3n';
import { checkPromptIds, openModel, parseIdList, stopTokenIds } from '../../engine';
import { MODEL_OPTIONS, type ModelFlags, precisionFlag, specFlags } from '../flags';

interface GenerateArgs extends ModelFlags {
  dir: string;
  prompt?: string;
  ids?: string;
  'max-new-tokens': number;
  'stop-at-eos': boolean;
  json?: boolean;
}

export const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate <dir>',
  describe: 'Greedy generation from a prompt (text or token ids), optionally with a Mix-n-Match submodel',
  builder: (y: Argv<object>) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'checkpoint folder' })
      .option('prompt', { alias: 'p', type: 'string', describe: 'prompt text (tokenized with <bos>)' })
      .option('ids', { type: 'string', describe: 'prompt token ids, comma-separated' })
      .option('max-new-tokens', { alias: 'n', type: 'number', default: 32, describe: 'tokens to generate' })
      .option('stop-at-eos', {
        type: 'boolean',
        default: true,
        describe: 'stop at <eos> / <end_of_turn> (--no-stop-at-eos to always run N)',
      })
      .option('json', { type: 'boolean', describe: 'print one JSON object instead of text' })
      .options(MODEL_OPTIONS)
      .example('$0 generate ./gemma-3n-E4B --prompt "The capital of France is" -n 16', '')
      .example(
        '$0 generate ./gemma-3n-E4B --ids 2,818,5279 -n 8 --skip 20-24 --ffn 8192',
        '',
      ) as unknown as Argv<GenerateArgs>,
  handler: async (argv) => {
    if ((argv.prompt === undefined) === (argv.ids === undefined)) {
      throw new UserInputError('generate: give exactly one of --prompt and --ids');
    }
    const n = argv['max-new-tokens'];
    if (!Number.isInteger(n) || n < 1)
      throw new UserInputError(`--max-new-tokens: ${n} is not a positive integer`);
    // A tokenizer is needed for --prompt; with --ids it only renders text, so a missing one is not an error.
    let codec: TextCodec | null = null;
    if (argv.prompt !== undefined) codec = await loadTokenizer(argv.dir);
    const prompt = argv.prompt !== undefined ? codec!.encode(argv.prompt, true) : parseIdList(argv.ids!);
    checkPromptIds(argv.prompt !== undefined ? '--prompt' : '--ids', prompt, loadConfig(argv.dir), n);
    const { engine, model } = await openModel(
      argv.dir,
      { submodel: specFlags(argv), backend: argv.backend, precision: precisionFlag(argv) },
      {
        onWarning: (w) => process.stderr.write(`warning: ${w}\n`),
      },
    );
    try {
      if (!codec) codec = await loadTokenizer(argv.dir).catch(() => null);
      const stopIds = argv['stop-at-eos'] ? stopTokenIds(argv.dir, engine.config) : [];
      const t0 = performance.now();
      const [out = []] = await model.generate([prompt], { maxNewTokens: n, stopIds });
      const seconds = (performance.now() - t0) / 1000;
      const text = codec ? codec.decode(out) : null;
      if (argv.json) {
        process.stdout.write(
          JSON.stringify({
            prompt_ids: prompt,
            ids: out,
            text,
            seconds,
            backend: engine.backend.name,
            precision: engine.precision,
          }) + '\n',
        );
        return;
      }
      process.stdout.write(`prompt ids: ${prompt.join(',')}\n`);
      process.stdout.write(`generated ids: ${out.join(',')}\n`);
      if (text !== null) process.stdout.write(`text: ${JSON.stringify(text)}\n`);
      process.stdout.write(
        `${out.length} tokens in ${seconds.toFixed(2)} s on ${engine.backend.name} (${engine.precision} precision)` +
          (codec ? ` (tokenizer: ${codec.source})` : '') +
          '\n',
      );
    } finally {
      engine.dispose();
    }
  },
};

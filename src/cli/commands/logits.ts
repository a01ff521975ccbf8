// `matformer-lab logits`: full soft-capped logits of one token sequence, written as a safetensors file.
import type { Argv, CommandModule } from 'yargs';
import { OutputGuard, writeSafetensors } from '../../formats';
import { loadConfig } from '../../gemma3n';
import { checkPromptIds, openModel, parseIdList } from '../../engine';
import { MODEL_OPTIONS, type ModelFlags, precisionFlag, specFlags } from '../flags';

interface LogitsArgs extends ModelFlags {
  dir: string;
  ids: string;
  out: string;
  force: boolean;
}

export const logitsCommand: CommandModule<object, LogitsArgs> = {
  command: 'logits <dir>',
  describe:
    'Compute the logits of a token sequence (optionally of a Mix-n-Match submodel) into a safetensors file',
  builder: (y: Argv<object>) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'checkpoint folder' })
      .option('ids', {
        type: 'string',
        demandOption: true,
        describe: 'token ids, comma-separated (start with 2 = <bos>)',
      })
      .option('out', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'output .safetensors (tensor "logits", float32 [T, vocab])',
      })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing --out' })
      .options(MODEL_OPTIONS)
      .example('$0 logits ./gemma-3n-E4B --ids 2,818,5279,529,7001,563 --out logits.safetensors', '')
      .example(
        '$0 logits ./gemma-3n-E4B --ids 2,818 --preset "Config for official E2B Model" --out e2b.safetensors',
        '',
      ) as unknown as Argv<LogitsArgs>,
  handler: async (argv) => {
    const ids = parseIdList(argv.ids);
    const config = loadConfig(argv.dir);
    checkPromptIds('--ids', ids, config);
    const guard = OutputGuard.acquire({
      outputs: [
        { flag: '--out', path: argv.out, kind: 'file', bytes: ids.length * config.text.vocab_size * 4 },
      ],
      inputs: [{ flag: 'checkpoint', path: argv.dir }],
      force: argv.force,
      onNotice: (n) => process.stderr.write(`${n}\n`),
    });
    let opened: Awaited<ReturnType<typeof openModel>>;
    try {
      opened = await openModel(
        argv.dir,
        { submodel: specFlags(argv), backend: argv.backend, precision: precisionFlag(argv) },
        { onWarning: (w) => process.stderr.write(`warning: ${w}\n`) },
      );
    } catch (err) {
      guard.release();
      throw err;
    }
    const { engine, model, loadSeconds } = opened;
    try {
      const t0 = performance.now();
      const [logits] = await model.logits([ids]);
      if (!logits) throw new Error('the model returned no logits for the prompt');
      const seconds = (performance.now() - t0) / 1000;
      const V = model.cfg.vocab_size;
      await guard.writeFile('--out', (tmp) =>
        writeSafetensors(tmp, [
          {
            name: 'logits',
            dtype: 'F32',
            shape: [ids.length, V],
            data: new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength),
          },
        ]),
      );
      let best = 0;
      const last = logits.subarray((ids.length - 1) * V);
      for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
      process.stdout.write(
        `wrote ${argv.out}: logits [${ids.length}, ${V}] float32; ${model.cfg.layers.length} layers on ${engine.backend.name}, ${engine.precision} precision; ` +
          `load ${loadSeconds.toFixed(1)} s, forward ${seconds.toFixed(2)} s; next token (greedy) ${best}\n`,
      );
    } finally {
      guard.release();
      engine.dispose();
    }
  },
};

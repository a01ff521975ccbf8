// `matformer-lab export`: a checkpoint or submodel for another runtime (HF safetensors or GGUF), with
// the compatibility matrix (--check) and llama.cpp's measured fidelity (--verify).
import type { Argv, CommandModule } from 'yargs';
import { UserInputError, formatBytes } from '../../formats';
import {
  type ExportDtype,
  type ExportFormat,
  checkExport,
  exportModel,
  formatMatrix,
  matrixJson,
  padFfnProblem,
} from '../../export';
import { MODEL_OPTIONS, specFlags } from '../flags';
import { shellQuote } from '../../slicing';
import { ProgressBar } from '../progress';

interface ExportArgs {
  src: string;
  format: string;
  dtype?: string;
  out?: string;
  ffn?: string;
  skip?: string;
  blocks?: string;
  preset?: string;
  spec?: string;
  tokenizer?: string;
  force?: boolean;
  check?: boolean;
  json?: boolean;
  verify?: boolean;
  'pad-ffn'?: boolean;
  backend: string;
  threads?: number;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export <src>',
  describe:
    'Export a checkpoint or Mix-n-Match submodel for other runtimes (HF safetensors, GGUF for llama.cpp)',
  builder: (y: Argv<object>) =>
    y
      .positional('src', { type: 'string', demandOption: true, describe: 'parent checkpoint folder' })
      .option('format', {
        type: 'string',
        choices: ['hf', 'gguf'],
        default: 'gguf',
        describe: 'output format',
      })
      .option('dtype', {
        type: 'string',
        choices: ['bf16', 'f16', 'f32'],
        describe: 'GGUF weight type (default bf16)',
      })
      .option('out', { alias: 'o', type: 'string', describe: 'output .gguf file, or folder for hf' })
      .options(MODEL_OPTIONS)
      .option('tokenizer', {
        type: 'string',
        describe: 'tokenizer.model or tokenizer.json when the folder has none',
      })
      .option('force', { type: 'boolean', describe: 'replace an existing output' })
      .option('check', { type: 'boolean', describe: 'print the compatibility matrix and write nothing' })
      .option('json', { type: 'boolean', describe: 'with --check: print JSON' })
      .option('verify', {
        type: 'boolean',
        describe: 'run the GGUF in llama.cpp and record its fidelity in the card',
      })
      .option('pad-ffn', {
        type: 'boolean',
        describe:
          'zero-pad narrower FFNs to one width for llama.cpp (exact only without sparsity; saves no memory)',
      })
      .option('threads', {
        type: 'number',
        describe: 'llama.cpp CPU threads for --verify (default: all cores)',
      })
      .example(
        '$0 export ./gemma-3n-E4B --preset "Config for official E2B Model" --out e2b.gguf --verify',
        '',
      )
      .example('$0 export ./gemma-3n-E4B --skip 20-24 --ffn 8192 --check', '')
      .example(
        '$0 export ./gemma-3n-E4B --format hf --preset "Config for E2.98B (layer-level)" --out ./e298',
        '',
      ) as unknown as Argv<ExportArgs>,
  handler: async (argv) => {
    // No submodel flags: the checkpoint itself.
    const flags = specFlags(argv) ?? {};
    const padFfn = Boolean(argv['pad-ffn']);
    if (argv.check) {
      const check = checkExport(argv.src, flags, { padFfn });
      const pad = padFfn ? padFfnProblem(check.facts) : null;
      if (argv.json) {
        process.stdout.write(
          JSON.stringify(
            {
              spec: { skip: check.resolved.spec.skip, ffn: check.resolved.spec.ffn },
              pad_ffn: padFfn ? { exact: pad === null, problem: pad } : null,
              targets: matrixJson(check.matrix),
            },
            null,
            2,
          ) + '\n',
        );
      } else {
        process.stdout.write(
          `compatibility of ${argv.src}${padFfn ? ' (with --pad-ffn)' : ''}:\n${formatMatrix(check.matrix)}\n`,
        );
        if (pad) process.stdout.write(`  ${pad}\n`);
      }
      return;
    }
    if (argv.threads !== undefined && !(Number.isInteger(argv.threads) && argv.threads >= 1))
      throw new UserInputError(`--threads: expected a positive integer, got ${argv.threads}`);
    if (!argv.out)
      throw new UserInputError('--out: required (or pass --check to only print the compatibility matrix)');
    // Ctrl-C stops after the current chunk; the temporary file is removed and nothing is written.
    const controller = new AbortController();
    const onSignal = () => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let bar: ProgressBar | null = null;
    const command = ['matformer-lab', ...process.argv.slice(2)].map(shellQuote).join(' ');
    const r = await exportModel({
      signal: controller.signal,
      src: argv.src,
      out: argv.out,
      format: argv.format as ExportFormat,
      dtype: argv.dtype as ExportDtype | undefined,
      flags,
      tokenizer: argv.tokenizer,
      force: Boolean(argv.force),
      padFfn,
      verify: Boolean(argv.verify),
      backend: argv.backend as never,
      threads: argv.threads,
      command,
      onWarning: (w) => process.stderr.write(`warning: ${w}\n`),
      onStage: (s) => {
        bar?.finish();
        bar = null;
        process.stderr.write(`${s}\n`);
      },
      onProgress: (done, total) => {
        bar ??= new ProgressBar(total);
        bar.update(done);
      },
    })
      .catch((err: unknown) => {
        if (!controller.signal.aborted) throw err;
        (bar as ProgressBar | null)?.clear();
        process.stderr.write(`interrupted: ${argv.out}: nothing written\n`);
        process.exit(130);
      })
      .finally(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      });
    (bar as ProgressBar | null)?.finish();
    process.stdout.write(
      `wrote ${r.out} (${formatBytes(r.bytes)}) and its card ${r.card} in ${r.seconds.toFixed(1)} s\n`,
    );
    for (const row of r.fidelity?.rows ?? []) {
      process.stdout.write(
        `  ${row.semantics.padEnd(12)} ${JSON.stringify(row.prompt).slice(0, 40).padEnd(40)} rel RMS ${row.last_logits_rel_rms.toExponential(2)}, ` +
          `top-1 ${(100 * row.top1_agreement).toFixed(0)}%, greedy ${row.greedy_agree}/${row.greedy_tokens}\n`,
      );
    }
  },
};

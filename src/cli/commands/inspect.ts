// `matformer-lab inspect <dir>`: layers, KV sharing, parameter counts, and a tensor check of the weights.
import { loadPublishedConfigs } from '../../model/presets';
import type { CommandModule } from 'yargs';
import { UserInputError } from '../../model/errors';
import { loadConfig } from '../../model/config';
import { formatReport, hasProblems, inspectConfig, resolveSource } from '../../model/inspect';
import { parseSpecFlags } from '../../slicing';
import { compatibilityMatrix, formatMatrix, matrixJson, submodelFacts } from '../../export';

interface InspectArgs {
  dir: string;
  json: boolean;
  ffn?: string;
  skip?: string;
  preset?: string;
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect <dir>',
  describe:
    'Show layers, KV sharing, parameter counts and a tensor check of a checkpoint folder or config.json',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'checkpoint folder or config.json' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
      .option('ffn', {
        type: 'string',
        describe: 'FFN widths of a Mix-n-Match submodel to show the numbers for',
      })
      .option('skip', { type: 'string', describe: 'parent layers the submodel skips, e.g. 20-24' })
      .option('preset', {
        type: 'string',
        describe: 'a published Mix-n-Match config, e.g. "Config for E2.98B (layer-level)"',
      })
      .example('$0 inspect ./gemma-3n-E4B', 'check a downloaded checkpoint')
      .example('$0 inspect ./e4b/config.json --skip 20-24 --ffn 8192', 'plan a submodel before downloading'),
  handler: (argv) => {
    const src = resolveSource(argv.dir);
    const cfg = loadConfig(src.configPath);
    const spec =
      argv.ffn !== undefined || argv.skip !== undefined || argv.preset !== undefined
        ? parseSpecFlags({ ffn: argv.ffn, skip: argv.skip, preset: argv.preset }, cfg, (w) =>
            process.stderr.write(`warning: ${w}\n`),
          )
        : undefined;
    const report = inspectConfig(cfg, src, { spec });
    // Several published figures are not what their own widths count to: show theirs beside ours.
    const pub = argv.preset ? loadPublishedConfigs().find((c) => c.name === argv.preset) : undefined;
    const published = pub
      ? { name: pub.name, effectiveParamsB: pub.effectiveParamsB, mmluPct: pub.mmluPct }
      : null;
    // Which runtimes can run the submodel (only for a spec: the parent itself runs everywhere it loads).
    const matrix = spec ? compatibilityMatrix(submodelFacts(cfg, spec)) : null;
    if (argv.json) {
      const compatibility = matrix ? matrixJson(matrix) : null;
      process.stdout.write(JSON.stringify({ ...report, published, compatibility }, null, 2) + '\n');
    } else {
      process.stdout.write(formatReport(report));
      if (published) {
        const ours = report.params.effective / 1e9;
        process.stdout.write(
          `\n  published (${published.name}): ${published.effectiveParamsB.toFixed(2)} B effective, MMLU ${published.mmluPct.toFixed(1)}%` +
            `; counted here: ${ours.toFixed(3)} B (${ours - published.effectiveParamsB >= 0 ? '+' : ''}${(ours - published.effectiveParamsB).toFixed(3)} B)\n`,
        );
      }
      if (matrix) process.stdout.write(`\n  runtimes (export --check):\n${formatMatrix(matrix)}\n`);
    }
    if (hasProblems(report)) {
      const ck = report.checkpoint!;
      throw new UserInputError(
        `${report.source}: checkpoint does not match its config: ${ck.missing.length} missing and ` +
          `${ck.wrongShape.length} wrong-shape text tensors (listed above)`,
      );
    }
  },
};

// `matformer-lab inspect <dir>`: layers, KV sharing, parameter counts, and a tensor check of the weights.
import type { Argv, CommandModule } from 'yargs';
import { UserInputError } from '../../formats';
import { inspectConfig, loadConfig, resolveSource, resolveSpec, tensorProblems } from '../../gemma3n';
import { SUBMODEL_OPTIONS, type SubmodelFlags, specFlags } from '../flags';
import { formatReport } from '../render/inspect';
import { jsonText } from '../render/json';
import * as path from 'node:path';
import { compatibilityMatrix, formatMatrix, matrixJson, submodelFacts } from '../../export';
import { HubCheckpoint, isHfUri, openHubCheckpoint, parseHfUri } from '../../hub';
import { hubFlags, hubOptions } from './download';

interface InspectArgs extends SubmodelFlags {
  dir: string;
  json: boolean;
  token?: string;
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect <dir>',
  describe:
    'Show layers, KV sharing, parameter counts and a tensor check of a checkpoint folder or config.json',
  builder: (y: Argv<object>) =>
    y
      .positional('dir', {
        type: 'string',
        demandOption: true,
        describe:
          'checkpoint folder, config.json, or hf://owner/repo[@revision] (reads config and shard headers only)',
      })
      .option('token', hubFlags.token)
      .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
      .options(SUBMODEL_OPTIONS)
      .example('$0 inspect ./gemma-3n-E4B', 'check a downloaded checkpoint')
      .example('$0 inspect hf://google/gemma-3n-E4B', 'check it on the Hub: config and shard headers only')
      .example(
        '$0 inspect ./e4b/config.json --skip 20-24 --ffn 8192',
        'plan a submodel before downloading',
      ) as unknown as Argv<InspectArgs>,
  handler: async (argv) => {
    let hub: HubCheckpoint | null = null;
    try {
      if (isHfUri(argv.dir)) {
        hub = await openHubCheckpoint(parseHfUri(argv.dir), { ...hubOptions(argv.token), headersOnly: true });
      }
      inspectOne(argv, hub);
    } finally {
      await hub?.close();
    }
  },
};

function inspectOne(argv: InspectArgs, hub: HubCheckpoint | null): void {
  const src = hub
    ? { dir: hub.dir, configPath: path.join(hub.dir, 'config.json'), configOnly: false }
    : resolveSource(argv.dir);
  const cfg = loadConfig(src.configPath);
  const flags = specFlags(argv);
  const resolved = flags ? resolveSpec(flags, cfg) : null;
  resolved?.warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));
  const spec = resolved?.spec;
  const report = inspectConfig(cfg, src, { spec, checkpoint: hub?.ckpt, source: hub?.pinned });
  // Several published figures are not what their own widths count to: show theirs beside ours.
  const pub = resolved?.preset;
  const published = pub
    ? { name: pub.name, effectiveParamsB: pub.effectiveParamsB, mmluPct: pub.mmluPct }
    : null;
  // Which runtimes can run the submodel (only for a spec: the parent itself runs everywhere it loads).
  const matrix = spec ? compatibilityMatrix(submodelFacts(cfg, spec)) : null;
  if (argv.json) {
    const compatibility = matrix ? matrixJson(matrix) : null;
    process.stdout.write(jsonText({ ...report, published, compatibility }, 2) + '\n');
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
  const problem = report.checkpoint ? tensorProblems(report.checkpoint) : null;
  if (problem) throw new UserInputError(`${report.source}: ${problem}; all listed above`);
}

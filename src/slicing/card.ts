// The model card (README.md) written beside a slice: where it came from, what it is, how to remake it.
import { PublishedConfig, rangeList, runLength } from '../gemma3n';
import { LAYER_HEADER, layerRows, markdownTable, summaryRows } from './summary';
import { DEFAULT_MAX_SHARD_BYTES, SlicePlan } from './plan';

export interface CardInput {
  readonly plan: SlicePlan;
  /** Absolute source and output folders. */
  readonly srcDir: string;
  readonly outDir: string;
  readonly maxShardBytes?: number;
  /** The published config the spec came from, if any. */
  readonly preset?: PublishedConfig;
  /** Tool version for provenance. */
  readonly version?: string;
}

/** Quotes a shell word only when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `slice` command that cuts `spec` from `srcDir` into `outDir`, spelled out (widths run-length coded). */
export function sliceCommandLine(
  srcDir: string,
  outDir: string,
  spec: { readonly skip: readonly number[]; readonly ffn: readonly number[] },
  maxShardBytes?: number,
): string {
  const args = ['matformer-lab', 'slice', srcDir, '--out', outDir];
  if (spec.skip.length > 0) args.push('--skip', rangeList(spec.skip));
  args.push('--ffn', runLength(spec.ffn));
  if (maxShardBytes !== undefined && maxShardBytes !== DEFAULT_MAX_SHARD_BYTES) {
    args.push('--max-shard-size', String(maxShardBytes));
  }
  return args.map(shellQuote).join(' ');
}

/** A command that reproduces this slice exactly, with the spec spelled out (not the preset name). */
export function reproduceCommand(
  input: Pick<CardInput, 'plan' | 'srcDir' | 'outDir' | 'maxShardBytes'>,
): string {
  const cmd = sliceCommandLine(input.srcDir, input.outDir, input.plan.spec, input.maxShardBytes);
  return input.plan.textOnly ? `${cmd} --text-only` : cmd;
}

export function renderCard(input: CardInput): string {
  const { plan, preset } = input;
  const lines = [
    '---',
    'library_name: transformers',
    'tags:',
    '  - gemma3n',
    '  - matformer',
    '  - mix-n-match',
    '---',
    '',
    `# Mix-n-Match slice of ${input.srcDir}`,
    '',
    `Made by \`matformer-lab slice\`${input.version ? ` ${input.version}` : ''} from \`${input.srcDir}\`: ` +
      `${plan.kept.length} of ${plan.layers.length} layers kept, FFN widths \`${runLength(plan.spec.ffn)}\`. ` +
      'Kept tensors are exact prefixes/selections of the parent (no retraining); vision, audio and embedding ' +
      'weights are copied byte for byte.',
    '',
  ];
  if (preset) {
    lines.push(
      `Published configuration: **${preset.name}** (Google reports ${preset.effectiveParamsB} B effective ` +
        `parameters and ${preset.mmluPct}% MMLU for it).`,
      '',
    );
  }
  lines.push(
    markdownTable(['', 'parent', 'this model'], summaryRows(plan)),
    '',
    '## Spec',
    '',
    '```json',
    JSON.stringify({ skip: plan.spec.skip, ffn: plan.spec.ffn }),
    '```',
    '',
    '## Reproduce',
    '',
    '```sh',
    reproduceCommand(input),
    '```',
    '',
    '## Layers',
    '',
    markdownTable(LAYER_HEADER, layerRows(plan)),
    '',
  );
  return lines.join('\n');
}

// The model card written beside a GGUF (`<name>.md`): provenance, the submodel, the compatibility
// matrix, and the runtime fidelity measured by --verify.
import { rangeList, runLength } from '../gemma3n';
import { formatParams } from '../slicing';
import type { CompatRow } from './compat';
import type { GgufPlan } from './gguf-plan';
import type { ExportCheck } from './run';
import { FidelityReport, fidelityMarkdown } from './verify';

export interface GgufCardInput {
  readonly plan: GgufPlan;
  readonly check: ExportCheck;
  readonly out: string;
  readonly src: string;
  readonly bytes: number;
  readonly fidelity?: FidelityReport;
  readonly command?: string;
}

function matrixTable(rows: readonly CompatRow[]): string {
  return [
    '| runtime | runs it | broken constraint |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.target} | ${r.runs ? 'yes' : 'no'} | ${r.reasons.join('; ') || ''} |`),
  ].join('\n');
}

export function renderGgufCard(input: GgufCardInput): string {
  const { plan, check } = input;
  const spec = plan.slice.spec;
  const kv = (k: string) => {
    const v = plan.kvs.find((x) => x.key === k)?.value;
    return v && v.type !== 9 ? String(v.value) : '';
  };
  const lines = [
    '---',
    'library_name: gguf',
    'tags:',
    '  - gemma3n',
    '  - matformer',
    '  - gguf',
    '---',
    '',
    `# GGUF of ${input.src}`,
    '',
    `Made by \`matformer-lab export --format gguf\` ${kv('matformer_lab.version')} straight from the parent ` +
      `(no intermediate checkpoint): ${plan.slice.kept.length} of ${plan.slice.layers.length} layers` +
      `${spec.skip.length ? ` (skipped ${rangeList(spec.skip)})` : ''}, FFN widths \`${runLength(spec.ffn)}\`` +
      `${plan.child.text.intermediate_size.join() !== spec.ffn.join() ? ` zero-padded to ${plan.child.text.intermediate_size[0]} (--pad-ffn: exact, saves no memory)` : ''}, ` +
      `${plan.dtype} weights (norms and AltUp coefficients F32, as llama.cpp's converter stores them).`,
    '',
    '| | |',
    '| --- | --- |',
    `| file | \`${input.out}\` (${input.bytes.toLocaleString('en-US')} bytes, ${plan.tensors.length} tensors) |`,
    `| source fingerprint | \`${kv('matformer_lab.source_fingerprint')}\` |`,
    `| effective parameters | ${formatParams(plan.slice.params.child.effective)} (parent ${formatParams(plan.slice.params.parent.effective)}) |`,
    ...(check.resolved.preset ? [`| published config | ${check.resolved.preset.name} |`] : []),
    '',
    '## Spec',
    '',
    '```json',
    JSON.stringify({ skip: spec.skip, ffn: spec.ffn }),
    '```',
    '',
    ...(input.command ? ['## Reproduce', '', '```sh', input.command, '```', ''] : []),
    '## Runtimes',
    '',
    matrixTable(check.matrix),
    '',
    '## Fidelity',
    '',
  ];
  if (input.fidelity) {
    lines.push(
      `Measured with \`--verify\`: the GGUF in ${input.fidelity.runtime} against this toolkit's engine ` +
        `(${input.fidelity.engine_backend} backend, float32) run with llama.cpp's semantics (sample standard ` +
        "deviation, N-1, in the Gaussian top-k) and with transformers' (population, N). Logits are compared " +
        'centred (llama.cpp reports probabilities); top-1 over every prompt position; greedy continuation of 8 tokens.',
      '',
      fidelityMarkdown(input.fidelity),
      '',
    );
  } else {
    lines.push('Not measured (export without `--verify`).', '');
  }
  return lines.join('\n');
}

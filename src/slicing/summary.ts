// The rows that describe a slice plan, shared by the model card and the CLI's --dry-run report.
import { formatBytes } from '../formats';
import { rangeList, runLength } from '../gemma3n';
import { SlicePlan } from './plan';

/** `1,905,495,648 (1.91 B)`: exact, plus the rounding Google's table uses. */
export function formatParams(n: number | null): string {
  if (n === null) return 'n/a';
  const short = n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : '';
  return short ? `${n.toLocaleString('en-US')} (${short})` : n.toLocaleString('en-US');
}

/** Markdown table. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function layerRows(plan: SlicePlan): string[][] {
  return plan.layers.map((l) => [
    String(l.parent),
    l.index === null ? 'skipped' : String(l.index),
    l.type === 'full_attention' ? 'full' : 'sliding',
    l.kv,
    String(l.parentWidth),
    l.width === null ? '-' : String(l.width),
    String(l.sparsity),
  ]);
}

export const LAYER_HEADER = [
  'parent layer',
  'new layer',
  'attention',
  'kv role',
  'parent ffn',
  'ffn',
  'sparsity',
];

/** Summary rows shared by the dry run and the card: what changes from parent to slice. */
export function summaryRows(plan: SlicePlan): string[][] {
  const { parent, child } = plan.params;
  return [
    ['layers', String(plan.layers.length), String(plan.kept.length)],
    ['skipped layers', '', plan.spec.skip.length ? rangeList(plan.spec.skip) : 'none'],
    ['FFN widths', runLength(plan.layers.map((l) => l.parentWidth)), runLength(plan.spec.ffn)],
    ['effective params (text, no embeddings)', formatParams(parent.effective), formatParams(child.effective)],
    ['text params (with embeddings)', formatParams(parent.textTotal), formatParams(child.textTotal)],
    ['all params (with vision/audio)', formatParams(parent.total), formatParams(child.total)],
    ['tensor bytes', formatBytes(plan.sourceBytes), formatBytes(plan.outputBytes)],
  ];
}

// Human-readable renderings of a slice plan: the --dry-run report and the model card share these.
import { formatBytes } from '../model/bytes';
import { SlicePlan } from './plan';
import { rangeList, runLength } from './spec';

/** `1,905,495,648 (1.91 B)`: exact, plus the rounding Google's table uses. */
export function formatParams(n: number | null): string {
  if (n === null) return 'n/a';
  const short = n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : '';
  return short ? `${n.toLocaleString('en-US')} (${short})` : n.toLocaleString('en-US');
}

/** Fixed-width text table (first column left-aligned, the rest right-aligned). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
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

/** The --dry-run report. */
export function formatPlan(plan: SlicePlan, srcDir: string, outDir: string | undefined): string {
  const ops = { copy: 0, rows: 0, cols: 0 };
  let renamed = 0;
  for (const t of plan.tensors) {
    ops[t.op.kind]++;
    if (t.name !== t.source) renamed++;
  }
  return [
    `slice plan: ${srcDir} -> ${outDir ?? '(no --out)'}`,
    '',
    table(['', 'parent', 'slice'], summaryRows(plan)),
    '',
    `tensors: ${plan.tensors.length} written (${ops.copy} copied byte for byte, ${ops.rows} row-sliced, ` +
      `${ops.cols} column-sliced; ${renamed} renamed), ${plan.dropped.length} dropped`,
    `shards: ${plan.shards.map((s) => `${s.file} ${formatBytes(s.bytes)}`).join(', ')}`,
    `config: ${Object.entries(plan.textUpdates)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.length} entries]` : JSON.stringify(v)}`)
      .join(', ')}`,
    '',
    table(LAYER_HEADER, layerRows(plan)),
    '',
    'dry run: nothing written',
  ].join('\n');
}

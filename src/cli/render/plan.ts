// The terminal rendering of a slice plan (`slice --dry-run`).
import { formatBytes } from '../../formats';
import { LAYER_HEADER, type SlicePlan, layerRows, summaryRows } from '../../slicing';

/** Fixed-width text table (first column left-aligned, the rest right-aligned). */
export function table(header: string[], rows: string[][]): string {
  // Every row has the header's cells.
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
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

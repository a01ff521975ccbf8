// The terminal rendering of `inspect`'s report.
import * as path from 'node:path';
import { formatBytes } from '../../formats';
import type { InspectReport } from '../../gemma3n';

const fmtInt = (n: number) => n.toLocaleString('en-US');

function table(rows: string[][], rightAlign: boolean[]): string[] {
  // Every row has the header's cells.
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatReport(r: InspectReport): string {
  const out: string[] = [];
  const t = r.text;
  out.push(`${r.source}`);
  out.push(
    `  config: ${path.basename(r.configPath)} (${r.multimodal ? 'multimodal, text_config' : 'text only'}, transformers ${r.style} style)`,
  );
  out.push(
    `  text: ${t.layers} layers, hidden ${t.hiddenSize}, ${t.numAttentionHeads} heads / ${t.numKeyValueHeads} KV heads × ${t.headDim}, ` +
      `PLE ${t.hiddenSizePerLayerInput}, vocab ${t.vocabSize} (PLE ${t.vocabSizePerLayerInput}), sliding window ${t.slidingWindow}, ` +
      `${t.numKvSharedLayers} KV-shared layers from ${t.firstSharedLayer}`,
  );
  if (r.spec) out.push(`  spec: skip [${r.spec.skip.join(', ')}], ${r.spec.ffn.length} FFN widths`);
  out.push('');
  const showParent = r.spec !== null && r.spec.skip.length > 0;
  const head = ['layer', ...(showParent ? ['parent'] : []), 'type', 'kv', 'kv src', 'ffn', 'sparsity'];
  const rows = r.layers.map((l) => [
    String(l.index),
    ...(showParent ? [String(l.parentIndex)] : []),
    l.type === 'full_attention' ? 'full' : 'sliding',
    l.kv,
    l.kvSource === null ? '' : String(l.kvSource),
    String(l.ffn),
    l.sparsity.toFixed(2),
  ]);
  const align = [true, ...(showParent ? [true] : []), false, false, true, true, true];
  out.push(...table([head, ...rows], align).map((s) => `  ${s}`));
  out.push('');
  const p = r.params;
  const prow = (label: string, n: number | null): string[] => [
    label,
    n === null ? 'n/a' : fmtInt(n),
    n === null ? '' : `${(n / 1e9).toFixed(3)} B`,
  ];
  const prows = [
    prow('effective (text, excl. embeddings)', p.effective),
    prow('token embeddings (tied LM head)', p.embeddings),
    prow('per-layer embeddings (PLE)', p.pleEmbeddings),
    prow('text total', p.textTotal),
  ];
  if (p.total !== null) {
    prows.push(prow('vision (tower + embedder)', p.vision), prow('audio (tower + embedder)', p.audio));
    prows.push(prow('total (all tensors)', p.total));
  }
  out.push('  parameters');
  out.push(...table(prows, [false, true, true]).map((s) => `    ${s}`));
  const ck = r.checkpoint;
  if (!ck) {
    out.push('', '  weights: none (config only)');
    return out.join('\n') + '\n';
  }
  out.push('');
  const dt = Object.entries(ck.dtypes)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  out.push(
    `  checkpoint: ${ck.shards.length} file(s), ${ck.tensors} tensors (${dt}), ${formatBytes(ck.bytes)}`,
  );
  out.push(
    ...table(
      ck.shards.map((s) => [s.file, formatBytes(s.bytes), `${s.tensors} tensors`]),
      [false, true, true],
    ).map((s) => `    ${s}`),
  );
  out.push(
    `  text tensors (${ck.textPrefix}*): ${ck.expectedText} expected, of which ${ck.optionalPresent} optional consumer K/V present`,
  );
  for (const w of ck.warnings) out.push(`  warning: ${w}`);
  if (ck.missing.length + ck.wrongShape.length + ck.unexpected.length === 0) {
    out.push('  all text tensors present with the expected shapes');
  }
  const list = (title: string, items: string[]) => {
    if (items.length === 0) return;
    out.push(`  ${title} (${items.length}):`);
    for (const i of items.slice(0, 50)) out.push(`    ${i}`);
    if (items.length > 50) out.push(`    ... and ${items.length - 50} more`);
  };
  list('missing', ck.missing);
  list(
    'wrong shape',
    ck.wrongShape.map((w) => `${w.name}: [${w.actual.join(', ')}], expected [${w.expected.join(', ')}]`),
  );
  list('unexpected', ck.unexpected);
  return out.join('\n') + '\n';
}

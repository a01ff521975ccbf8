// Which bytes of the parent a slice reads: per source shard, the byte ranges the executor will ask for,
// coalesced where they touch. A remote parent fetches exactly these (and the README's "bytes saved"
// figure comes from here). Pure: plan and tensor locations in, ranges out.
import { ByteRanges, coalesceRanges, dtypeBytes, numel, rangesBytes } from '../formats';
import { SlicePlan } from './plan';

/** Where a source tensor's data lies: its shard and the absolute byte offset of its first byte. */
export interface TensorLocation {
  readonly shard: string;
  readonly offset: number;
}

export interface ReadPlan {
  /** Shard -> sorted, coalesced byte ranges (absolute file offsets). */
  readonly byShard: ReadonlyMap<string, ByteRanges>;
  /** Bytes read from the parent. */
  readonly readBytes: number;
  /** Bytes written (what the slice keeps). Column slices read whole rows, so read ≥ output. */
  readonly outputBytes: number;
}

/**
 * The ranges the executor reads for `plan`: whole tensors for copies, the kept row ranges for row
 * slices (FFN gate/up prefix, PLE projection), and whole rows for column slices (down_proj, PLE table),
 * whose kept columns are compacted in memory: fetching a few kilobytes per row as separate requests
 * would cost a round trip each. Dropped tensors (skipped layers, `--text-only`) are never read.
 */
export function planReads(plan: SlicePlan, locate: (source: string) => TensorLocation): ReadPlan {
  const raw = new Map<string, [number, number][]>();
  for (const t of plan.tensors) {
    const { shard, offset } = locate(t.source);
    const list = raw.get(shard) ?? [];
    raw.set(shard, list);
    const size = numel(t.sourceShape) * dtypeBytes(t.dtype);
    if (t.op.kind === 'rows') {
      const rowBytes = numel(t.sourceShape.slice(1)) * dtypeBytes(t.dtype);
      for (const [a, b] of t.op.ranges) list.push([offset + a * rowBytes, offset + b * rowBytes]);
    } else {
      list.push([offset, offset + size]);
    }
  }
  const byShard = new Map<string, ByteRanges>();
  let readBytes = 0;
  for (const [shard, list] of raw) {
    const ranges = coalesceRanges(list.sort((x, y) => x[0] - y[0]));
    byShard.set(shard, ranges);
    readBytes += rangesBytes(ranges);
  }
  return { byShard, readBytes, outputBytes: plan.outputBytes };
}

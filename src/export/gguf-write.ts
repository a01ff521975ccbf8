// Streams a GGUF plan from the parent's shards into one GGUF file: each tensor is read a few MiB of
// rows at a time (row ranges, or whole rows compacted to the kept columns), converted to the target
// type, followed by its zero padding rows. Memory stays at a few buffers whatever the model size.
import {
  Checkpoint,
  decodeFloat32,
  encodeFromFloat32,
  GgmlType,
  GgufLayout,
  GgufTensor,
  writeGguf,
  numel,
} from '../formats';
import { PlannedTensor } from '../slicing';
import { GgufPlan, GgufTensorPlan } from './gguf-plan';

export const DEFAULT_EXPORT_CHUNK_BYTES = 8 * 1024 * 1024;

const TARGET_DTYPE = { [GgmlType.F32]: 'F32', [GgmlType.F16]: 'F16', [GgmlType.BF16]: 'BF16' } as const;

/** One planned source tensor's bytes, in the slicer's output layout, whole rows at a time. */
function* sourceRows(t: PlannedTensor, ckpt: Checkpoint, chunkBytes: number): Generator<Uint8Array> {
  const rowElems = numel(t.sourceShape.slice(1));
  const rowBytes = (ckpt.info(t.source).end - ckpt.info(t.source).begin) / Math.max(1, t.sourceShape[0] ?? 1);
  const rows = t.sourceShape.length === 0 ? 1 : t.sourceShape[0]!;
  const perChunk = Math.max(1, Math.floor(chunkBytes / Math.max(1, rowBytes)));
  const op = t.op;
  const ranges: readonly (readonly [number, number])[] = op.kind === 'rows' ? op.ranges : [[0, rows]];
  for (const [a, b] of ranges) {
    for (let r = a; r < b; r += perChunk) {
      const n = Math.min(perChunk, b - r);
      const buf = ckpt.readBytes(t.source, r, r + n);
      if (op.kind !== 'cols') {
        yield buf;
        continue;
      }
      const colBytes = rowBytes / (t.sourceShape[1] ?? rowElems);
      let dst = 0;
      for (let k = 0; k < n; k++) {
        for (const [c0, c1] of op.ranges) {
          buf.copyWithin(dst, k * rowBytes + c0 * colBytes, k * rowBytes + c1 * colBytes);
          dst += (c1 - c0) * colBytes;
        }
      }
      yield buf.subarray(0, dst);
    }
  }
}

/** Appends `padBytes` zero bytes to every row of `rowBytes`. */
function padColumns(rows: Uint8Array, rowBytes: number, padBytes: number): Uint8Array {
  const n = rows.byteLength / rowBytes;
  const out = new Uint8Array(n * (rowBytes + padBytes));
  for (let r = 0; r < n; r++)
    out.set(rows.subarray(r * rowBytes, (r + 1) * rowBytes), r * (rowBytes + padBytes));
  return out;
}

async function* tensorData(
  t: GgufTensorPlan,
  ckpt: Checkpoint,
  chunkBytes: number,
): AsyncGenerator<Uint8Array> {
  const target = TARGET_DTYPE[t.type];
  const elem = t.bytes / t.dims.reduce((a, d) => a * d, 1);
  for (const src of t.sources) {
    for (const chunk of sourceRows(src, ckpt, chunkBytes)) {
      const out = src.dtype === target ? chunk : encodeFromFloat32(target, decodeFloat32(src.dtype, chunk));
      yield t.padCols > 0 ? padColumns(out, (t.dims[0]! - t.padCols) * elem, t.padCols * elem) : out;
    }
  }
  if (t.padRows > 0) {
    // dims[0] is the row length in ggml order.
    const rowBytes = (t.bytes / t.dims.reduce((a, d) => a * d, 1)) * t.dims[0]!;
    const perChunk = Math.max(1, Math.floor(chunkBytes / rowBytes));
    const zeros = new Uint8Array(Math.min(perChunk, t.padRows) * rowBytes);
    for (let r = 0; r < t.padRows; r += perChunk) {
      yield zeros.subarray(0, Math.min(perChunk, t.padRows - r) * rowBytes);
    }
  }
}

export interface WriteGgufPlanOptions {
  readonly chunkBytes?: number;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/** Writes `plan` to `file` atomically (temporary sibling, renamed at the end). */
export function writeGgufPlan(
  plan: GgufPlan,
  ckpt: Checkpoint,
  file: string,
  opts: WriteGgufPlanOptions = {},
): Promise<GgufLayout> {
  const chunk = opts.chunkBytes ?? DEFAULT_EXPORT_CHUNK_BYTES;
  const tensors: GgufTensor[] = plan.tensors.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    data: () => tensorData(t, ckpt, chunk),
  }));
  return writeGguf(file, plan.kvs, tensors, { onProgress: opts.onProgress, signal: opts.signal });
}

// Sharded safetensors checkpoints as transformers' save_pretrained writes them: the greedy shard split, the
// file names, the index, and the one writer every command that writes weights goes through (create-random,
// slice). Shards are independent files, so several can be written at once.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint';
import { SafetensorsWriter, TensorSpec, encodeHeader, tensorBytes } from './safetensors';

/** Hugging Face's default shard limit is 5 GB (decimal). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** Greedy split in order, like save_pretrained: a tensor larger than the limit gets its own shard. */
export function planShards<T extends TensorSpec>(tensors: readonly T[], maxShardBytes: number): T[][] {
  const shards: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = tensorBytes(t);
    if (cur.length > 0 && size + n > maxShardBytes) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += n;
  }
  if (cur.length > 0) shards.push(cur);
  return shards;
}

/**
 * `model-00001-of-00003.safetensors`; with `single`, a lone shard is `model.safetensors` (and gets no index,
 * as save_pretrained does).
 */
export function shardFileName(i: number, n: number, single = false): string {
  if (n === 1 && single) return SINGLE_FILE;
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

export interface ShardToWrite<T extends TensorSpec> {
  readonly file: string;
  /** In write order. */
  readonly tensors: readonly T[];
}

export interface ShardedWriteOptions<T extends TensorSpec> {
  /** An existing folder (usually a temporary one the caller renames into place). */
  readonly dir: string;
  readonly shards: readonly ShardToWrite<T>[];
  /**
   * The bytes of one shard's tensors, in order, in chunks of any size. `worker` (0 .. concurrency-1) lets a
   * source keep one set of buffers per concurrent shard.
   */
  readonly data: (tensors: readonly T[], worker: number) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  readonly metadata?: Record<string, string> | null;
  /** Headers only: each data section is a hole that reads back as zeros (for I/O scale tests). */
  readonly sparse?: boolean;
  /** Shards written at once (default 1). */
  readonly concurrency?: number;
  /** Write the index even for a single shard (a lone `model.safetensors` never gets one). */
  readonly index: 'always' | 'when_sharded';
  /** Index metadata besides `total_size`. */
  readonly indexMetadata?: Record<string, number>;
  /** Called after every chunk with its size; throwing from it stops every shard. */
  readonly onChunk?: (bytes: number) => void;
  /** Called after each shard is complete. */
  readonly onShard?: (file: string, bytes: number) => void;
}

export interface ShardedWriteResult {
  /** Shard files, then the index when written. */
  readonly files: readonly string[];
  /** Sum of tensor data bytes (the index's metadata.total_size). */
  readonly totalSize: number;
}

/** Thrown inside the other writers once one has failed; never reaches the caller. */
class StoppedByOtherShard extends Error {}

/** Writes the shards (and the index) into `opts.dir`; on failure the caller removes the folder. */
export async function writeShardedCheckpoint<T extends TensorSpec>(
  opts: ShardedWriteOptions<T>,
): Promise<ShardedWriteResult> {
  let failed = false;
  const stopIfFailed = () => {
    if (failed) throw new StoppedByOtherShard();
  };
  const writeShard = async (shard: ShardToWrite<T>, worker: number) => {
    const file = path.join(opts.dir, shard.file);
    const metadata = opts.metadata === undefined ? { format: 'pt' } : opts.metadata;
    const bytes = shard.tensors.reduce((s, t) => s + tensorBytes(t), 0);
    if (opts.sparse) {
      const { bytes: header } = encodeHeader(shard.tensors, metadata);
      const fh = await fsp.open(file, 'w');
      try {
        await fh.write(header, 0, header.length, 0);
        await fh.truncate(header.length + bytes);
      } finally {
        await fh.close();
      }
    } else {
      const writer = await SafetensorsWriter.create(file, shard.tensors, metadata);
      try {
        for await (const chunk of opts.data(shard.tensors, worker)) {
          stopIfFailed();
          await writer.write(chunk);
          opts.onChunk?.(chunk.byteLength);
        }
        await writer.close();
      } catch (err) {
        await writer.abort();
        throw err;
      }
    }
    opts.onShard?.(shard.file, bytes);
  };

  const queue = opts.shards.map((s, i) => [s, i] as const);
  const results: number[] = [];
  const worker = async (w: number) => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      stopIfFailed();
      await writeShard(next[0], w);
      results.push(next[1]);
    }
  };
  const jobs = Math.max(1, Math.min(opts.concurrency ?? 1, opts.shards.length));
  const settled = await Promise.allSettled(
    Array.from({ length: jobs }, (_, w) =>
      worker(w).catch((err: unknown) => {
        failed = true;
        throw err;
      }),
    ),
  );
  // Report the cause, not the stop it triggered in the other writers.
  const errors = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const cause = errors.find((e) => !(e instanceof StoppedByOtherShard));
  if (cause !== undefined) throw cause;

  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const shard of opts.shards) {
    for (const t of shard.tensors) {
      weightMap[t.name] = shard.file;
      totalSize += tensorBytes(t);
    }
  }
  const files = opts.shards.map((s) => s.file);
  if (opts.index === 'always' || opts.shards.length > 1) {
    const sorted = Object.fromEntries(
      Object.keys(weightMap)
        .sort()
        .map((k) => [k, weightMap[k]]),
    );
    const index = { metadata: { total_size: totalSize, ...opts.indexMetadata }, weight_map: sorted };
    await fsp.writeFile(path.join(opts.dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
    files.push(INDEX_FILE);
  }
  return { files, totalSize };
}

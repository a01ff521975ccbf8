// Executes a slice plan: streams the parent's tensors through the one sharded checkpoint writer, a few
// shards at once, each through two reused buffers (the next chunk is read while the current one is
// written), then writes the config, copied side files and the model card. Everything is built in a temporary
// folder beside the output and renamed into place at the end, so a failure or an interrupt leaves
// no partial output.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  CONFIG_FILE,
  Checkpoint,
  CheckpointTensor,
  InterruptedError,
  OutputGuard,
  TensorShard,
  dtypeBytes,
  numel,
  writeShardedCheckpoint,
} from '../formats';
import { editJsonObject } from './config-text';
import { PlannedTensor, SlicePlan, SourceTensor } from './plan';

/** Thrown when the AbortSignal fires; the temporary folder is gone by then. */
export class SliceAbortedError extends InterruptedError {
  override name = 'SliceAbortedError';
}

/**
 * 8 MiB per buffer: large enough for sequential I/O, small enough to stay in CPU caches between the
 * read and the write (measured faster than 64 MiB on a full-size E4B), and light on memory.
 */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Shards written at once (each with two buffers). */
export const DEFAULT_CONCURRENCY = 4;
export const CARD_FILE = 'README.md';

/** Side files a loader needs besides weights and config (tokenizer, generation, processor, templates). */
const SIDE_FILE_RE =
  /^(tokenizer.*|special_tokens_map\.json|added_tokens\.json|generation_config\.json|(preprocessor|processor|video_preprocessor|feature_extractor)_config\.json|chat_template\.(json|jinja))$/;

export interface ExecuteOptions {
  readonly outDir: string;
  /** Replace an existing output folder. */
  readonly force?: boolean;
  /** Model card text (README.md); none is written when absent. */
  readonly card?: string;
  readonly chunkBytes?: number;
  /** Shards written at the same time (default 4). */
  readonly concurrency?: number;
  /** Output bytes written so far and in total, after every chunk. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Aborting stops after the current chunk, removes the temporary folder and rejects with SliceAbortedError. */
  readonly signal?: AbortSignal;
  /** Told the temporary folder's path once it exists. */
  readonly onTempDir?: (dir: string) => void;
  /** One line per stale temporary or lock of a dead run removed beside the output. */
  readonly onNotice?: (line: string) => void;
}

export interface ExecuteResult {
  readonly outDir: string;
  readonly bytes: number;
  readonly seconds: number;
  readonly files: readonly string[];
}

/** The checkpoint's tensors in physical order (shard by shard, by offset), as planSlice wants them. */
export function sourceTensors(ckpt: Checkpoint<TensorShard>): SourceTensor[] {
  const out: SourceTensor[] = [];
  for (const shard of ckpt.shards) {
    for (const info of shard.list()) {
      if (ckpt.tensors.get(info.name)?.file === shard) out.push(info);
    }
  }
  return out;
}

/** Float-typed list fields: written as `0.0`, never `0`, whatever JavaScript's number printing does. */
const FLOAT_KEYS = new Set(['activation_sparsity_pattern']);

/** The parent's config.json text with only the plan's text_config updates applied. */
export function slicedConfigText(parentText: string, plan: SlicePlan): string {
  const parsed = JSON.parse(parentText) as Record<string, unknown>;
  const t = parsed.text_config;
  const where = typeof t === 'object' && t !== null && !Array.isArray(t) ? ['text_config'] : [];
  const text = editJsonObject(parentText, where, plan.textUpdates, FLOAT_KEYS);
  if (!isDeepStrictEqual(JSON.parse(text), plan.config)) {
    throw new Error('config.json changed while slicing (edited text no longer matches the plan)');
  }
  return text;
}

/** One read: a byte range of a source tensor, and for column ops the per-row ranges to keep. */
interface Chunk {
  readonly src: CheckpointTensor<TensorShard>;
  readonly begin: number;
  readonly length: number;
  readonly cols?: {
    readonly rows: number;
    readonly rowBytes: number;
    readonly keep: readonly [number, number][];
  };
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new RangeError(`plan entry ${i} is out of range`);
  return x;
}

function rowBytesOf(t: PlannedTensor): number {
  return numel(t.sourceShape.slice(1)) * dtypeBytes(t.dtype);
}

/** Splits one planned tensor into reads of at most `chunk` bytes (whole rows for column ops). */
function* chunksOf(t: PlannedTensor, src: CheckpointTensor<TensorShard>, chunk: number): Generator<Chunk> {
  const total = src.info.end - src.info.begin;
  const op = t.op;
  if (op.kind === 'copy' || op.kind === 'rows') {
    const rb = rowBytesOf(t);
    const ranges =
      op.kind === 'copy' ? [[0, total] as const] : op.ranges.map(([a, b]) => [a * rb, b * rb] as const);
    for (const [a, b] of ranges) {
      for (let p = a; p < b; p += chunk) yield { src, begin: p, length: Math.min(chunk, b - p) };
    }
    return;
  }
  const rowBytes = rowBytesOf(t);
  // Column prefixes apply to 2-D tensors only (the plan's column ops).
  const colBytes = rowBytes / at(t.sourceShape, 1);
  const keep = op.ranges.map(([a, b]) => [a * colBytes, b * colBytes] as [number, number]);
  const rows = at(t.sourceShape, 0);
  const perChunk = Math.max(1, Math.floor(chunk / rowBytes));
  for (let r = 0; r < rows; r += perChunk) {
    const n = Math.min(perChunk, rows - r);
    yield { src, begin: r * rowBytes, length: n * rowBytes, cols: { rows: n, rowBytes, keep } };
  }
}

/** Keeps the wanted column ranges of every row, compacting in place (destination never passes source). */
function compactColumns(buf: Uint8Array, cols: NonNullable<Chunk['cols']>): Uint8Array {
  let dst = 0;
  for (let r = 0; r < cols.rows; r++) {
    const base = r * cols.rowBytes;
    for (const [a, b] of cols.keep) {
      buf.copyWithin(dst, base + a, base + b);
      dst += b - a;
    }
  }
  return buf.subarray(0, dst);
}

/** A shard's bytes, double-buffered: the next read fills the other buffer while this chunk is written. */
async function* shardBytes(
  tensors: readonly PlannedTensor[],
  ckpt: Checkpoint<TensorShard>,
  buffers: readonly [Uint8Array, Uint8Array],
  chunk: number,
): AsyncGenerator<Uint8Array> {
  const chunks = (function* () {
    for (const t of tensors) yield* chunksOf(t, ckpt.get(t.source), chunk);
  })();
  const read = (c: Chunk, buf: Uint8Array) => {
    const p = c.src.file.readRangeAsync(c.src.info, c.begin, c.length, buf);
    // A read that fails while we are still writing must not count as an unhandled rejection.
    p.catch(() => undefined);
    return p;
  };
  let k = 0;
  let cur = chunks.next();
  let pending = cur.done ? null : read(cur.value, buffers[0]);
  while (!cur.done && pending) {
    const data = await pending;
    const next = chunks.next();
    pending = next.done ? null : read(next.value, k % 2 === 0 ? buffers[1] : buffers[0]);
    yield cur.value.cols ? compactColumns(data, cur.value.cols) : data;
    cur = next;
    k++;
  }
}

function shardsOf(plan: SlicePlan): { file: string; tensors: PlannedTensor[] }[] {
  return plan.shards.map((s) => ({ file: s.file, tensors: s.tensors.map((i) => at(plan.tensors, i)) }));
}

function indexMetadataOf(plan: SlicePlan): Record<string, number> {
  return { total_parameters: plan.tensors.reduce((a, t) => a + numel(t.shape), 0) };
}

/** Writes a slice's config, side files and card into `tmp` beside its shards and index; returns every file. */
async function completeOutput(
  plan: SlicePlan,
  ckpt: Checkpoint<TensorShard>,
  tmp: string,
  written: readonly string[],
  card: string | undefined,
): Promise<string[]> {
  const parentConfig = await fsp.readFile(path.join(ckpt.dir, CONFIG_FILE), 'utf8');
  await fsp.writeFile(path.join(tmp, CONFIG_FILE), slicedConfigText(parentConfig, plan));
  const files = [...written, CONFIG_FILE];
  for (const name of fs.readdirSync(ckpt.dir).sort()) {
    if (!SIDE_FILE_RE.test(name) || !fs.statSync(path.join(ckpt.dir, name)).isFile()) continue;
    // Content only: a read-only source file must not make the copy read-only.
    await fsp.writeFile(path.join(tmp, name), await fsp.readFile(path.join(ckpt.dir, name)));
    files.push(name);
  }
  if (card !== undefined) {
    await fsp.writeFile(path.join(tmp, CARD_FILE), card);
    files.push(CARD_FILE);
  }
  return files;
}

/**
 * A hand-over of chunks from the one reader to one output's writer. `push` resolves once the writer asks for
 * the next chunk (so it has written this one and the reader may reuse its buffer), or rejects if it failed.
 */
class Handover {
  private item: { bytes: Uint8Array; taken: () => void } | null = null;
  private wanted: (() => void) | null = null;
  private failure: unknown = null;
  private pendingAck: (() => void) | null = null;
  private rejectAck: ((e: unknown) => void) | null = null;

  push(bytes: Uint8Array): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.rejectAck = reject;
      this.item = { bytes, taken: resolve };
      this.wanted?.();
      this.wanted = null;
    });
  }

  fail(err: unknown): void {
    this.failure = err;
    this.rejectAck?.(err);
  }

  /** The bytes of `tensors`, as the reader pushes them. */
  async *pull(total: number): AsyncGenerator<Uint8Array> {
    let got = 0;
    while (got < total) {
      this.pendingAck?.();
      this.pendingAck = null;
      while (!this.item) await new Promise<void>((r) => (this.wanted = r));
      const { bytes, taken } = this.item;
      this.item = null;
      this.pendingAck = taken;
      got += bytes.byteLength;
      yield bytes;
    }
    this.pendingAck?.();
    this.pendingAck = null;
  }
}

export interface PlanOutput {
  readonly plan: SlicePlan;
  readonly outDir: string;
  readonly card?: string;
}

/**
 * Several slices of one parent in one pass over its shards: each source tensor is read once, in chunks of
 * whole rows, and handed to every output that keeps it (its rows, or its columns compacted into the output's
 * own buffer), each output written by the one sharded writer. Each output is built in a temporary folder and
 * renamed into place at the end, all or none.
 */
export async function executePlans(
  outputs: readonly PlanOutput[],
  ckpt: Checkpoint<TensorShard>,
  opts: Pick<ExecuteOptions, 'force' | 'chunkBytes' | 'onProgress' | 'signal' | 'onNotice'> = {},
): Promise<ExecuteResult[]> {
  const started = process.hrtime.bigint();
  for (const o of outputs) await fsp.mkdir(path.dirname(path.resolve(o.outDir)), { recursive: true });
  // One guard for all outputs: distinct, outside the source, new unless --force, locked, all or none.
  const flags = outputs.map((_, k) => `--out[${k}]`);
  const guard = OutputGuard.acquire({
    outputs: outputs.map((o, k) => ({
      flag: at(flags, k),
      path: o.outDir,
      kind: 'folder' as const,
      bytes: o.plan.outputBytes,
    })),
    inputs: [{ flag: 'source checkpoint', path: ckpt.dir }],
    force: opts.force,
    onNotice: opts.onNotice,
  });
  const outs = flags.map((f) => guard.path(f));
  const tmps: string[] = [];
  const aborted = () => new SliceAbortedError('slicing interrupted; no output written');
  try {
    for (const f of flags) {
      tmps.push(guard.temp(f));
      await fsp.mkdir(at(tmps, tmps.length - 1));
    }
    const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const metadata = ckpt.shards[0]?.metadata ?? { format: 'pt' };
    const total = outputs.reduce((n, o) => n + o.plan.outputBytes, 0);
    let done = 0;
    const handovers = outputs.map(() => new Handover());
    const writes = outputs.map((o, k) =>
      writeShardedCheckpoint({
        dir: at(tmps, k),
        shards: shardsOf(o.plan),
        data: (tensors) =>
          at(handovers, k).pull(tensors.reduce((n, t) => n + numel(t.shape) * dtypeBytes(t.dtype), 0)),
        metadata,
        index: 'always',
        indexMetadata: indexMetadataOf(o.plan),
        onChunk: (n) => {
          done += n;
          opts.onProgress?.(done, total);
        },
      }).catch((err: unknown) => {
        handovers.forEach((h) => h.fail(err));
        throw err;
      }),
    );
    writes.forEach((w) => w.catch(() => undefined));
    const reading = (async () => {
      // Each output's tensors in the order its shards hold them (the source's order, filtered).
      const queues = outputs.map((o) => shardsOf(o.plan).flatMap((s) => s.tensors));
      const pos = outputs.map(() => 0);
      let buf = new Uint8Array(chunk);
      const scratch = outputs.map(() => new Uint8Array(chunk));
      for (const source of sourceTensors(ckpt)) {
        const users = queues.flatMap((q, k) => (q[at(pos, k)]?.source === source.name ? [k] : []));
        if (users.length === 0) continue;
        const first = at(at(queues, at(users, 0)), at(pos, at(users, 0)));
        const src = ckpt.get(source.name);
        const scalar = first.sourceShape.length === 0;
        const rowBytes = scalar ? src.info.end - src.info.begin : rowBytesOf(first);
        const rows = scalar ? 1 : at(first.sourceShape, 0);
        // Rows any output needs: row ops keep ranges, the others every row.
        const needed = Math.max(
          ...users.map((k) => {
            const op = at(at(queues, k), at(pos, k)).op;
            return op.kind === 'rows' ? Math.max(0, ...op.ranges.map(([, b]) => b)) : rows;
          }),
        );
        const perChunk = Math.max(1, Math.floor(chunk / rowBytes));
        if (buf.byteLength < perChunk * rowBytes) buf = new Uint8Array(perChunk * rowBytes);
        for (let r = 0; r < needed; r += perChunk) {
          if (opts.signal?.aborted) throw aborted();
          const n = Math.min(perChunk, needed - r);
          const data = await src.file.readRangeAsync(src.info, r * rowBytes, n * rowBytes, buf);
          for (const k of users) {
            const t = at(at(queues, k), at(pos, k));
            const op = t.op;
            const h = at(handovers, k);
            if (op.kind === 'copy') await h.push(data);
            else if (op.kind === 'rows') {
              for (const [a, b] of op.ranges) {
                const lo = Math.max(a, r);
                const hi = Math.min(b, r + n);
                if (lo < hi) await h.push(data.subarray((lo - r) * rowBytes, (hi - r) * rowBytes));
              }
            } else {
              if (at(scratch, k).byteLength < n * rowBytes) scratch[k] = new Uint8Array(n * rowBytes);
              const own = at(scratch, k);
              own.set(data.subarray(0, n * rowBytes));
              const colBytes = rowBytes / at(t.sourceShape, 1);
              const keep = op.ranges.map(([a, b]) => [a * colBytes, b * colBytes] as [number, number]);
              await h.push(compactColumns(own, { rows: n, rowBytes, keep }));
            }
          }
        }
        for (const k of users) pos[k] = at(pos, k) + 1;
      }
      queues.forEach((q, k) => {
        if (at(pos, k) !== q.length)
          throw new Error(`output ${at(outs, k)}: tensors out of source order (internal)`);
      });
    })();
    reading.catch((err: unknown) => handovers.forEach((h) => h.fail(err)));
    const settled = await Promise.allSettled([reading, ...writes]);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const results: ExecuteResult[] = [];
    for (const [k, o] of outputs.entries()) {
      const written = (settled[k + 1] as PromiseFulfilledResult<{ files: readonly string[] }>).value.files;
      const files = await completeOutput(o.plan, ckpt, at(tmps, k), written, o.card);
      results.push({ outDir: at(outs, k), bytes: o.plan.outputBytes, seconds: 0, files });
    }
    if (opts.signal?.aborted) throw aborted();
    for (const [k, f] of flags.entries()) guard.commit(f, at(tmps, k));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return results.map((r) => ({ ...r, seconds }));
  } finally {
    guard.release();
  }
}

/** Writes the plan's output into `opts.outDir` atomically. */
export async function executePlan(
  plan: SlicePlan,
  ckpt: Checkpoint<TensorShard>,
  opts: ExecuteOptions,
): Promise<ExecuteResult> {
  const started = process.hrtime.bigint();
  await fsp.mkdir(path.dirname(path.resolve(opts.outDir)), { recursive: true });
  // Refuses the source (or a folder inside it), an existing output without --force, a concurrent slice to
  // the same folder, a read-only or full target; removes temporaries of dead runs.
  const guard = OutputGuard.acquire({
    outputs: [{ flag: '--out', path: opts.outDir, kind: 'folder', bytes: plan.outputBytes }],
    inputs: [{ flag: 'source checkpoint', path: ckpt.dir }],
    force: opts.force,
    onNotice: opts.onNotice,
  });
  const out = guard.path('--out');
  const tmp = guard.temp('--out');
  try {
    await fsp.mkdir(tmp);
  } catch (err) {
    guard.release();
    throw err;
  }
  opts.onTempDir?.(tmp);
  // The caller's signal stops every shard writer (the writer itself stops the others on a failure).
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) stop.abort();
  const checkAbort = () => {
    if (stop.signal.aborted) throw new SliceAbortedError('slicing interrupted; no output written');
  };
  try {
    checkAbort();
    const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    // A column op reads whole rows, so a buffer holds at least one source row.
    let size = chunk;
    for (const t of plan.tensors) if (t.op.kind === 'cols') size = Math.max(size, rowBytesOf(t));
    const metadata = ckpt.shards[0]?.metadata ?? { format: 'pt' };
    let done = 0;
    // Shards are independent files: writing a few at once spreads the copying over several cores
    // and overlaps one shard's fsync with the others' writes. Each writer owns two buffers.
    const buffers: [Uint8Array, Uint8Array][] = [];
    const written = await writeShardedCheckpoint({
      dir: tmp,
      shards: shardsOf(plan),
      data: (tensors, worker) => {
        checkAbort();
        const pair = (buffers[worker] ??= [new Uint8Array(size), new Uint8Array(size)]);
        return shardBytes(tensors, ckpt, pair, chunk);
      },
      metadata,
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      index: 'always',
      indexMetadata: indexMetadataOf(plan),
      onChunk: (n) => {
        done += n;
        opts.onProgress?.(done, plan.outputBytes);
        checkAbort();
      },
    });
    const files = await completeOutput(plan, ckpt, tmp, written.files, opts.card);
    checkAbort();

    // The guard re-checks the target: what appeared there meanwhile is kept unless --force.
    guard.commit('--out', tmp);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { outDir: out, bytes: plan.outputBytes, seconds, files };
  } finally {
    guard.release();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

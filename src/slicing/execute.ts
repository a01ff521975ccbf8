// Executes a slice plan: streams the parent's shards into new shards, a few shards at once, each
// through two reused buffers (the next chunk is read while the current one is written), then writes
// the index, config, copied side files and the model card. Everything is built in a temporary
// folder beside the output and renamed into place at the end, so a failure or an interrupt leaves
// no partial output.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Checkpoint, CheckpointTensor, CONFIG_FILE, INDEX_FILE } from '../model/checkpoint';
import { isDeepStrictEqual } from 'node:util';
import { dtypeBytes } from '../model/dtype';
import { UserInputError } from '../model/errors';
import { SafetensorsWriter, numel } from '../model/safetensors';
import { editJsonObject } from './config-text';
import { PlannedTensor, SlicePlan, SourceTensor } from './plan';

export class SliceOutputError extends UserInputError {
  override name = 'SliceOutputError';
}

/** Thrown when the AbortSignal fires; the temporary folder is gone by then. */
export class SliceAbortedError extends Error {
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
  /** Told the temporary folder's path once it exists (so a hard exit can still remove it). */
  readonly onTempDir?: (dir: string) => void;
}

export interface ExecuteResult {
  readonly outDir: string;
  readonly bytes: number;
  readonly seconds: number;
  readonly files: readonly string[];
}

/** The checkpoint's tensors in physical order (shard by shard, by offset), as planSlice wants them. */
export function sourceTensors(ckpt: Checkpoint): SourceTensor[] {
  const out: SourceTensor[] = [];
  for (const shard of ckpt.shards) {
    for (const info of shard.list()) {
      if (ckpt.tensors.get(info.name)?.file === shard) out.push(info);
    }
  }
  return out;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Refuses outputs that would overwrite without --force or destroy the source. */
export function checkOutput(srcDir: string, outDir: string, force: boolean): void {
  const src = fs.realpathSync(srcDir);
  const out = path.resolve(outDir);
  const outReal = fs.existsSync(out) ? fs.realpathSync(out) : out;
  if (isInside(src, outReal)) {
    throw new SliceOutputError(
      `--out: ${outDir} is (or contains) the source checkpoint; choose another folder`,
    );
  }
  if (!fs.existsSync(out)) return;
  const st = fs.statSync(out);
  if (st.isDirectory() && fs.readdirSync(out).length === 0) return;
  if (!force) throw new SliceOutputError(`--out: ${outDir} already exists; pass --force to replace it`);
  if (!st.isDirectory()) throw new SliceOutputError(`--out: ${outDir} is a file, not a folder`);
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
  readonly src: CheckpointTensor;
  readonly begin: number;
  readonly length: number;
  readonly cols?: {
    readonly rows: number;
    readonly rowBytes: number;
    readonly keep: readonly [number, number][];
  };
}

function rowBytesOf(t: PlannedTensor): number {
  return numel(t.sourceShape.slice(1)) * dtypeBytes(t.dtype);
}

/** Splits one planned tensor into reads of at most `chunk` bytes (whole rows for column ops). */
function* chunksOf(t: PlannedTensor, src: CheckpointTensor, chunk: number): Generator<Chunk> {
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
  const colBytes = rowBytes / t.sourceShape[1];
  const keep = op.ranges.map(([a, b]) => [a * colBytes, b * colBytes] as [number, number]);
  const rows = t.sourceShape[0];
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

async function writeShard(
  file: string,
  tensors: readonly PlannedTensor[],
  ckpt: Checkpoint,
  buffers: [Uint8Array, Uint8Array],
  chunk: number,
  metadata: Record<string, string> | null,
  step: (bytes: number) => void,
): Promise<void> {
  const writer = await SafetensorsWriter.create(file, tensors, metadata);
  try {
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
      // Overlap: the next read fills the other buffer while this one is compacted and written.
      pending = next.done ? null : read(next.value, buffers[(k + 1) % 2]);
      const out = cur.value.cols ? compactColumns(data, cur.value.cols) : data;
      await writer.write(out);
      step(out.byteLength);
      cur = next;
      k++;
    }
    await writer.close();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** Writes a slice's index, config, side files and card into `tmp` (its shards are there already). */
async function completeOutput(
  plan: SlicePlan,
  ckpt: Checkpoint,
  tmp: string,
  card: string | undefined,
): Promise<string[]> {
  const weightMap: Record<string, string> = {};
  const sorted = [...plan.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of sorted) weightMap[t.name] = plan.shards[t.shard].file;
  const index = {
    metadata: {
      total_size: plan.outputBytes,
      total_parameters: plan.tensors.reduce((a, t) => a + numel(t.shape), 0),
    },
    weight_map: weightMap,
  };
  await fsp.writeFile(path.join(tmp, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
  const parentConfig = await fsp.readFile(path.join(ckpt.dir, CONFIG_FILE), 'utf8');
  await fsp.writeFile(path.join(tmp, CONFIG_FILE), slicedConfigText(parentConfig, plan));
  const files = [...plan.shards.map((s) => s.file), INDEX_FILE, CONFIG_FILE];
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

/** Swaps `tmp` into place at `out`: an old output (only with --force) moves aside first and is removed after. */
async function swapIntoPlace(tmp: string, out: string): Promise<void> {
  let old: string | null = null;
  if (fs.existsSync(out)) {
    old = `${tmp}-old`;
    if (fs.readdirSync(out).length === 0) await fsp.rmdir(out);
    else await fsp.rename(out, old);
  }
  await fsp.rename(tmp, out);
  if (old) await fsp.rm(old, { recursive: true, force: true });
}

function tempDirFor(out: string): string {
  return path.join(path.dirname(out), `.${path.basename(out)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

export interface PlanOutput {
  readonly plan: SlicePlan;
  readonly outDir: string;
  readonly card?: string;
}

/**
 * Several slices of one parent in one pass over its shards: each source tensor is read once, in chunks of
 * whole rows, and every output that keeps it takes its rows or columns from the same buffer. Each output is
 * built in its own temporary folder and renamed into place at the end, all or none.
 */
export async function executePlans(
  outputs: readonly PlanOutput[],
  ckpt: Checkpoint,
  opts: Pick<ExecuteOptions, 'force' | 'chunkBytes' | 'onProgress' | 'signal'> = {},
): Promise<ExecuteResult[]> {
  const started = process.hrtime.bigint();
  const outs = outputs.map((o) => path.resolve(o.outDir));
  if (new Set(outs).size !== outs.length) throw new SliceOutputError('--out: two outputs share a folder');
  outputs.forEach((o) => checkOutput(ckpt.dir, o.outDir, Boolean(opts.force)));
  const tmps: string[] = [];
  const writers = new Map<number, SafetensorsWriter>();
  try {
    for (const out of outs) {
      await fsp.mkdir(path.dirname(out), { recursive: true });
      const tmp = tempDirFor(out);
      await fsp.mkdir(tmp);
      tmps.push(tmp);
    }
    const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const metadata = ckpt.shards[0]?.metadata ?? { format: 'pt' };
    const total = outputs.reduce((n, o) => n + o.plan.outputBytes, 0);
    let done = 0;
    // Each output's tensors in the order its shards hold them (the source's order, filtered).
    const queues = outputs.map((o) =>
      o.plan.shards.flatMap((s, si) => s.tensors.map((i) => ({ t: o.plan.tensors[i], shard: si }))),
    );
    const pos = outputs.map(() => 0);
    const shardOf = outputs.map(() => -1);
    const write = async (k: number, bytes: Uint8Array) => {
      await writers.get(k)!.write(bytes);
      done += bytes.byteLength;
      opts.onProgress?.(done, total);
      if (opts.signal?.aborted) throw new SliceAbortedError('slicing interrupted; no output written');
    };
    let buf = new Uint8Array(chunk);
    let scratch = new Uint8Array(chunk);
    for (const source of sourceTensors(ckpt)) {
      const users = queues.flatMap((q, k) => (q[pos[k]]?.t.source === source.name ? [k] : []));
      if (users.length === 0) continue;
      for (const k of users) {
        const { shard } = queues[k][pos[k]];
        if (shard === shardOf[k]) continue;
        await writers.get(k)?.close();
        const plan = outputs[k].plan;
        const tensors = plan.shards[shard].tensors.map((i) => plan.tensors[i]);
        writers.set(
          k,
          await SafetensorsWriter.create(path.join(tmps[k], plan.shards[shard].file), tensors, metadata),
        );
        shardOf[k] = shard;
      }
      const first = queues[users[0]][pos[users[0]]].t;
      const src = ckpt.get(source.name);
      const rowBytes = first.sourceShape.length === 0 ? src.info.end - src.info.begin : rowBytesOf(first);
      const rows = first.sourceShape.length === 0 ? 1 : first.sourceShape[0];
      // Rows any output needs: row ops keep prefixes/ranges, the others need every row.
      const needed = Math.max(
        ...users.map((k) => {
          const op = queues[k][pos[k]].t.op;
          return op.kind === 'rows' ? Math.max(0, ...op.ranges.map(([, b]) => b)) : rows;
        }),
      );
      const perChunk = Math.max(1, Math.floor(chunk / rowBytes));
      if (buf.byteLength < perChunk * rowBytes) {
        buf = new Uint8Array(perChunk * rowBytes);
        scratch = new Uint8Array(perChunk * rowBytes);
      }
      for (let r = 0; r < needed; r += perChunk) {
        const n = Math.min(perChunk, needed - r);
        const data = await src.file.readRangeAsync(src.info, r * rowBytes, n * rowBytes, buf);
        for (const k of users) {
          const t = queues[k][pos[k]].t;
          const op = t.op;
          if (op.kind === 'copy') await write(k, data);
          else if (op.kind === 'rows') {
            for (const [a, b] of op.ranges) {
              const lo = Math.max(a, r);
              const hi = Math.min(b, r + n);
              if (lo < hi) await write(k, data.subarray((lo - r) * rowBytes, (hi - r) * rowBytes));
            }
          } else {
            scratch.set(data.subarray(0, n * rowBytes));
            const colBytes = rowBytes / t.sourceShape[1];
            const keep = op.ranges.map(([a, b]) => [a * colBytes, b * colBytes] as [number, number]);
            await write(k, compactColumns(scratch, { rows: n, rowBytes, keep }));
          }
        }
      }
      for (const k of users) pos[k]++;
    }
    for (const [k, w] of writers) {
      await w.close();
      writers.delete(k);
    }
    queues.forEach((q, k) => {
      if (pos[k] !== q.length) throw new Error(`output ${outs[k]}: tensors out of source order (internal)`);
    });
    const results: ExecuteResult[] = [];
    for (const [k, o] of outputs.entries()) {
      const files = await completeOutput(o.plan, ckpt, tmps[k], o.card);
      results.push({ outDir: outs[k], bytes: o.plan.outputBytes, seconds: 0, files });
    }
    for (const [k, out] of outs.entries()) await swapIntoPlace(tmps[k], out);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return results.map((r) => ({ ...r, seconds }));
  } catch (err) {
    for (const w of writers.values()) await w.abort();
    for (const tmp of tmps) await fsp.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Writes the plan's output into `opts.outDir` atomically. */
export async function executePlan(
  plan: SlicePlan,
  ckpt: Checkpoint,
  opts: ExecuteOptions,
): Promise<ExecuteResult> {
  const started = process.hrtime.bigint();
  checkOutput(ckpt.dir, opts.outDir, Boolean(opts.force));
  const out = path.resolve(opts.outDir);
  await fsp.mkdir(path.dirname(out), { recursive: true });
  const tmp = tempDirFor(out);
  await fsp.mkdir(tmp);
  opts.onTempDir?.(tmp);
  // One controller stops every shard writer: the caller's signal, or the first failure.
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
    const step = (n: number) => {
      done += n;
      opts.onProgress?.(done, plan.outputBytes);
      checkAbort();
    };
    // Shards are independent files: writing a few at once spreads the copying over several cores
    // and overlaps one shard's fsync with the others' writes. Each writer owns two buffers.
    const queue = [...plan.shards];
    const worker = async () => {
      const buffers: [Uint8Array, Uint8Array] = [new Uint8Array(size), new Uint8Array(size)];
      for (let shard = queue.shift(); shard; shard = queue.shift()) {
        checkAbort();
        const tensors = shard.tensors.map((i) => plan.tensors[i]);
        await writeShard(path.join(tmp, shard.file), tensors, ckpt, buffers, chunk, metadata, step);
      }
    };
    const jobs = Math.max(1, Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, plan.shards.length));
    const settled = await Promise.allSettled(
      Array.from({ length: jobs }, () =>
        worker().catch((err: unknown) => {
          stop.abort();
          throw err;
        }),
      ),
    );
    // Report the cause, not the SliceAbortedError it triggered in the other writers.
    const errors = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length > 0) throw errors.find((e) => !(e instanceof SliceAbortedError)) ?? errors[0];

    const files = await completeOutput(plan, ckpt, tmp, opts.card);
    checkAbort();
    await swapIntoPlace(tmp, out);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { outDir: out, bytes: plan.outputBytes, seconds, files };
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

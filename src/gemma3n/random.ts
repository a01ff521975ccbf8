// Random Gemma 3n checkpoints in the published Hugging Face layout, for tests and I/O benchmarks at any
// size. Values are bf16 and deterministic per (seed, tensor name), so the shard layout does not change
// them. Data are generated in fixed-size chunks: a 16 GB E4B needs only one chunk buffer in memory.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import {
  CONFIG_FILE,
  DEFAULT_MAX_SHARD_BYTES,
  InterruptedError,
  OutputGuard,
  TensorSpec,
  UserInputError,
  mulberry32,
  naming,
  normalQuantile,
  planShards,
  shardFileName,
  tensorBytes,
  writeShardedCheckpoint,
} from '../formats';
import { ModelConfig, loadConfig } from './config';
import { RandomFill, TEXT_PREFIX, expectedTextTensors } from './tensors';
const CHUNK_VALUES = 2 * 1024 * 1024; // 4 MB of bf16 per write

export interface CreateRandomOptions {
  /** A config.json (or a folder holding one). */
  readonly config: string;
  readonly out: string;
  readonly seed?: number;
  /** Write full-size files whose tensor data are holes (all zeros), for I/O scale tests. */
  readonly sparse?: boolean;
  readonly maxShardBytes?: number;
  /** Replace a non-empty --out. */
  readonly force?: boolean;
  /** Called after each shard is written. */
  readonly onShard?: (file: string, bytes: number) => void;
  /** Aborting stops after the current chunk; the temporary folder is removed (InterruptedError). */
  readonly signal?: AbortSignal;
  /** One line per stale temporary or lock of a dead run removed beside the output. */
  readonly onNotice?: (line: string) => void;
  /** More files for the folder (a tokenizer), by name, written before it is renamed into place. */
  readonly extraFiles?: Readonly<Record<string, string>>;
}

export interface CreateRandomResult {
  readonly dir: string;
  readonly shards: readonly string[];
  readonly tensors: number;
  /** Sum of tensor data bytes (the index's metadata.total_size). */
  readonly totalSize: number;
}

/** How a tensor's values are drawn: mean + std · N(0, 1). */
export interface Init {
  readonly mean: number;
  readonly std: number;
}

export interface PlannedTensor extends TensorSpec {
  readonly init: Init;
}

/** The table's fill for a text tensor: mean + std · N(0, 1), `fan_in` = std 1/√(in features). */
function initOf(fill: RandomFill, shape: readonly number[]): Init {
  if (fill !== 'fan_in') return fill;
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return { mean: 0, std: 1 / Math.sqrt(Math.max(1, fanIn)) };
}

/** The vision/audio embedders that stand in for the towers (not text tensors, so not in the table). */
const TOWER_FILL: Record<string, RandomFill> = {
  'embedding.weight': { mean: 0, std: 0.5 },
  'hard_embedding_norm.weight': { mean: 1, std: 0.1 },
  'soft_embedding_norm.weight': { mean: 1, std: 0.1 },
  'embedding_projection.weight': 'fan_in',
};

function positiveInt(raw: Record<string, unknown> | undefined, key: string): number | null {
  const v = raw?.[key];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
}

/**
 * Every tensor of the checkpoint: the text decoder (consumer layers keep their unused K/V, as Google's
 * files do) and, for a multimodal config, the vision/audio embedders, which stand in for the towers.
 */
export function planTensors(cfg: ModelConfig): PlannedTensor[] {
  const c = cfg.text;
  const prefix = cfg.multimodal ? TEXT_PREFIX : 'model.';
  const specs: { name: string; shape: number[]; init: Init }[] = expectedTextTensors(
    c,
    new Set(),
    prefix,
  ).map((t) => ({ name: t.name, shape: t.shape, init: initOf(t.family.fill, t.shape) }));
  if (cfg.multimodal) {
    const towers: [string, Record<string, unknown> | undefined][] = [
      ['vision', cfg.raw.vision_config as Record<string, unknown> | undefined],
      ['audio', cfg.raw.audio_config as Record<string, unknown> | undefined],
    ];
    for (const [kind, sub] of towers) {
      const hidden = positiveInt(sub, 'hidden_size');
      if (hidden === null) continue;
      const vocab = positiveInt(sub, 'vocab_size') ?? 128;
      const p = `model.embed_${kind}.`;
      const shapes: Record<string, number[]> = {
        'embedding.weight': [vocab, hidden],
        'hard_embedding_norm.weight': [hidden],
        'soft_embedding_norm.weight': [hidden],
        'embedding_projection.weight': [c.hidden_size, hidden],
      };
      for (const [key, shape] of Object.entries(shapes)) {
        const fill = TOWER_FILL[key] ?? 'fan_in';
        specs.push({ name: p + key, shape, init: initOf(fill, shape) });
      }
    }
  }
  // safetensors (Python) writes a file's tensors sorted by name when all share a dtype.
  specs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return specs.map((s) => ({ ...s, dtype: 'BF16' as const }));
}

// --- deterministic random numbers ---------------------------------------------------------------

/** FNV-1a over the name, mixed with the seed: each tensor gets its own stream. */
export function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= Math.floor(seed / 2 ** 32);
  return h >>> 0;
}

const tables = new Map<string, Uint16Array>();

/**
 * bf16 bit patterns of mean + std·Φ⁻¹((i + ½)/65536): indexing it with 16 uniform random bits samples
 * N(mean, std²) up to bf16 resolution (tails end at ±4.2σ). Much faster than Box-Muller, which matters
 * for the 8 billion values of a full-size E4B.
 */
function bf16NormalTable(init: Init): Uint16Array {
  const key = `${init.mean}/${init.std}`;
  let t = tables.get(key);
  if (!t) {
    const f = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f[i] = init.mean + init.std * normalQuantile((i + 0.5) / 65536);
    const u32 = new Uint32Array(f.buffer);
    t = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) {
      const x = u32[i]!;
      t[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // round to nearest even
    }
    tables.set(key, t);
  }
  return t;
}

/** Fills `out` with the next values of a tensor's stream (two values per 32-bit draw). */
function fillBf16(out: Uint16Array, count: number, table: Uint16Array, next: () => number): void {
  let i = 0;
  for (; i + 1 < count; i += 2) {
    const r = next();
    // The table has 65536 entries: every 16-bit index is in it.
    out[i] = table[r & 0xffff]!;
    out[i + 1] = table[r >>> 16]!;
  }
  if (i < count) out[i] = table[next() & 0xffff]!;
}

/** A tensor's values as bf16, in chunks (the same bytes whatever the chunk size, if it is even). */
export function* randomTensorChunks(
  seed: number,
  t: PlannedTensor,
  chunkValues = CHUNK_VALUES,
  buffer?: Uint16Array,
): Generator<Uint8Array> {
  const total = tensorBytes(t) / 2;
  const table = bf16NormalTable(t.init);
  const next = mulberry32(tensorSeed(seed, t.name));
  const size = chunkValues + (chunkValues % 2);
  const buf = buffer && buffer.length >= size ? buffer : new Uint16Array(size);
  for (let done = 0; done < total;) {
    const n = Math.min(size, total - done);
    fillBf16(buf, n, table, next);
    done += n;
    yield new Uint8Array(buf.buffer, buf.byteOffset, n * 2);
  }
}

// --- writing -------------------------------------------------------------------------------------

/** Builds the checkpoint in a temporary folder beside `out` and renames it into place at the end. */
export async function createRandomCheckpoint(opts: CreateRandomOptions): Promise<CreateRandomResult> {
  const cfg = loadConfig(opts.config);
  const configPath = opts.config.endsWith('.json') ? opts.config : path.join(opts.config, CONFIG_FILE);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new UserInputError(`--seed must be a non-negative integer, got ${seed}`);
  const maxShard = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(maxShard) || maxShard <= 0)
    throw new UserInputError(`--max-shard-size must be a positive integer`);
  const tensors = planTensors(cfg);
  const groups = planShards(tensors, maxShard);
  const totalBytes = tensors.reduce((n, t) => n + tensorBytes(t), 0);
  await fsp.mkdir(path.dirname(path.resolve(opts.out)), { recursive: true });
  // Refuses an --out holding the config, an existing one without --force, a concurrent writer, a read-only or
  // full target; removes temporaries of dead runs.
  const guard = OutputGuard.acquire({
    outputs: [{ flag: '--out', path: opts.out, kind: 'folder', bytes: opts.sparse ? 0 : totalBytes }],
    inputs: [{ flag: '--config', path: opts.config }],
    force: opts.force,
    onNotice: opts.onNotice,
  });
  try {
    const out = guard.path('--out');
    const tmp = guard.temp('--out');
    // Readable like any other folder (umask permitting), unlike a mkdtemp one.
    await fsp.mkdir(tmp, { mode: 0o755 });
    const buf = new Uint16Array(CHUNK_VALUES);
    const { files, totalSize } = await naming(tmp, () =>
      writeShardedCheckpoint({
        dir: tmp,
        shards: groups.map((g, i) => ({ file: shardFileName(i, groups.length, true), tensors: g })),
        data: function* (shard) {
          for (const t of shard) {
            for (const chunk of randomTensorChunks(seed, t, buf.length, buf)) {
              checkAborted(opts.signal);
              yield chunk;
            }
          }
        },
        sparse: Boolean(opts.sparse),
        index: 'when_sharded',
        onShard: opts.onShard,
      }),
    );
    const names = files.slice(0, groups.length);
    // The config is copied byte for byte: it is the user's file, unknown keys and style included.
    // Same bytes, fresh permissions (a copy of a read-only config would stay read-only).
    await fsp.writeFile(path.join(tmp, CONFIG_FILE), await fsp.readFile(configPath));
    await fsp.writeFile(
      path.join(tmp, 'generation_config.json'),
      JSON.stringify(generationConfig(cfg), null, 2) + '\n',
    );
    for (const [name, text] of Object.entries(opts.extraFiles ?? {}))
      await fsp.writeFile(path.join(tmp, name), text);
    checkAborted(opts.signal);
    guard.commit('--out', tmp);
    return { dir: out, shards: names, tensors: tensors.length, totalSize };
  } finally {
    guard.release();
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError('create-random interrupted; no output written');
}

function generationConfig(cfg: ModelConfig): Record<string, unknown> {
  const t = cfg.text;
  return {
    _from_model_config: true,
    bos_token_id: t.bos_token_id,
    eos_token_id: (cfg.raw.eos_token_id as unknown) ?? t.eos_token_id,
    pad_token_id: t.pad_token_id,
    use_cache: true,
  };
}

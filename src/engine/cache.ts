// KV cache for incremental decoding: one [B, Kh, S, D] K and V per non-consumer layer (consumers read their
// producer's, §3.7/§3.9), plus the position of every key column on the host. Masks are built from positions,
// not column indices, so right padding, ragged batches and a trimmed sliding window all use one rule:
// key s is visible to query t iff pos_s ≤ pos_t and, on sliding layers, pos_t − pos_s < window.
import * as tf from '@tensorflow/tfjs-core';
import type {
  AttentionKeys,
  AttentionKind,
  KvSharing,
  LayerPlan,
  PastEntry,
  PastKv,
  SharedKv,
} from './gemma3n';
import { packKeyPositions } from './kernels/attention';

/** Key position of a padded (invalid) column: larger than any real position, so never ≤ a query's. */
export const PAD_KEY_POSITION = 1 << 30;
const MASKED = -1e9;

/**
 * 0 where visible, MASKED elsewhere. Not tf.where(visible, 0, MASKED): where() broadcasts its scalars to the
 * full shape through the Tile kernel, which the webgpu backend runs on the host for such small host-resident
 * inputs (measured on the GPU machine: ~1 s of host time in a prefill of 8×512, for 4 masks). (1 − v)·MASKED is
 * the same values (its 0 is −0, which adds as 0) and stays on the device.
 */
function additive(visible: tf.Tensor): tf.Tensor4D {
  return tf.mul(tf.sub(1, tf.cast(visible, 'float32')), MASKED);
}

/**
 * Additive masks [B, heads, T, S] for T queries at `queryPos` ([B·T]) over key columns at `keyPos` ([B, S],
 * row per sequence); the sliding mask covers columns [slidingStart, S). `heads` > 1 repeats the mask per head,
 * built once per forward, for backends where adding a broadcast [B, 1, T, S] to every layer's scores is slow
 * (TF.js cpu broadcasts through a per-element index path).
 */
export function buildMasks(
  queryPos: Int32Array,
  keyPos: Int32Array,
  B: number,
  T: number,
  S: number,
  slidingStart: number,
  window: number,
  heads = 1,
): Record<AttentionKind, tf.Tensor4D> {
  return tf.tidy(() => {
    const q = tf.tensor4d(queryPos, [B, 1, T, 1], 'int32');
    const kAll = tf.tensor4d(keyPos, [B, 1, 1, S], 'int32');
    const causal = (k: tf.Tensor4D) => tf.lessEqual(k, q);
    const full = additive(causal(kAll));
    const k = slidingStart > 0 ? tf.slice(kAll, [0, 0, 0, slidingStart], [-1, -1, -1, -1]) : kAll;
    const inWindow = tf.less(tf.sub(q, k), window);
    const sliding = additive(tf.logicalAnd(causal(k), inWindow));
    if (heads === 1) return { full, sliding };
    return { full: tf.tile(full, [1, heads, 1, 1]), sliding: tf.tile(sliding, [1, heads, 1, 1]) };
  });
}

/** A batch-1 prefix every row of a cache attends to: K/V [1, Kh, P, D] per layer, read at batch stride 0. */
interface SharedPrefix {
  /** The prefix cache's own tensors (references: not owned, not cloned, since a clone counts its bytes again). */
  readonly entries: ReadonlyMap<number, SharedKv>;
  /** Positions of the prefix's columns (full layers hold all of them). */
  readonly keyPos: readonly number[];
  /** Sliding layers hold columns [slidingStart, keyPos.length) of the prefix. */
  readonly slidingStart: number;
}

export class KvCache {
  /** The rows' own K/V [B, Kh, S, D] (after the shared prefix, if any). */
  private readonly entries = new Map<number, { k: tf.Tensor4D; v: tf.Tensor4D }>();
  /** Key positions of the rows' own columns, one row per sequence (PAD_KEY_POSITION for padding). */
  private keyPos: number[][];
  private shared: SharedPrefix | null = null;
  /** The cache whose K/V `shared` reads, and how many live caches read this one's. */
  private origin: KvCache | null = null;
  private sharers = 0;
  /** Next RoPE position of each sequence (= tokens it has seen). */
  readonly nextPos: number[];
  /** Sliding layers hold columns [slidingStart, length) only. */
  private slidingStart = 0;
  private disposed = false;

  constructor(
    private readonly layers: readonly LayerPlan[],
    readonly batch: number,
    readonly window: number,
  ) {
    this.keyPos = Array.from({ length: batch }, () => []);
    this.nextPos = new Array<number>(batch).fill(0);
  }

  /** True when this cache was made for exactly this layer plan (caches are not portable between views). */
  belongsTo(layers: readonly LayerPlan[]): boolean {
    return layers === this.layers;
  }

  /** Columns of the rows' own K/V (after the shared prefix, if any). */
  private get ownLength(): number {
    return this.keyPos[0]?.length ?? 0;
  }

  /** Key columns held for full layers (a shared prefix's included). */
  get length(): number {
    return (this.shared?.keyPos.length ?? 0) + this.ownLength;
  }

  /** Columns held for sliding layers (the window trimming drops old ones). */
  get slidingLength(): number {
    return this.length - this.slidingStart - (this.shared?.slidingStart ?? 0);
  }

  /** True when the rows attend to a batch-1 prefix they share (see `share`). */
  get sharesPrefix(): boolean {
    return this.shared !== null;
  }

  past(layer: number): PastEntry | undefined {
    this.check();
    const own = this.entries.get(layer) ?? null;
    const shared = this.shared?.entries.get(layer) ?? null;
    return own || shared ? { own, shared } : undefined;
  }

  /** Masks for a step whose new keys sit at `newKeyPos` ([B·T]) and queries at `queryPos`. */
  masks(
    queryPos: Int32Array,
    newKeyPos: Int32Array,
    T: number,
    heads = 1,
  ): Record<AttentionKind, tf.Tensor4D> {
    this.check();
    const B = this.batch;
    const prefix = this.shared?.keyPos ?? [];
    const P = prefix.length;
    const S0 = this.ownLength;
    const S = P + S0 + T;
    const all = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      // keyPos has one row per sequence, each of S0 columns; newKeyPos holds B·T entries.
      const row = this.keyPos[b]!;
      for (let s = 0; s < P; s++) all[b * S + s] = prefix[s]!;
      for (let s = 0; s < S0; s++) all[b * S + P + s] = row[s]!;
      for (let t = 0; t < T; t++) all[b * S + P + S0 + t] = newKeyPos[b * T + t]!;
    }
    const slidingStart = this.shared ? this.shared.slidingStart : this.slidingStart;
    return buildMasks(queryPos, all, B, T, S, slidingStart, this.window, heads);
  }

  /**
   * Key positions for a step of a cache that shares a prefix (what the attention program builds its masks
   * from): the prefix's columns once, not per row, and each row's own columns plus its new ones.
   */
  keyPositions(queryPos: Int32Array, newKeyPos: Int32Array, T: number): AttentionKeys {
    this.check();
    if (!this.shared) throw new Error('key positions are for a cache that shares a prefix');
    const B = this.batch;
    const S0 = this.ownLength;
    const S = S0 + T;
    const own = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      own.set(this.keyPos[b]!, b * S);
      own.set(newKeyPos.subarray(b * T, (b + 1) * T), b * S + S0);
    }
    const prefix = this.shared.keyPos;
    const packed = (columns: readonly number[]) =>
      tf.tensor1d(packKeyPositions(queryPos, columns, own), 'int32');
    return {
      positions: { full: packed(prefix), sliding: packed(prefix.slice(this.shared.slidingStart)) },
      window: this.window,
    };
  }

  /** Takes ownership of the full K/V (past + new) each non-consumer layer published in a forward. */
  absorb(kv: KvSharing): void {
    this.check();
    if (this.sharers > 0) throw new Error('a KV cache cannot advance while caches that share it are alive');
    this.layers.forEach((plan, i) => {
      if (plan.kvRole === 'consumer') return;
      const next = kv.take(i);
      if (!next) throw new Error(`layer ${i} published no K/V`);
      const old = this.entries.get(i);
      if (old) tf.dispose([old.k, old.v]);
      this.entries.set(i, { k: next.k, v: next.v });
    });
  }

  /** Records the new key columns and advances positions; then drops sliding columns no query can see again. */
  commit(newKeyPos: Int32Array, T: number, lengths: readonly number[]): void {
    this.check();
    for (let b = 0; b < this.batch; b++) {
      const lengthB = lengths[b];
      if (lengthB === undefined) throw new RangeError(`no length for sequence ${b} of ${this.batch}`);
      for (let t = 0; t < T; t++) this.keyPos[b]!.push(newKeyPos[b * T + t]!);
      this.nextPos[b]! += lengthB;
    }
    this.trimSliding();
  }

  /**
   * Future queries of sequence b have positions ≥ nextPos[b], so a key at p ≤ nextPos[b] − window is dead for
   * sliding layers. Dead columns form a prefix (positions grow along columns); drop it once it is at least half
   * a window long so the copy is amortised.
   */
  private trimSliding(): void {
    // With a shared prefix the rows' own columns are masked by position instead (they follow a prefix that is
    // not trimmed per row).
    if (this.shared) return;
    let dead = 0;
    for (let s = this.slidingStart; s < this.length; s++) {
      let isDead = true;
      for (let b = 0; b < this.batch && isDead; b++) {
        const p = this.keyPos[b]![s]!; // b < batch rows, s < length columns
        isDead = p === PAD_KEY_POSITION || p <= this.nextPos[b]! - this.window;
      }
      if (!isDead) break;
      dead++;
    }
    if (dead === 0 || dead < Math.max(1, Math.floor(this.window / 2))) return;
    this.layers.forEach((plan, i) => {
      const e = this.entries.get(i);
      if (!e || plan.kind !== 'sliding') return;
      const trimmed = {
        k: tf.slice(e.k, [0, 0, dead, 0], [-1, -1, -1, -1]),
        v: tf.slice(e.v, [0, 0, dead, 0], [-1, -1, -1, -1]),
      };
      tf.dispose([e.k, e.v]);
      this.entries.set(i, trimmed);
    });
    this.slidingStart += dead;
  }

  /**
   * A cache of `n` rows that all continue this (batch-1) one, e.g. a few-shot prefix and a group of
   * questions, or a prompt and several continuations: the prefix's K/V stays [1, Kh, P, D] (this cache's own
   * tensors, read by reference), each row adds its own K/V behind it. This cache must outlive the shared one
   * and cannot advance while it lives.
   */
  share(n: number): KvCache {
    this.check();
    if (this.batch !== 1) throw new Error('only a batch-1 cache can be shared');
    if (this.shared) throw new Error('a cache that shares a prefix cannot be shared again');
    if (!Number.isInteger(n) || n < 1) throw new RangeError('share: n must be a positive integer');
    const c = new KvCache(this.layers, n, this.window);
    const entries = new Map<number, SharedKv>();
    for (const [i, { k, v }] of this.entries) entries.set(i, { k, v });
    c.shared = { entries, keyPos: [...this.keyPos[0]!], slidingStart: this.slidingStart }; // batch 1: one row
    c.origin = this;
    this.sharers++;
    c.nextPos.fill(this.nextPos[0]!);
    return c;
  }

  /**
   * A copy of this (batch-1) cache repeated `n` times along the batch axis: B·P K/V per layer. `share` is
   * the form to use; this one stays as the reference the tests compare it with.
   */
  broadcast(n: number): KvCache {
    this.check();
    if (this.batch !== 1) throw new Error('only a batch-1 cache can be broadcast');
    if (this.shared) throw new Error('a cache that shares a prefix cannot be broadcast');
    const c = new KvCache(this.layers, n, this.window);
    for (const [i, { k, v }] of this.entries)
      c.entries.set(i, { k: tf.tile(k, [n, 1, 1, 1]), v: tf.tile(v, [n, 1, 1, 1]) });
    c.keyPos = Array.from({ length: n }, () => [...this.keyPos[0]!]); // batch 1: one row
    c.nextPos.fill(this.nextPos[0]!);
    c.slidingStart = this.slidingStart;
    return c;
  }

  /** Bytes of K/V this cache's rows hold on the backend (a shared prefix's are the prefix cache's). */
  get bytes(): number {
    let n = 0;
    for (const { k, v } of this.entries.values()) n += (k.size + v.size) * 4;
    return n;
  }

  dispose(): void {
    for (const { k, v } of this.entries.values()) tf.dispose([k, v]);
    this.entries.clear();
    if (this.origin && !this.disposed) this.origin.sharers--;
    this.origin = null;
    this.shared = null;
    this.disposed = true;
  }

  private check(): void {
    if (this.disposed) throw new Error('KV cache used after dispose()');
  }
}

/**
 * The K/V a paused batch-1 prefix forward published, seen by a batch of rows that continue it: a prefix they
 * share ([1, Kh, P, D], read at batch stride 0, never repeated per row).
 */
export class PrefixPast implements PastKv {
  constructor(private readonly kv: KvSharing) {}

  past(layer: number): PastEntry {
    const { k, v } = this.kv.read(layer);
    return { own: null, shared: { k, v } };
  }
}

// KV cache for incremental decoding: one [B, Kh, S, D] K and V per non-consumer layer (consumers read their
// producer's, §3.7/§3.9), plus the position of every key column on the host. Masks are built from positions,
// not column indices, so right padding, ragged batches and a trimmed sliding window all use one rule:
// key s is visible to query t iff pos_s ≤ pos_t and, on sliding layers, pos_t − pos_s < window.
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionKind, KvSharing, LayerPlan, PastKv } from './gemma3n';

/** Key position of a padded (invalid) column: larger than any real position, so never ≤ a query's. */
export const PAD_KEY_POSITION = 1 << 30;
const MASKED = -1e9;

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
    const full = tf.where(causal(kAll), 0, MASKED) as tf.Tensor4D;
    const k = slidingStart > 0 ? tf.slice(kAll, [0, 0, 0, slidingStart], [-1, -1, -1, -1]) : kAll;
    const inWindow = tf.less(tf.sub(q, k), window);
    const sliding = tf.where(tf.logicalAnd(causal(k), inWindow), 0, MASKED) as tf.Tensor4D;
    if (heads === 1) return { full, sliding };
    return { full: tf.tile(full, [1, heads, 1, 1]), sliding: tf.tile(sliding, [1, heads, 1, 1]) };
  });
}

export class KvCache {
  private readonly entries = new Map<number, { k: tf.Tensor4D; v: tf.Tensor4D }>();
  /** Key positions, one row per sequence, one entry per column (PAD_KEY_POSITION for padding). */
  private keyPos: number[][];
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

  /** Key columns held for full layers. */
  get length(): number {
    return this.keyPos[0]?.length ?? 0;
  }

  /** Columns held for sliding layers (the window trimming drops old ones). */
  get slidingLength(): number {
    return this.length - this.slidingStart;
  }

  past(layer: number): { k: tf.Tensor4D; v: tf.Tensor4D } | undefined {
    this.check();
    return this.entries.get(layer);
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
    const S0 = this.length;
    const S = S0 + T;
    const all = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      // keyPos has one row per sequence, each of S0 columns; newKeyPos holds B·T entries.
      const row = this.keyPos[b]!;
      for (let s = 0; s < S0; s++) all[b * S + s] = row[s]!;
      for (let t = 0; t < T; t++) all[b * S + S0 + t] = newKeyPos[b * T + t]!;
    }
    return buildMasks(queryPos, all, B, T, S, this.slidingStart, this.window, heads);
  }

  /** Takes ownership of the full K/V (past + new) each non-consumer layer published in a forward. */
  absorb(kv: KvSharing): void {
    this.check();
    this.layers.forEach((plan, i) => {
      if (plan.kvRole === 'consumer') return;
      const next = kv.take(i);
      if (!next) throw new Error(`layer ${i} published no K/V`);
      const old = this.entries.get(i);
      if (old) tf.dispose([old.k, old.v]);
      this.entries.set(i, next);
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

  /** A copy of this (batch-1) cache repeated `n` times along the batch axis, e.g. a prompt prefix per suffix. */
  broadcast(n: number): KvCache {
    this.check();
    if (this.batch !== 1) throw new Error('only a batch-1 cache can be broadcast');
    const c = new KvCache(this.layers, n, this.window);
    for (const [i, { k, v }] of this.entries)
      c.entries.set(i, { k: tf.tile(k, [n, 1, 1, 1]), v: tf.tile(v, [n, 1, 1, 1]) });
    c.keyPos = Array.from({ length: n }, () => [...this.keyPos[0]!]); // batch 1: one row
    c.nextPos.fill(this.nextPos[0]!);
    c.slidingStart = this.slidingStart;
    return c;
  }

  /** Bytes of K/V held on the backend. */
  get bytes(): number {
    let n = 0;
    for (const { k, v } of this.entries.values()) n += (k.size + v.size) * 4;
    return n;
  }

  dispose(): void {
    for (const { k, v } of this.entries.values()) tf.dispose([k, v]);
    this.entries.clear();
    this.disposed = true;
  }

  private check(): void {
    if (this.disposed) throw new Error('KV cache used after dispose()');
  }
}

/**
 * The K/V a paused batch-1 prefix forward published, seen by a batch of B rows that continue it: each read
 * repeats the prefix along the batch axis (inside the reading layer's tidy, so it lives for that layer only).
 */
export class PrefixPast implements PastKv {
  constructor(
    private readonly kv: KvSharing,
    private readonly batch: number,
  ) {}

  past(layer: number): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const { k, v } = this.kv.read(layer);
    if (this.batch === 1) return { k, v };
    return { k: tf.tile(k, [this.batch, 1, 1, 1]), v: tf.tile(v, [this.batch, 1, 1, 1]) };
  }
}

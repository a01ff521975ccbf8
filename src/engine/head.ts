// The tied LM head (logits = soft-cap(h · Eᵀ), §3.8), resident as column chunks of Eᵀ so no tensor exceeds the
// backend's binding limit (E4B: 262400×2048 f32 = 2.15 GB > WebGPU's 2 GiB). Every consumer works chunk by
// chunk: full logits are assembled on the host, argmax and log-sum-exp are reduced per chunk on the backend and
// combined on the host, so no [T, vocab] tensor is ever created.
import * as tf from '@tensorflow/tfjs-core';
import { byRow } from './gemma3n';
import { LinearWeight } from './kernels/linear';

export interface HeadChunk {
  /** First vocabulary id of the chunk. */
  readonly start: number;
  readonly rows: number;
  /** Eᵀ columns [start, start + rows): [H, rows] (float32 or packed bf16). */
  readonly w: LinearWeight;
}

export interface RestrictedRow {
  /** Soft-capped logits at the requested vocabulary ids. */
  readonly logits: Float32Array;
  /** log Σ_v exp(logit_v) over the whole vocabulary (float64 on the host). */
  readonly logsumexp: number;
}

export class LmHead {
  private constructor(
    readonly vocabSize: number,
    readonly hiddenSize: number,
    readonly chunks: readonly HeadChunk[],
    private readonly softcap: number | null,
    /** Largest tensor (bytes) an op may produce here. */
    private readonly maxBytes: number,
  ) {}

  /**
   * Uploads E in ⌈V·H·4 / maxBytes⌉ equal row chunks, each transposed once on the backend. `rows(a, b)` returns
   * rows [a, b) of the embedding as float32 (read from the checkpoint, so the host never holds all of it).
   */
  static load(
    vocabSize: number,
    hiddenSize: number,
    softcap: number | null,
    maxBytes: number,
    rows: (start: number, end: number) => Float32Array,
    packBf16 = false,
  ): LmHead {
    const total = vocabSize * hiddenSize * 4;
    const n = Math.max(1, Math.ceil(total / maxBytes));
    const per = Math.ceil(vocabSize / n);
    const chunks: HeadChunk[] = [];
    try {
      for (let start = 0; start < vocabSize; start += per) {
        const count = Math.min(per, vocabSize - start);
        const w = LinearWeight.fromTorch(rows(start, start + count), count, hiddenSize, packBf16);
        chunks.push({ start, rows: count, w });
      }
    } catch (e) {
      for (const c of chunks) c.w.dispose();
      throw e;
    }
    return new LmHead(vocabSize, hiddenSize, chunks, softcap, maxBytes);
  }

  /** cap · tanh(x / cap), as transformers writes it. */
  private cap(x: tf.Tensor2D): tf.Tensor2D {
    return this.softcap === null ? x : tf.mul(tf.tanh(tf.div(x, this.softcap)), this.softcap);
  }

  /** Row blocks of `h` small enough that a [block, chunk] logits tile stays under the size limit. */
  private blocks(n: number): [number, number][] {
    const maxRows = Math.max(
      1,
      Math.floor(this.maxBytes / (4 * Math.max(...this.chunks.map((c) => c.rows)))),
    );
    const out: [number, number][] = [];
    for (let a = 0; a < n; a += maxRows) out.push([a, Math.min(n, a + maxRows)]);
    return out;
  }

  /** Soft-capped logits [N, V] of h [N, H], as a host array (row-major). */
  async logits(h: tf.Tensor2D): Promise<Float32Array> {
    const N = h.shape[0];
    const V = this.vocabSize;
    const out = new Float32Array(N * V);
    for (const [a, b] of this.blocks(N)) {
      for (const c of this.chunks) {
        const tile = tf.tidy(() => this.cap(c.w.apply(tf.slice(h, [a, 0], [b - a, -1]))));
        const data = (await tile.data()) as Float32Array;
        tile.dispose();
        for (let r = 0; r < b - a; r++)
          out.set(data.subarray(r * c.rows, (r + 1) * c.rows), (a + r) * V + c.start);
      }
    }
    return out;
  }

  /**
   * Greedy ids (first maximum, like torch.argmax) for each row of h [N, H], among ids below `limit` (the text
   * vocabulary: vision/audio ids are never picked, so generation never emits a token it cannot feed back).
   */
  async argmax(h: tf.Tensor2D, limit = this.vocabSize): Promise<Int32Array> {
    const N = h.shape[0];
    const best = new Float64Array(N).fill(-Infinity);
    const ids = new Int32Array(N);
    for (const [a, b] of this.blocks(N)) {
      for (const c of this.chunks) {
        const cols = Math.min(c.rows, limit - c.start);
        if (cols <= 0) continue;
        const [mx, am] = tf.tidy(() => {
          const full = this.cap(c.w.apply(tf.slice(h, [a, 0], [b - a, -1])));
          // Cut the [rows, chunk] logits, not the weights: a few rows, not a copy of the head.
          const z = cols === c.rows ? full : tf.slice(full, [0, 0], [-1, cols]);
          return [tf.max(z, 1), tf.argMax(z, 1)];
        });
        const [mv, iv] = await Promise.all([mx.data(), am.data()]);
        tf.dispose([mx, am]);
        for (let r = 0; r < b - a; r++) {
          // Strictly greater keeps the earliest chunk on ties, so the overall first maximum wins.
          // mv and iv have one entry per row of h[a, b); best and ids one per row of h.
          const v = mv[r]!;
          if (v > best[a + r]!) {
            best[a + r] = v;
            ids[a + r] = c.start + iv[r]!;
          }
        }
      }
    }
    return ids;
  }

  /**
   * For each row of h [N, H]: the logits of `vocabIds` and the full-vocabulary log-sum-exp, without any
   * [N, V] tensor (per chunk: max and Σexp(z − max) on the backend, combined in float64 on the host).
   */
  async restricted(h: tf.Tensor2D, vocabIds: readonly number[]): Promise<RestrictedRow[]> {
    const N = h.shape[0];
    for (const id of vocabIds) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new RangeError(`vocabulary id ${id} out of range`);
    }
    const K = vocabIds.length;
    const picked = new Float32Array(N * K);
    const runMax = new Float64Array(N).fill(-Infinity);
    const runSum = new Float64Array(N);
    for (const [a, b] of this.blocks(N)) {
      for (const c of this.chunks) {
        const local: number[] = [];
        const where: number[] = [];
        vocabIds.forEach((id, j) => {
          if (id >= c.start && id < c.start + c.rows) {
            local.push(id - c.start);
            where.push(j);
          }
        });
        const [mx, se, sel] = tf.tidy(() => {
          const z = this.cap(c.w.apply(tf.slice(h, [a, 0], [b - a, -1])));
          const m = tf.max(z, 1, true);
          const s = tf.sum(tf.exp(byRow(tf.sub, z, m)), 1);
          const chosen = local.length > 0 ? tf.gather(z, local, 1) : null;
          return chosen ? [tf.reshape(m, [-1]), s, chosen] : [tf.reshape(m, [-1]), s];
        });
        const [mv, sv, pv] = await Promise.all([
          mx.data(),
          se.data(),
          sel ? sel.data() : Promise.resolve(null),
        ]);
        tf.dispose([mx, se, ...(sel ? [sel] : [])]);
        for (let r = 0; r < b - a; r++) {
          const row = a + r;
          // mv, sv have one entry per row of h[a, b), pv where.length per row; runMax, runSum one per row of h.
          const m = mv[r]!;
          const max = runMax[row]!;
          if (m > max) {
            runSum[row] = runSum[row]! * Math.exp(max - m) + sv[r]!;
            runMax[row] = m;
          } else {
            runSum[row]! += sv[r]! * Math.exp(m - max);
          }
          if (pv)
            for (let j = 0; j < where.length; j++) picked[row * K + where[j]!] = pv[r * where.length + j]!;
        }
      }
    }
    return Array.from({ length: N }, (_, r) => ({
      logits: picked.slice(r * K, (r + 1) * K),
      logsumexp: runMax[r]! + Math.log(runSum[r]!),
    }));
  }

  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.w.bytes, 0);
  }

  dispose(): void {
    for (const c of this.chunks) c.w.dispose();
  }
}

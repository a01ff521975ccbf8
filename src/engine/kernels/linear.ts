// A Linear layer's weight as the engine holds it: float32 [in, out] (cpu, wasm, and any non-bf16 source), or
// on webgpu bf16 pairs packed in u32 words read by the bf16 matmul. A prefix view (first `in` rows, first
// `out` columns: a MatFormer narrower FFN) shares the packed buffer; float32 weights are sliced (a copy).
// gate_proj and up_proj of a layer share one packed buffer side by side (`pair`), so one dispatch computes
// both (`applyPair`), for the full width and for every prefix view. In the int8 fast mode, the attention and
// FFN projections are int8 per output channel instead (int8-matmul.ts: words [⌈in/4⌉, out] and scales [out],
// the same prefix views and pairs), multiplied with per-row int8 activations on webgpu and on cpu.
import * as tf from '@tensorflow/tfjs-core';
import { bf16MatMul, packBf16Into, packBf16Transposed } from './bf16-matmul';
import { int8MatMul, quantizeInt8Into, quantizeRows } from './int8-matmul';

/** How a weight is held: float32 [in, out], bf16 pairs in words [in, ⌈out/2⌉], or int8 (see above). */
export type WeightFormat = 'float32' | 'bf16' | 'int8';

let fuseGateUp = process.env.MATFORMER_FUSE_GATE_UP !== '0';

/** Turns the one-dispatch gate|up product on or off (MATFORMER_FUSE_GATE_UP=0: off), to measure it. */
export function setGateUpFusion(on: boolean): void {
  fuseGateUp = on;
}

export class LinearWeight {
  private constructor(
    /** float32 [in, out]; bf16: int32 words [parent in, S] (S ≥ ⌈parent out / 2⌉); int8: [⌈parent in / 4⌉, S]. */
    private readonly tensor: tf.Tensor2D,
    readonly format: WeightFormat,
    readonly inFeatures: number,
    readonly outFeatures: number,
    /** False for a view of another weight's packed buffer: disposing it frees nothing. */
    private readonly owns: boolean,
    /**
     * Where this weight's column 0 sits in the buffer (0 unless it is the second of a pair): a word column for
     * bf16, a column for int8.
     */
    private readonly wordOffset = 0,
    /** int8: the per-channel scales [S] of the buffer's columns. */
    private readonly scales: tf.Tensor1D | null = null,
  ) {}

  /** True for bf16 words (the bf16 matmul reads them). */
  get packed(): boolean {
    return this.format === 'bf16';
  }

  /** From a torch-layout [out, in] float32 array, quantized to int8 per output channel. */
  static int8(w: Float32Array, out: number, inp: number): LinearWeight {
    const words = new Int32Array(Math.ceil(inp / 4) * out);
    const scales = new Float32Array(out);
    quantizeInt8Into(w, out, inp, words, scales, out, 0);
    return new LinearWeight(
      tf.tensor2d(words, [Math.ceil(inp / 4), out], 'int32'),
      'int8',
      inp,
      out,
      true,
      0,
      tf.tensor1d(scales),
    );
  }

  /** gate_proj and up_proj [out, in] quantized to int8 side by side in one buffer (columns [0, out), [out, 2·out)). */
  static int8Pair(a: Float32Array, b: Float32Array, out: number, inp: number): [LinearWeight, LinearWeight] {
    const S = 2 * out;
    const rows = Math.ceil(inp / 4);
    const words = new Int32Array(rows * S);
    const scales = new Float32Array(S);
    quantizeInt8Into(a, out, inp, words, scales, S, 0);
    quantizeInt8Into(b, out, inp, words, scales, S, out);
    const t = tf.tensor2d(words, [rows, S], 'int32');
    const sc = tf.tensor1d(scales);
    return [
      new LinearWeight(t, 'int8', inp, out, true, 0, sc),
      new LinearWeight(t, 'int8', inp, out, false, out, sc),
    ];
  }

  /**
   * From a torch-layout [out, in] float32 array. With `pack`, the weight is stored as packed bf16 when every
   * value is a bfloat16 (exact); otherwise, and without `pack`, as float32 [in, out] (transposed once).
   */
  static fromTorch(w: Float32Array, out: number, inp: number, pack: boolean): LinearWeight {
    const words = pack ? packBf16Transposed(w, out, inp) : null;
    if (words) {
      return new LinearWeight(tf.tensor2d(words, [inp, Math.ceil(out / 2)], 'int32'), 'bf16', inp, out, true);
    }
    const t = tf.tidy(() => tf.transpose(tf.tensor2d(w, [out, inp]))) as tf.Tensor2D;
    return new LinearWeight(t, 'float32', inp, out, true);
  }

  /**
   * Two weights of the same [out, in] shape (gate_proj, up_proj). With `pack`, an even `out` and bfloat16
   * values, both live in one packed buffer [in, out] words (a in words [0, out/2), b in [out/2, out)); else
   * each is made as by `fromTorch`.
   */
  static pair(
    a: Float32Array,
    b: Float32Array,
    out: number,
    inp: number,
    pack: boolean,
  ): [LinearWeight, LinearWeight] {
    if (pack && out % 2 === 0) {
      const words = new Int32Array(inp * out);
      if (packBf16Into(a, out, inp, words, out, 0) && packBf16Into(b, out, inp, words, out, out / 2)) {
        const t = tf.tensor2d(words, [inp, out], 'int32');
        return [
          new LinearWeight(t, 'bf16', inp, out, true, 0),
          new LinearWeight(t, 'bf16', inp, out, false, out / 2),
        ];
      }
    }
    return [LinearWeight.fromTorch(a, out, inp, pack), LinearWeight.fromTorch(b, out, inp, pack)];
  }

  /** x [M, in] → [M, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    if (this.format === 'float32') return tf.matMul(x, this.tensor);
    if (this.format === 'int8') return this.applyQuantized(x, { off: this.wordOffset });
    return bf16MatMul(x, this.tensor, this.inFeatures, this.outFeatures, { off: this.wordOffset });
  }

  /** int8: quantize x per row, then the int8 product (the quantized x is freed here). */
  private applyQuantized(x: tf.Tensor2D, opts: { off: number; seg?: number }): tf.Tensor2D {
    return tf.tidy(() =>
      int8MatMul(quantizeRows(x), this.tensor, this.scales!, this.inFeatures, this.outFeatures, opts),
    );
  }

  /**
   * [x @ w for w of ws]. int8 weights of the same input width share one quantization of x (q, k and v of a
   * layer read the same normed input): one dispatch fewer per extra weight.
   */
  static applyShared(x: tf.Tensor2D, ws: readonly LinearWeight[]): tf.Tensor2D[] {
    const first = ws[0];
    if (!first || ws.length < 2 || ws.some((w) => w.format !== 'int8' || w.inFeatures !== first.inFeatures))
      return ws.map((w) => w.apply(x));
    const xq = quantizeRows(x);
    try {
      return ws.map((w) =>
        int8MatMul(xq, w.tensor, w.scales!, w.inFeatures, w.outFeatures, { off: w.wordOffset }),
      );
    } finally {
      xq.dispose();
    }
  }

  /**
   * [x @ a, x @ b] as one [M, 2·out] tensor in one dispatch, when a and b are the two halves of one packed
   * pair (or equal views of them); null otherwise (the caller applies them one by one).
   */
  static applyPair(x: tf.Tensor2D, a: LinearWeight, b: LinearWeight): tf.Tensor2D | null {
    if (!fuseGateUp || a.format !== b.format || a.format === 'float32' || a.tensor !== b.tensor) return null;
    if (a.inFeatures !== b.inFeatures || a.outFeatures !== b.outFeatures) return null;
    if (a.format === 'int8') return a.applyQuantized(x, { off: a.wordOffset, seg: b.wordOffset });
    if (a.outFeatures % 2 !== 0) return null;
    return bf16MatMul(x, a.tensor, a.inFeatures, a.outFeatures, { off: a.wordOffset, seg: b.wordOffset });
  }

  /** The first `inp` inputs and `out` outputs: a view of the packed buffer, or a float32 copy. */
  prefix(inp: number, out: number): LinearWeight {
    if (inp > this.inFeatures || out > this.outFeatures)
      throw new RangeError(`a [${inp}, ${out}] prefix of a [${this.inFeatures}, ${this.outFeatures}] weight`);
    if (inp === this.inFeatures && out === this.outFeatures) return this;
    if (this.format !== 'float32')
      return new LinearWeight(this.tensor, this.format, inp, out, false, this.wordOffset, this.scales);
    return new LinearWeight(tf.slice(this.tensor, [0, 0], [inp, out]), 'float32', inp, out, true);
  }

  /** Backend bytes this weight owns (0 for a view; the first of a pair owns the pair's buffer and scales). */
  get bytes(): number {
    return this.owns ? (this.tensor.size + (this.scales?.size ?? 0)) * 4 : 0;
  }

  dispose(): void {
    if (!this.owns) return;
    this.tensor.dispose();
    this.scales?.dispose();
  }
}

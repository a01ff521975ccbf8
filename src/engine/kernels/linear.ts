// A Linear layer's weight as the engine holds it: float32 [in, out] (cpu, wasm, and any non-bf16 source), or
// on webgpu bf16 pairs packed in u32 words read by the bf16 matmul. A prefix view (first `in` rows, first
// `out` columns: a MatFormer narrower FFN) shares the packed buffer; float32 weights are sliced (a copy).
// gate_proj and up_proj of a layer share one packed buffer side by side (`pair`), so one dispatch computes
// both (`applyPair`), for the full width and for every prefix view.
import * as tf from '@tensorflow/tfjs-core';
import { bf16MatMul, packBf16Into, packBf16Transposed } from './bf16-matmul';

let fuseGateUp = process.env.MATFORMER_FUSE_GATE_UP !== '0';

/** Turns the one-dispatch gate|up product on or off (MATFORMER_FUSE_GATE_UP=0: off), to measure it. */
export function setGateUpFusion(on: boolean): void {
  fuseGateUp = on;
}

export class LinearWeight {
  private constructor(
    /** float32 [in, out], or int32 words [parent in, S] (S ≥ ⌈parent out / 2⌉). */
    private readonly tensor: tf.Tensor2D,
    readonly packed: boolean,
    readonly inFeatures: number,
    readonly outFeatures: number,
    /** False for a view of another weight's packed buffer: disposing it frees nothing. */
    private readonly owns: boolean,
    /** Word column of the buffer where this weight's column 0 sits (0 unless it is the second of a pair). */
    private readonly wordOffset = 0,
  ) {}

  /**
   * From a torch-layout [out, in] float32 array. With `pack`, the weight is stored as packed bf16 when every
   * value is a bfloat16 (exact); otherwise, and without `pack`, as float32 [in, out] (transposed once).
   */
  static fromTorch(w: Float32Array, out: number, inp: number, pack: boolean): LinearWeight {
    const words = pack ? packBf16Transposed(w, out, inp) : null;
    if (words) {
      return new LinearWeight(tf.tensor2d(words, [inp, Math.ceil(out / 2)], 'int32'), true, inp, out, true);
    }
    const t = tf.tidy(() => tf.transpose(tf.tensor2d(w, [out, inp]))) as tf.Tensor2D;
    return new LinearWeight(t, false, inp, out, true);
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
          new LinearWeight(t, true, inp, out, true, 0),
          new LinearWeight(t, true, inp, out, false, out / 2),
        ];
      }
    }
    return [LinearWeight.fromTorch(a, out, inp, pack), LinearWeight.fromTorch(b, out, inp, pack)];
  }

  /** x [M, in] → [M, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    if (!this.packed) return tf.matMul(x, this.tensor);
    return bf16MatMul(x, this.tensor, this.inFeatures, this.outFeatures, { off: this.wordOffset });
  }

  /**
   * [x @ a, x @ b] as one [M, 2·out] tensor in one dispatch, when a and b are the two halves of one packed
   * pair (or equal views of them); null otherwise (the caller applies them one by one).
   */
  static applyPair(x: tf.Tensor2D, a: LinearWeight, b: LinearWeight): tf.Tensor2D | null {
    if (!fuseGateUp || !a.packed || !b.packed || a.tensor !== b.tensor) return null;
    if (a.inFeatures !== b.inFeatures || a.outFeatures !== b.outFeatures || a.outFeatures % 2 !== 0)
      return null;
    return bf16MatMul(x, a.tensor, a.inFeatures, a.outFeatures, { off: a.wordOffset, seg: b.wordOffset });
  }

  /** The first `inp` inputs and `out` outputs: a view of the packed buffer, or a float32 copy. */
  prefix(inp: number, out: number): LinearWeight {
    if (inp > this.inFeatures || out > this.outFeatures)
      throw new RangeError(`a [${inp}, ${out}] prefix of a [${this.inFeatures}, ${this.outFeatures}] weight`);
    if (inp === this.inFeatures && out === this.outFeatures) return this;
    if (this.packed) return new LinearWeight(this.tensor, true, inp, out, false, this.wordOffset);
    return new LinearWeight(tf.slice(this.tensor, [0, 0], [inp, out]), false, inp, out, true);
  }

  /** Backend bytes this weight owns (0 for a view; the first of a pair owns the pair's buffer). */
  get bytes(): number {
    return this.owns ? this.tensor.size * 4 : 0;
  }

  dispose(): void {
    if (this.owns) this.tensor.dispose();
  }
}

// A Linear layer's weight as the engine holds it: float32 [in, out] (cpu, wasm, and any non-bf16 source), or
// on webgpu bf16 pairs packed in u32 words read by the bf16 matmul. A prefix view (first `in` rows, first
// `out` columns: a MatFormer narrower FFN) shares the packed buffer; float32 weights are sliced (a copy).
import * as tf from '@tensorflow/tfjs-core';
import { bf16MatMul, packBf16Transposed } from './bf16-matmul';

export class LinearWeight {
  private constructor(
    /** float32 [in, out], or int32 words [parent in, ⌈parent out / 2⌉]. */
    private readonly tensor: tf.Tensor2D,
    readonly packed: boolean,
    readonly inFeatures: number,
    readonly outFeatures: number,
    /** False for a view of another weight's packed buffer: disposing it frees nothing. */
    private readonly owns: boolean,
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

  /** x [M, in] → [M, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    if (!this.packed) return tf.matMul(x, this.tensor);
    return bf16MatMul(x, this.tensor, this.inFeatures, this.outFeatures);
  }

  /** The first `inp` inputs and `out` outputs: a view of the packed buffer, or a float32 copy. */
  prefix(inp: number, out: number): LinearWeight {
    if (inp > this.inFeatures || out > this.outFeatures)
      throw new RangeError(`a [${inp}, ${out}] prefix of a [${this.inFeatures}, ${this.outFeatures}] weight`);
    if (inp === this.inFeatures && out === this.outFeatures) return this;
    if (this.packed) return new LinearWeight(this.tensor, true, inp, out, false);
    return new LinearWeight(tf.slice(this.tensor, [0, 0], [inp, out]), false, inp, out, true);
  }

  /** Backend bytes this weight owns (0 for a view). */
  get bytes(): number {
    return this.owns ? this.tensor.size * 4 : 0;
  }

  dispose(): void {
    if (this.owns) this.tensor.dispose();
  }
}

// Loads a checkpoint's text weights onto the backend (float32, transposed once to [in, out]) and serves the embedding and PLE tables from the host, one row per token.
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint } from '../model/checkpoint';
import type { ModelConfig } from '../model/config';
import { CheckpointError } from '../model/safetensors';
import { detectTextPrefix, layerTensorName } from '../model/tensors';
import type { AltUpWeights, GlobalWeights, HostTables, LayerWeights } from './gemma3n';
import { LmHead } from './head';
import { LinearWeight } from './kernels/linear';

/**
 * Embedding and PLE rows straight from the checkpoint files: the tables are never resident (E4B's PLE table
 * is 4.4 GB in bf16); each batch reads only the rows of its distinct tokens (the OS page cache keeps hot rows).
 */
export class CheckpointTables implements HostTables {
  constructor(
    private readonly ckpt: Checkpoint,
    private readonly embedName: string,
    private readonly pleName: string,
    private readonly hidden: number,
    private readonly pleDim: number,
    private readonly parentLayers: number,
    private readonly pleRowsInTable: number,
  ) {}

  embeddingRows(ids: Int32Array): Float32Array {
    const H = this.hidden;
    const out = new Float32Array(ids.length * H);
    const seen = new Map<number, Float32Array>();
    ids.forEach((id, m) => {
      let row = seen.get(id);
      if (!row) {
        row = this.ckpt.readFloat32(this.embedName, id, id + 1);
        seen.set(id, row);
      }
      out.set(row, m * H);
    });
    return out;
  }

  pleRows(ids: Int32Array, layers: readonly number[]): Float32Array {
    const P = this.pleDim;
    const width = layers.length * P;
    const out = new Float32Array(ids.length * width);
    const seen = new Map<number, Float32Array>();
    ids.forEach((id, m) => {
      // Ids past the PLE table (multimodal ids, or a table smaller than the vocabulary) read row 0 (§3.3).
      const r = id >= 0 && id < this.pleRowsInTable ? id : 0;
      let row = seen.get(r);
      if (!row) {
        row = this.ckpt.readFloat32(this.pleName, r, r + 1);
        if (row.length !== this.parentLayers * P) throw new Error(`PLE row has ${row.length} values`);
        seen.set(r, row);
      }
      layers.forEach((l, j) => out.set(row!.subarray(l * P, (l + 1) * P), m * width + j * P));
    });
    return out;
  }
}

export interface ParentWeights {
  readonly global: GlobalWeights;
  /** Full-width weights of every parent layer. */
  readonly layers: readonly LayerWeights[];
  readonly head: LmHead;
  readonly host: CheckpointTables;
  /** Bytes resident on the backend. */
  readonly bytes: number;
  /** Frees everything uploaded. */
  dispose(): void;
}

export interface LoadProgress {
  readonly done: number;
  readonly total: number;
}

/**
 * Uploads the parent's weights. `maxTensorBytes` bounds the LM-head chunks (the backend's binding limit);
 * with `packBf16`, Linear weights (and the LM head) whose values are all bfloat16 stay packed bf16 pairs.
 */
export function loadParentWeights(
  ckpt: Checkpoint,
  config: ModelConfig,
  maxTensorBytes: number,
  onProgress?: (p: LoadProgress) => void,
  packBf16 = false,
): ParentWeights {
  const c = config.text;
  const prefix = detectTextPrefix(ckpt.tensors.keys());
  const name = (s: string) => prefix + s;
  const owned: tf.Tensor[] = [];
  const ownedLinear: LinearWeight[] = [];
  let bytes = 0;

  const read = (n: string, shape: readonly number[]): Float32Array => {
    const info = ckpt.info(n);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        ckpt.dir,
        `${n} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    return ckpt.readFloat32(n);
  };
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    bytes += t.size * 4;
    return t;
  };
  const vec = (n: string, len: number) => keep(tf.tensor1d(read(n, [len])));
  /** Linear weight [out, in] → resident [in, out] (float32 or packed bf16). */
  const linearT = (n: string, out: number, inp: number) => {
    const w = LinearWeight.fromTorch(read(n, [out, inp]), out, inp, packBf16);
    ownedLinear.push(w);
    bytes += w.bytes;
    return w;
  };
  /** Small Linear weights used as plain tensors (AltUp router / coefficients). */
  const smallT = (n: string, out: number, inp: number) =>
    keep(tf.tidy(() => tf.transpose(tf.tensor2d(read(n, [out, inp]), [out, inp]))) as tf.Tensor2D);
  /** Several Linear weights with the same input, fused along the output axis: [in, Σ out]. */
  const fusedT = (parts: [string, number][], inp: number) =>
    keep(
      tf.tidy(() =>
        tf.transpose(
          tf.concat(
            parts.map(([n, out]) => tf.tensor2d(read(n, [out, inp]), [out, inp])),
            0,
          ),
        ),
      ) as tf.Tensor2D,
    );

  const H = c.hiddenSize;
  const N = c.altupNumInputs;
  const P = c.hiddenSizePerLayerInput;
  const L = c.numHiddenLayers;
  const qDim = c.numAttentionHeads * c.headDim;
  const kvDim = c.numKeyValueHeads * c.headDim;
  const total = L + 2;
  try {
    const global: GlobalWeights = {
      pleModelProj: linearT(name('per_layer_model_projection.weight'), L * P, H),
      pleProjNorm: vec(name('per_layer_projection_norm.weight'), P),
      altupIn: fusedT(
        Array.from(
          { length: N - 1 },
          (_, k) => [name(`altup_projections.${k}.weight`), H] as [string, number],
        ),
        H,
      ),
      altupOut: keep(
        tf.tidy(() =>
          tf.stack(
            Array.from({ length: N - 1 }, (_, k) =>
              tf.transpose(tf.tensor2d(read(name(`altup_unembed_projections.${k}.weight`), [H, H]), [H, H])),
            ),
          ),
        ) as tf.Tensor3D,
      ),
      finalNorm: vec(name('norm.weight'), H),
    };
    onProgress?.({ done: 1, total });

    const layers: LayerWeights[] = [];
    for (let l = 0; l < L; l++) {
      const ln = (s: string) => layerTensorName(l, s, prefix);
      const I = c.intermediateSize[l];
      const consumer = config.layers[l].kv === 'consumer';
      const clip = c.altupCoefClip;
      const altup: AltUpWeights = {
        routerNorm: vec(ln('altup.router_norm.weight'), H),
        router: smallT(ln('altup.modality_router.weight'), N, H),
        predict: smallT(ln('altup.prediction_coefs.weight'), N * N, N),
        // transformers clamps correction_coefs to ±altup_coef_clip on every call, even at inference.
        correct: keep(
          tf.tidy(() => {
            const w = tf.tensor2d(read(ln('altup.correction_coefs.weight'), [N, N]), [N, N]);
            return tf.transpose(clip === null ? w : tf.clipByValue(w, -clip, clip));
          }) as tf.Tensor2D,
        ),
        correctOutputScale: vec(ln('altup.correct_output_scale'), H),
      };
      // Consumers' own k_proj/v_proj/k_norm may be present (Google's files) or absent (re-saves): never read.
      layers.push({
        q: linearT(ln('self_attn.q_proj.weight'), qDim, H),
        k: consumer ? null : linearT(ln('self_attn.k_proj.weight'), kvDim, H),
        v: consumer ? null : linearT(ln('self_attn.v_proj.weight'), kvDim, H),
        qNorm: vec(ln('self_attn.q_norm.weight'), c.headDim),
        kNorm: consumer ? null : vec(ln('self_attn.k_norm.weight'), c.headDim),
        laurelLeft: linearT(ln('laurel.linear_left.weight'), c.laurelRank, H),
        oProj: linearT(ln('self_attn.o_proj.weight'), H, qDim),
        laurelRight: linearT(ln('laurel.linear_right.weight'), H, c.laurelRank),
        postLaurelNorm: vec(ln('laurel.post_laurel_norm.weight'), H),
        inputNorm: vec(ln('input_layernorm.weight'), H),
        postAttnNorm: vec(ln('post_attention_layernorm.weight'), H),
        preFfnNorm: vec(ln('pre_feedforward_layernorm.weight'), H),
        postFfnNorm: vec(ln('post_feedforward_layernorm.weight'), H),
        gate: linearT(ln('mlp.gate_proj.weight'), I, H),
        up: linearT(ln('mlp.up_proj.weight'), I, H),
        down: linearT(ln('mlp.down_proj.weight'), H, I),
        altup,
        pleGate: linearT(ln('per_layer_input_gate.weight'), P, H),
        pleProj: linearT(ln('per_layer_projection.weight'), H, P),
        postPleNorm: vec(ln('post_per_layer_input_norm.weight'), H),
      });
      onProgress?.({ done: l + 2, total });
    }

    const embedName = name('embed_tokens.weight');
    const pleName = name('embed_tokens_per_layer.weight');
    const embInfo = ckpt.info(embedName);
    if (embInfo.shape[0] !== c.vocabSize || embInfo.shape[1] !== H) {
      throw new CheckpointError(
        ckpt.dir,
        `${embedName} has shape [${embInfo.shape.join(', ')}], expected [${c.vocabSize}, ${H}]`,
      );
    }
    const pleInfo = ckpt.info(pleName);
    if (pleInfo.shape[1] !== L * P) {
      throw new CheckpointError(ckpt.dir, `${pleName} has ${pleInfo.shape[1]} columns, expected ${L * P}`);
    }
    const head = LmHead.load(
      c.vocabSize,
      H,
      c.finalLogitSoftcapping,
      maxTensorBytes,
      (a, b) => ckpt.readFloat32(embedName, a, b),
      packBf16,
    );
    bytes += head.bytes;
    onProgress?.({ done: total, total });
    const host = new CheckpointTables(ckpt, embedName, pleName, H, P, L, pleInfo.shape[0]);
    const dispose = () => {
      tf.dispose(owned);
      for (const w of ownedLinear) w.dispose();
      head.dispose();
    };
    return { global, layers, head, host, bytes, dispose };
  } catch (e) {
    tf.dispose(owned);
    for (const w of ownedLinear) w.dispose();
    throw e;
  }
}

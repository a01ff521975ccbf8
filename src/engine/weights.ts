// Loads a checkpoint's text weights onto the backend (float32, as the tensor table's `engine` column says:
// Linear weights transposed once to [in, out], some fused or stacked) and serves the host-resident tables
// (embeddings, PLE) from the checkpoint files, one row per token.
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint, CheckpointError } from '../formats';
import {
  type GlobalFamily,
  type ModelConfig,
  type TensorFamily,
  type TextConfig,
  detectTextPrefix,
  ffnOf,
  globalKeys,
  layerTensorName,
  tensorFamily,
} from '../gemma3n';
import type { AltUpWeights, GlobalWeights, HostTables, LayerWeights } from './gemma3n';
import { LmHead } from './head';
import { int8WeightBytes } from './kernels/int8-matmul';
import { LinearWeight } from './kernels/linear';
import type { Precision } from './precision';

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

/** Which table entry fills which field of the engine's weights (shape, layout and KV carrying: the table's). */
const LAYER_FIELDS = {
  q: 'self_attn.q_proj.weight',
  k: 'self_attn.k_proj.weight',
  v: 'self_attn.v_proj.weight',
  qNorm: 'self_attn.q_norm.weight',
  kNorm: 'self_attn.k_norm.weight',
  laurelLeft: 'laurel.linear_left.weight',
  oProj: 'self_attn.o_proj.weight',
  laurelRight: 'laurel.linear_right.weight',
  postLaurelNorm: 'laurel.post_laurel_norm.weight',
  inputNorm: 'input_layernorm.weight',
  postAttnNorm: 'post_attention_layernorm.weight',
  preFfnNorm: 'pre_feedforward_layernorm.weight',
  postFfnNorm: 'post_feedforward_layernorm.weight',
  gate: 'mlp.gate_proj.weight',
  up: 'mlp.up_proj.weight',
  down: 'mlp.down_proj.weight',
  pleGate: 'per_layer_input_gate.weight',
  pleProj: 'per_layer_projection.weight',
  postPleNorm: 'post_per_layer_input_norm.weight',
} as const satisfies Partial<Record<keyof LayerWeights, string>>;

/** The fields int8 mode quantizes: the attention and FFN projections (gate and up as one pair). */
const INT8_FIELDS: ReadonlySet<string> = new Set(['q', 'k', 'v', 'oProj', 'gate', 'up', 'down']);

const ALTUP_FIELDS = {
  routerNorm: 'altup.router_norm.weight',
  router: 'altup.modality_router.weight',
  predict: 'altup.prediction_coefs.weight',
  correct: 'altup.correction_coefs.weight',
  correctOutputScale: 'altup.correct_output_scale',
} as const satisfies Record<keyof AltUpWeights, string>;

const GLOBAL_FIELDS = {
  pleModelProj: 'per_layer_model_projection.weight',
  pleProjNorm: 'per_layer_projection_norm.weight',
  altupIn: 'altup_projections.{k}.weight',
  altupOut: 'altup_unembed_projections.{k}.weight',
  finalNorm: 'norm.weight',
} as const satisfies Record<keyof GlobalWeights, string>;

const EMBED_KEY = 'embed_tokens.weight';
const PLE_KEY = 'embed_tokens_per_layer.weight';

export interface LoadProgress {
  readonly done: number;
  readonly total: number;
}

/**
 * Uploads the parent's weights. `maxTensorBytes` bounds the LM-head chunks (the backend's binding limit);
 * with `packBf16`, Linear weights (and the LM head) whose values are all bfloat16 stay packed bf16 pairs.
 * With precision 'int8', the attention and FFN projections are quantized to int8 instead (and held only so).
 */
export function loadParentWeights(
  ckpt: Checkpoint,
  config: ModelConfig,
  maxTensorBytes: number,
  onProgress?: (p: LoadProgress) => void,
  packBf16 = false,
  precision: Precision = 'exact',
): ParentWeights {
  const int8 = precision === 'int8';
  const c: TextConfig = config.text;
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
  const matrix = (n: string, shape: readonly number[]): tf.Tensor2D => {
    const [rows = 0, cols = 0] = shape;
    return tf.tensor2d(read(n, shape), [rows, cols]);
  };
  const clip = c.altup_coef_clip;
  /** A Linear weight [out, in] used as `x @ W` (float32 [in, out], or packed bf16 on webgpu). */
  const linear = (n: string, shape: readonly number[], quantize: boolean): LinearWeight => {
    const [out = 0, inp = 0] = shape;
    const values = read(n, shape);
    const w = quantize
      ? LinearWeight.int8(values, out, inp)
      : LinearWeight.fromTorch(values, out, inp, packBf16);
    ownedLinear.push(w);
    bytes += w.bytes;
    return w;
  };
  /** Two Linear weights of one shape stored side by side (see LinearWeight.pair). */
  const linearPair = (l: number, a: string, b: string, I: number): [LinearWeight, LinearWeight] => {
    const shape = tensorFamily(a).shape(c, I);
    const [out = 0, inp = 0] = shape;
    const va = read(layerTensorName(l, a, prefix), shape);
    const vb = read(layerTensorName(l, b, prefix), tensorFamily(b).shape(c, I));
    const pair = int8
      ? LinearWeight.int8Pair(va, vb, out, inp)
      : LinearWeight.pair(va, vb, out, inp, packBf16);
    for (const w of pair) {
      ownedLinear.push(w);
      bytes += w.bytes;
    }
    return pair;
  };
  /** One tensor, laid out as its family's `engine` column says (`asLinear`: a Linear layer's weight). */
  const take = (
    n: string,
    f: TensorFamily,
    shape: readonly number[],
    asLinear = false,
    quantize = false,
  ): tf.Tensor | LinearWeight => {
    if (asLinear && f.engine === 'transposed') return linear(n, shape, quantize);
    switch (f.engine) {
      case 'vector':
        return keep(tf.tensor1d(read(n, shape)));
      case 'transposed':
        return keep(tf.tidy(() => tf.transpose(matrix(n, shape))));
      case 'clipped_transposed':
        // transformers clamps correction_coefs to ±altup_coef_clip on every call, even at inference.
        return keep(
          tf.tidy(() => {
            const w = matrix(n, shape);
            return tf.transpose(clip === null ? w : tf.clipByValue(w, -clip, clip));
          }),
        );
      default:
        throw new Error(`${n}: the engine takes ${f.engine} tensors as a family, not one by one`);
    }
  };
  /** An indexed family as one tensor: fused along the output axis, or stacked, both transposed. */
  const takeFamily = (f: GlobalFamily): tf.Tensor => {
    const keys = globalKeys(f, c);
    const shape = f.shape(c);
    if (f.engine === 'fused_transposed') {
      return keep(
        tf.tidy(() =>
          tf.transpose(
            tf.concat(
              keys.map((k) => matrix(name(k), shape)),
              0,
            ),
          ),
        ),
      );
    }
    if (f.engine === 'stacked_transposed') {
      return keep(tf.tidy(() => tf.stack(keys.map((k) => tf.transpose(matrix(name(k), shape))))));
    }
    return take(name(f.key), f, shape) as tf.Tensor;
  };

  const L = c.num_hidden_layers;
  const H = c.hidden_size;
  const P = c.hidden_size_per_layer_input;
  const total = L + 2;
  try {
    const global = Object.fromEntries(
      Object.entries(GLOBAL_FIELDS).map(([field, key]) => {
        const f = tensorFamily(key);
        if (f.scope !== 'global') throw new Error(`${key} is not a model-level tensor`);
        // The per-layer model projection is a Linear of the embeddings (packed like the layers' ones).
        if (field === 'pleModelProj') return [field, take(name(f.key), f, f.shape(c), true)];
        return [field, takeFamily(f)];
      }),
    ) as unknown as GlobalWeights;
    onProgress?.({ done: 1, total });

    const layers: LayerWeights[] = [];
    for (let l = 0; l < L; l++) {
      const I = ffnOf(c, l);
      // Consumers' own k_proj/v_proj/k_norm may be present (Google's files) or absent (re-saves): never read.
      const consumer = config.layers[l]?.kv === 'consumer';
      const fields = (map: Record<string, string>, asLinear: boolean) =>
        Object.fromEntries(
          Object.entries(map).map(([field, key]) => {
            const f = tensorFamily(key);
            if (f.scope !== 'layer') throw new Error(`${key} is not a per-layer tensor`);
            if (f.kvOnly && consumer) return [field, null];
            const quantize = int8 && asLinear && INT8_FIELDS.has(field);
            return [field, take(layerTensorName(l, key, prefix), f, f.shape(c, I), asLinear, quantize)];
          }),
        );
      // AltUp's router and coefficients stay plain tensors; every transposed layer tensor is a Linear.
      const altup = fields(ALTUP_FIELDS, false) as unknown as AltUpWeights;
      // gate_proj and up_proj: one packed buffer for both, so the MLP multiplies them in one dispatch.
      const { gate: gateKey, up: upKey, ...rest } = LAYER_FIELDS;
      const [gate, up] = linearPair(l, gateKey, upKey, I);
      layers.push({ ...fields(rest, true), gate, up, altup } as unknown as LayerWeights);
      onProgress?.({ done: l + 2, total });
    }

    // The host-resident tables: shapes checked here, rows read per batch.
    const embedName = name(EMBED_KEY);
    const pleName = name(PLE_KEY);
    const embInfo = ckpt.info(embedName);
    const embShape = (tensorFamily(EMBED_KEY) as GlobalFamily).shape(c);
    if (embInfo.shape.length !== 2 || embInfo.shape.some((d, i) => d !== embShape[i])) {
      throw new CheckpointError(
        ckpt.dir,
        `${embedName} has shape [${embInfo.shape.join(', ')}], expected [${embShape.join(', ')}]`,
      );
    }
    const pleInfo = ckpt.info(pleName);
    if (pleInfo.shape[1] !== L * P) {
      throw new CheckpointError(ckpt.dir, `${pleName} has ${pleInfo.shape[1]} columns, expected ${L * P}`);
    }
    const pleRows = pleInfo.shape[0] ?? 0;
    const head = LmHead.load(
      c.vocab_size,
      H,
      c.final_logit_softcapping,
      maxTensorBytes,
      (a, b) => ckpt.readFloat32(embedName, a, b),
      packBf16,
    );
    bytes += head.bytes;
    onProgress?.({ done: total, total });
    const host = new CheckpointTables(ckpt, embedName, pleName, H, P, L, pleRows);
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

/**
 * The bytes `loadParentWeights` keeps resident for `config`, computed from the layouts without reading any
 * weight: float32 tensors, bf16 words [in, ⌈out/2⌉] (gate|up: [in, out]) where `packBf16` (the webgpu
 * backend; assumes bfloat16 checkpoint values, as the published ones are, else they stay float32), int8
 * words [⌈in/4⌉, out] plus float32 scales [out] for the projections int8 mode quantizes, and the LM head in
 * its chunks.
 */
export function residentWeightBytes(
  config: ModelConfig,
  opts: { precision: Precision; packBf16: boolean; maxTensorBytes: number },
): number {
  const c: TextConfig = config.text;
  const int8 = opts.precision === 'int8';
  const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const linear = (shape: readonly number[], quantize: boolean) => {
    const [out = 0, inp = 0] = shape;
    if (quantize) return int8WeightBytes(inp, out);
    return (opts.packBf16 ? inp * Math.ceil(out / 2) : inp * out) * 4;
  };
  let bytes = 0;
  for (const [field, key] of Object.entries(GLOBAL_FIELDS)) {
    const f = tensorFamily(key);
    if (f.scope !== 'global') throw new Error(`${key} is not a model-level tensor`);
    const shape = f.shape(c);
    if (field === 'pleModelProj') bytes += linear(shape, false);
    else bytes += elements(shape) * 4 * globalKeys(f, c).length;
  }
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const I = ffnOf(c, l);
    const consumer = config.layers[l]?.kv === 'consumer';
    for (const [map, asLinear] of [
      [LAYER_FIELDS, true],
      [ALTUP_FIELDS, false],
    ] as const) {
      for (const [field, key] of Object.entries(map)) {
        const f = tensorFamily(key);
        if (f.scope !== 'layer') throw new Error(`${key} is not a per-layer tensor`);
        if (f.kvOnly && consumer) continue;
        const shape = f.shape(c, I);
        const quantize = int8 && INT8_FIELDS.has(field);
        if (field === 'gate' || field === 'up') {
          // One buffer for the pair; counted once, at gate.
          if (field === 'up') continue;
          const [out = 0, inp = 0] = shape;
          if (quantize) bytes += int8WeightBytes(inp, 2 * out);
          else if (opts.packBf16 && out % 2 === 0) bytes += inp * out * 4;
          else bytes += 2 * linear(shape, false);
        } else if (asLinear && f.engine === 'transposed') bytes += linear(shape, quantize);
        else bytes += elements(shape) * 4;
      }
    }
  }
  // The LM head: ⌈V·H·4 / maxTensorBytes⌉ equal row chunks (LmHead.load), each a Linear [H → rows].
  const V = c.vocab_size;
  const H = c.hidden_size;
  const n = Math.max(1, Math.ceil((V * H * 4) / opts.maxTensorBytes));
  const per = Math.ceil(V / n);
  for (let start = 0; start < V; start += per) bytes += linear([Math.min(per, V - start), H], false);
  return bytes;
}

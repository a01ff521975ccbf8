// Parameter accounting (§5.1 of the architecture doc): what MatFormer Lab reports as "effective"
// parameters, i.e. transformers' num_parameters(exclude_embeddings=True) of the text model, which
// counts the unused K/V weights of KV-shared layers as 4.53 does.
import { TextConfig } from './config';
import { MixNMatchSpec, identitySpec, keptLayers } from './spec';
import { TEXT_PREFIX } from './tensors';

export interface ParamBreakdown {
  /** Text parameters without the two embedding tables (MatFormer Lab's "effective" figure). */
  readonly effective: number;
  /** Token embedding table (tied LM head), V·H. */
  readonly embeddings: number;
  /** Per-layer embedding table, Vp·P·L. */
  readonly pleEmbeddings: number;
  readonly textTotal: number;
  /** Vision/audio towers and their embedders; null when only a config is known. */
  readonly vision: number | null;
  readonly audio: number | null;
  /** Everything the checkpoint holds; null when only a config is known. */
  readonly total: number | null;
  readonly layers: number;
}

/** Parameters of one decoder layer except its MLP, plus its slice of per_layer_model_projection. */
export function perLayerFixedParams(c: TextConfig): number {
  const H = c.hiddenSize;
  const N = c.altupNumInputs;
  const attn =
    H * c.numAttentionHeads * c.headDim +
    2 * H * c.numKeyValueHeads * c.headDim +
    c.numAttentionHeads * c.headDim * H +
    2 * c.headDim;
  const norms = 4 * H;
  const altup = H + N * N + N * N * N + N * H + H;
  const laurel = 2 * H * c.laurelRank + H;
  const ple = 2 * H * c.hiddenSizePerLayerInput + H;
  return attn + norms + altup + laurel + ple + c.hiddenSizePerLayerInput * H;
}

export function globalParams(c: TextConfig): number {
  const H = c.hiddenSize;
  return 2 * (c.altupNumInputs - 1) * H * H + H + c.hiddenSizePerLayerInput;
}

export function mlpParams(c: TextConfig, width: number): number {
  return 3 * c.hiddenSize * width;
}

/** Text parameters of the parent, or of a Mix-n-Match submodel of it, from the config alone. */
export function textParams(
  c: TextConfig,
  spec: MixNMatchSpec = identitySpec(c.intermediateSize),
): ParamBreakdown {
  const kept = keptLayers(c.numHiddenLayers, spec);
  const fixed = perLayerFixedParams(c);
  let effective = globalParams(c);
  for (let k = 0; k < kept.length; k++) effective += fixed + mlpParams(c, spec.ffn[k]);
  const embeddings = c.vocabSize * c.hiddenSize;
  const pleEmbeddings = c.vocabSizePerLayerInput * c.hiddenSizePerLayerInput * kept.length;
  return {
    effective,
    embeddings,
    pleEmbeddings,
    textTotal: effective + embeddings + pleEmbeddings,
    vision: null,
    audio: null,
    total: null,
    layers: kept.length,
  };
}

const VISION_PREFIXES = ['model.vision_tower.', 'model.embed_vision.'];
const AUDIO_PREFIXES = ['model.audio_tower.', 'model.embed_audio.'];

/** Adds the towers' parameters counted from a checkpoint's tensor shapes (they never change when slicing). */
export function withTowers(
  text: ParamBreakdown,
  tensors: Iterable<{ name: string; shape: readonly number[] }>,
): ParamBreakdown {
  let vision = 0;
  let audio = 0;
  let other = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (VISION_PREFIXES.some((p) => t.name.startsWith(p))) vision += n;
    else if (AUDIO_PREFIXES.some((p) => t.name.startsWith(p))) audio += n;
    else if (!t.name.startsWith(TEXT_PREFIX) && !t.name.startsWith('model.layers.')) other += n;
  }
  return { ...text, vision, audio, total: text.textTotal + vision + audio + other };
}

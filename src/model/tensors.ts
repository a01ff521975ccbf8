// The text decoder's tensor names and shapes, as a declarative table (§2 of the architecture doc).
import { TextConfig } from './config';

/** Prefix of text tensors in the published multimodal layout. */
export const TEXT_PREFIX = 'model.language_model.';
export const LAYER_RE = /^model\.language_model\.layers\.(\d+)\.(.+)$/;

type ShapeOf = (c: TextConfig, ffn: number) => number[];

/** Per-layer tensors (suffix after `layers.{i}.`) and their shapes. */
export const LAYER_TENSORS: readonly {
  readonly suffix: string;
  readonly shape: ShapeOf;
  readonly kvOnly?: true;
}[] = [
  { suffix: 'self_attn.q_proj.weight', shape: (c) => [c.numAttentionHeads * c.headDim, c.hiddenSize] },
  {
    suffix: 'self_attn.k_proj.weight',
    shape: (c) => [c.numKeyValueHeads * c.headDim, c.hiddenSize],
    kvOnly: true,
  },
  {
    suffix: 'self_attn.v_proj.weight',
    shape: (c) => [c.numKeyValueHeads * c.headDim, c.hiddenSize],
    kvOnly: true,
  },
  { suffix: 'self_attn.o_proj.weight', shape: (c) => [c.hiddenSize, c.numAttentionHeads * c.headDim] },
  { suffix: 'self_attn.q_norm.weight', shape: (c) => [c.headDim] },
  { suffix: 'self_attn.k_norm.weight', shape: (c) => [c.headDim], kvOnly: true },
  { suffix: 'mlp.gate_proj.weight', shape: (c, f) => [f, c.hiddenSize] },
  { suffix: 'mlp.up_proj.weight', shape: (c, f) => [f, c.hiddenSize] },
  { suffix: 'mlp.down_proj.weight', shape: (c, f) => [c.hiddenSize, f] },
  { suffix: 'input_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { suffix: 'post_attention_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { suffix: 'pre_feedforward_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { suffix: 'post_feedforward_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { suffix: 'altup.correct_output_scale', shape: (c) => [c.hiddenSize] },
  { suffix: 'altup.correction_coefs.weight', shape: (c) => [c.altupNumInputs, c.altupNumInputs] },
  { suffix: 'altup.prediction_coefs.weight', shape: (c) => [c.altupNumInputs ** 2, c.altupNumInputs] },
  { suffix: 'altup.modality_router.weight', shape: (c) => [c.altupNumInputs, c.hiddenSize] },
  { suffix: 'altup.router_norm.weight', shape: (c) => [c.hiddenSize] },
  { suffix: 'laurel.linear_left.weight', shape: (c) => [c.laurelRank, c.hiddenSize] },
  { suffix: 'laurel.linear_right.weight', shape: (c) => [c.hiddenSize, c.laurelRank] },
  { suffix: 'laurel.post_laurel_norm.weight', shape: (c) => [c.hiddenSize] },
  { suffix: 'per_layer_input_gate.weight', shape: (c) => [c.hiddenSizePerLayerInput, c.hiddenSize] },
  { suffix: 'per_layer_projection.weight', shape: (c) => [c.hiddenSize, c.hiddenSizePerLayerInput] },
  { suffix: 'post_per_layer_input_norm.weight', shape: (c) => [c.hiddenSize] },
];

/** Model-level text tensors (suffix after the text prefix). */
export const GLOBAL_TENSORS: readonly {
  readonly suffix: string;
  readonly shape: (c: TextConfig) => number[];
}[] = [
  { suffix: 'embed_tokens.weight', shape: (c) => [c.vocabSize, c.hiddenSize] },
  {
    suffix: 'embed_tokens_per_layer.weight',
    shape: (c) => [c.vocabSizePerLayerInput, c.numHiddenLayers * c.hiddenSizePerLayerInput],
  },
  {
    suffix: 'per_layer_model_projection.weight',
    shape: (c) => [c.numHiddenLayers * c.hiddenSizePerLayerInput, c.hiddenSize],
  },
  { suffix: 'per_layer_projection_norm.weight', shape: (c) => [c.hiddenSizePerLayerInput] },
  ...[0, 1, 2].map((k) => ({
    suffix: `altup_projections.${k}.weight`,
    shape: (c: TextConfig) => [c.hiddenSize, c.hiddenSize],
  })),
  ...[0, 1, 2].map((k) => ({
    suffix: `altup_unembed_projections.${k}.weight`,
    shape: (c: TextConfig) => [c.hiddenSize, c.hiddenSize],
  })),
  { suffix: 'norm.weight', shape: (c) => [c.hiddenSize] },
];

export function layerTensorName(layer: number, suffix: string, prefix = TEXT_PREFIX): string {
  return `${prefix}layers.${layer}.${suffix}`;
}

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: number[];
  /** K/V weights of a KV-shared (consumer) layer: allowed but never required. */
  readonly optional: boolean;
}

/** Every text tensor a checkpoint with this config should hold. */
export function expectedTextTensors(
  c: TextConfig,
  consumers: ReadonlySet<number>,
  prefix = TEXT_PREFIX,
): ExpectedTensor[] {
  const out: ExpectedTensor[] = GLOBAL_TENSORS.map((g) => ({
    name: prefix + g.suffix,
    shape: g.shape(c),
    optional: false,
  }));
  for (let l = 0; l < c.numHiddenLayers; l++) {
    for (const t of LAYER_TENSORS) {
      out.push({
        name: layerTensorName(l, t.suffix, prefix),
        shape: t.shape(c, c.intermediateSize[l]),
        optional: Boolean(t.kvOnly) && consumers.has(l),
      });
    }
  }
  return out;
}

/** Finds where the text tensors live: the multimodal prefix, or a bare text model's `model.`. */
export function detectTextPrefix(names: Iterable<string>): string {
  for (const n of names) {
    if (n.startsWith(TEXT_PREFIX)) return TEXT_PREFIX;
  }
  return 'model.';
}

// Parameter accounting (§5.1 of the architecture doc): what MatFormer Lab reports as "effective"
// parameters, i.e. transformers' num_parameters(exclude_embeddings=True) of the text model, which
// counts the unused K/V weights of KV-shared layers as 4.53 does. Counted from the tensor table.
import type { TextConfig } from './config';
import { MixNMatchSpec, identitySpec, keptLayers } from './submodel';
import { GLOBAL_TENSORS, LAYER_TENSORS, ParamClass, TEXT_PREFIX, globalKeys } from './tensors';

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

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Text parameters of the parent, or of a Mix-n-Match submodel of it, from the config and the tensor table. */
export function textParams(
  c: TextConfig,
  spec: MixNMatchSpec = identitySpec(c.intermediate_size),
): ParamBreakdown {
  const kept = keptLayers(c.num_hidden_layers, spec);
  // Model-level tensors shaped for the submodel: the PLE table and projection keep one block per kept layer.
  const child: TextConfig = { ...c, num_hidden_layers: kept.length };
  const sums: Record<ParamClass, number> = { effective: 0, embeddings: 0, ple_embeddings: 0 };
  for (const g of GLOBAL_TENSORS) sums[g.params] += globalKeys(g, child).length * numel(g.shape(child));
  spec.ffn.forEach((width) => {
    for (const t of LAYER_TENSORS) sums[t.params] += numel(t.shape(c, width));
  });
  const { effective, embeddings, ple_embeddings: pleEmbeddings } = sums;
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

// THE Gemma 3n text tensor table (§2 of the architecture doc), declarative in the spirit of gguf-py's
// constants.py: per tensor family its Hugging Face key, role, shape in config terms, how slicing treats it,
// whether KV consumers carry it, how the engine takes it, how create-random fills it, its parameter class and
// its GGUF name. Weight loading, slice planning, parameter accounting, random checkpoints and inspect's
// tensor check all read this table.
import type { TextConfig } from './config';

/** Prefix of text tensors in the published multimodal layout. */
export const TEXT_PREFIX = 'model.language_model.';

/**
 * How a slice treats a tensor (a skipped layer drops every tensor of that layer):
 * - copy: byte for byte;
 * - ffn_rows: the first I' rows (gate_proj, up_proj);
 * - ffn_cols: the first I' columns (down_proj);
 * - ple_cols / ple_rows: the kept layers' P-wide column / row blocks (layer-major).
 */
export type SliceTreatment = 'copy' | 'ffn_rows' | 'ffn_cols' | 'ple_cols' | 'ple_rows';

/**
 * How the engine takes a tensor:
 * - vector: as is, 1-D;
 * - transposed: a Linear [out, in] kept as [in, out];
 * - clipped_transposed: transposed after clamping to ±altup_coef_clip (transformers clamps on every call);
 * - fused_transposed: the family's k entries concatenated along the output axis, then transposed;
 * - stacked_transposed: the family's k entries each transposed, stacked to [k, in, out];
 * - host: kept on the host, rows read per batch (embedding tables; embed_tokens is also the tied LM head).
 */
export type EngineTake =
  'vector' | 'transposed' | 'clipped_transposed' | 'fused_transposed' | 'stacked_transposed' | 'host';

/** Which parameter figure a tensor counts towards (§5.1). */
export type ParamClass = 'effective' | 'embeddings' | 'ple_embeddings';

/** How create-random draws a tensor's values: mean + std · N(0, 1); `fan_in` = std 1/√(in features). */
export type RandomFill = { readonly mean: number; readonly std: number } | 'fan_in';

/**
 * The tensor in GGUF as llama.cpp's converter (`Gemma3NModel`) writes it: its name (after `blk.{i}.` for
 * layer tensors), how it is made (`pad_vocab`: zero rows appended up to vocab_size; `stack`: the family's
 * k entries stacked along a new first axis), and whether it stays F32 whatever the export dtype (1-D
 * tensors, norms, the AltUp coefficient matrices). Norms are stored as they are (no +1 shift in Gemma 3n).
 */
export interface GgufColumn {
  readonly name: string;
  readonly transform?: 'pad_vocab' | 'stack';
  readonly f32?: true;
}

interface FamilyBase {
  /** Key after the text prefix (global) or after `layers.{i}.` (per layer); `{k}` for indexed families. */
  readonly key: string;
  readonly role: string;
  readonly slice: SliceTreatment;
  readonly engine: EngineTake;
  readonly fill: RandomFill;
  readonly params: ParamClass;
  readonly gguf?: GgufColumn;
}

export interface LayerFamily extends FamilyBase {
  readonly scope: 'layer';
  /** Shape from the config and the layer's FFN width. */
  readonly shape: (c: TextConfig, ffn: number) => number[];
  /** K/V weights: a KV-shared (consumer) layer may carry them or not; they are never read. */
  readonly kvOnly: boolean;
}

export interface GlobalFamily extends FamilyBase {
  readonly scope: 'global';
  readonly shape: (c: TextConfig) => number[];
  /** Indexed families (`{k}` in the key) have this many entries. */
  readonly count?: (c: TextConfig) => number;
}

export type TensorFamily = LayerFamily | GlobalFamily;

const NORM: RandomFill = { mean: 1, std: 0.1 };
const COEF: RandomFill = { mean: 0, std: 0.1 };

function layer(
  key: string,
  role: string,
  shape: LayerFamily['shape'],
  engine: EngineTake,
  more: Partial<Pick<LayerFamily, 'slice' | 'kvOnly' | 'fill' | 'gguf'>> = {},
): LayerFamily {
  const fill = more.fill ?? (engine === 'vector' ? NORM : 'fan_in');
  return {
    scope: 'layer',
    key,
    role,
    shape,
    engine,
    slice: 'copy',
    kvOnly: false,
    params: 'effective',
    ...more,
    fill,
  };
}

/** Per-layer tensors, key after `layers.{i}.`. */
export const LAYER_TENSORS: readonly LayerFamily[] = [
  layer(
    'self_attn.q_proj.weight',
    'attention query',
    (c) => [c.num_attention_heads * c.head_dim, c.hidden_size],
    'transposed',
    { gguf: { name: 'attn_q.weight' } },
  ),
  layer(
    'self_attn.k_proj.weight',
    'attention key',
    (c) => [c.num_key_value_heads * c.head_dim, c.hidden_size],
    'transposed',
    { kvOnly: true, gguf: { name: 'attn_k.weight' } },
  ),
  layer(
    'self_attn.v_proj.weight',
    'attention value',
    (c) => [c.num_key_value_heads * c.head_dim, c.hidden_size],
    'transposed',
    { kvOnly: true, gguf: { name: 'attn_v.weight' } },
  ),
  layer(
    'self_attn.o_proj.weight',
    'attention output',
    (c) => [c.hidden_size, c.num_attention_heads * c.head_dim],
    'transposed',
    { gguf: { name: 'attn_output.weight' } },
  ),
  layer('self_attn.q_norm.weight', 'query RMSNorm', (c) => [c.head_dim], 'vector', {
    gguf: { name: 'attn_q_norm.weight', f32: true },
  }),
  layer('self_attn.k_norm.weight', 'key RMSNorm', (c) => [c.head_dim], 'vector', {
    kvOnly: true,
    gguf: { name: 'attn_k_norm.weight', f32: true },
  }),
  layer('mlp.gate_proj.weight', 'FFN gate', (c, f) => [f, c.hidden_size], 'transposed', {
    slice: 'ffn_rows',
    gguf: { name: 'ffn_gate.weight' },
  }),
  layer('mlp.up_proj.weight', 'FFN up', (c, f) => [f, c.hidden_size], 'transposed', {
    slice: 'ffn_rows',
    gguf: { name: 'ffn_up.weight' },
  }),
  layer('mlp.down_proj.weight', 'FFN down', (c, f) => [c.hidden_size, f], 'transposed', {
    slice: 'ffn_cols',
    gguf: { name: 'ffn_down.weight' },
  }),
  layer('input_layernorm.weight', 'pre-attention RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'attn_norm.weight', f32: true },
  }),
  layer('post_attention_layernorm.weight', 'post-attention RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'post_attention_norm.weight', f32: true },
  }),
  layer('pre_feedforward_layernorm.weight', 'pre-FFN RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'ffn_norm.weight', f32: true },
  }),
  layer('post_feedforward_layernorm.weight', 'post-FFN RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'post_ffw_norm.weight', f32: true },
  }),
  layer('altup.correct_output_scale', 'AltUp output scale', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'altup_correct_scale.weight', f32: true },
  }),
  layer(
    'altup.correction_coefs.weight',
    'AltUp correction',
    (c) => [c.altup_num_inputs, c.altup_num_inputs],
    'clipped_transposed',
    { fill: COEF, gguf: { name: 'altup_correct_coef.weight', f32: true } },
  ),
  layer(
    'altup.prediction_coefs.weight',
    'AltUp prediction',
    (c) => [c.altup_num_inputs ** 2, c.altup_num_inputs],
    'transposed',
    { fill: COEF, gguf: { name: 'altup_predict_coef.weight', f32: true } },
  ),
  layer(
    'altup.modality_router.weight',
    'AltUp router',
    (c) => [c.altup_num_inputs, c.hidden_size],
    'transposed',
    { gguf: { name: 'altup_router.weight' } },
  ),
  layer('altup.router_norm.weight', 'AltUp router RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'altup_router_norm.weight', f32: true },
  }),
  layer('laurel.linear_left.weight', 'LAuReL down', (c) => [c.laurel_rank, c.hidden_size], 'transposed', {
    gguf: { name: 'laurel_l.weight' },
  }),
  layer('laurel.linear_right.weight', 'LAuReL up', (c) => [c.hidden_size, c.laurel_rank], 'transposed', {
    gguf: { name: 'laurel_r.weight' },
  }),
  layer('laurel.post_laurel_norm.weight', 'LAuReL RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'laurel_post_norm.weight', f32: true },
  }),
  layer(
    'per_layer_input_gate.weight',
    'PLE gate',
    (c) => [c.hidden_size_per_layer_input, c.hidden_size],
    'transposed',
    { gguf: { name: 'inp_gate.weight' } },
  ),
  layer(
    'per_layer_projection.weight',
    'PLE projection',
    (c) => [c.hidden_size, c.hidden_size_per_layer_input],
    'transposed',
    { gguf: { name: 'proj.weight' } },
  ),
  layer('post_per_layer_input_norm.weight', 'PLE RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'post_norm.weight', f32: true },
  }),
];

function global(
  key: string,
  role: string,
  shape: GlobalFamily['shape'],
  engine: EngineTake,
  more: Partial<Pick<GlobalFamily, 'slice' | 'fill' | 'params' | 'count' | 'gguf'>> = {},
): GlobalFamily {
  const fill = more.fill ?? (engine === 'vector' ? NORM : 'fan_in');
  return { scope: 'global', key, role, shape, engine, slice: 'copy', params: 'effective', ...more, fill };
}

const altupCopies = (c: TextConfig) => c.altup_num_inputs - 1;

/** Model-level text tensors, key after the text prefix. */
export const GLOBAL_TENSORS: readonly GlobalFamily[] = [
  global(
    'embed_tokens.weight',
    'token embeddings (tied LM head)',
    (c) => [c.vocab_size, c.hidden_size],
    'host',
    {
      fill: { mean: 0, std: 0.5 },
      params: 'embeddings',
      gguf: { name: 'token_embd.weight', transform: 'pad_vocab' },
    },
  ),
  global(
    'embed_tokens_per_layer.weight',
    'per-layer embeddings (PLE table, layer-major columns)',
    (c) => [c.vocab_size_per_layer_input, c.num_hidden_layers * c.hidden_size_per_layer_input],
    'host',
    {
      slice: 'ple_cols',
      fill: { mean: 0, std: 1 },
      params: 'ple_embeddings',
      gguf: { name: 'per_layer_token_embd.weight', transform: 'pad_vocab' },
    },
  ),
  global(
    'per_layer_model_projection.weight',
    'PLE model projection (layer-major rows)',
    (c) => [c.num_hidden_layers * c.hidden_size_per_layer_input, c.hidden_size],
    'transposed',
    { slice: 'ple_rows', gguf: { name: 'per_layer_model_proj.weight' } },
  ),
  global(
    'per_layer_projection_norm.weight',
    'PLE projection RMSNorm',
    (c) => [c.hidden_size_per_layer_input],
    'vector',
    { gguf: { name: 'per_layer_proj_norm.weight', f32: true } },
  ),
  global(
    'altup_projections.{k}.weight',
    'AltUp input projections',
    (c) => [c.hidden_size, c.hidden_size],
    'fused_transposed',
    {
      count: altupCopies,
      gguf: { name: 'altup_proj.weight', transform: 'stack' },
    },
  ),
  global(
    'altup_unembed_projections.{k}.weight',
    'AltUp unembedding projections',
    (c) => [c.hidden_size, c.hidden_size],
    'stacked_transposed',
    { count: altupCopies, gguf: { name: 'altup_unembd_proj.weight', transform: 'stack' } },
  ),
  global('norm.weight', 'final RMSNorm', (c) => [c.hidden_size], 'vector', {
    gguf: { name: 'output_norm.weight', f32: true },
  }),
];

/** A family by key (throws for a key the table lacks: a typo in our own code, not user input). */
export function tensorFamily(key: string): TensorFamily {
  const f = [...GLOBAL_TENSORS, ...LAYER_TENSORS].find((t) => t.key === key);
  if (!f) throw new Error(`no tensor family ${key} in the Gemma 3n tensor table`);
  return f;
}

/** The keys of a global family: one, or `count` with `{k}` replaced by 0..count-1. */
export function globalKeys(f: GlobalFamily, c: TextConfig): string[] {
  if (!f.count) return [f.key];
  return Array.from({ length: f.count(c) }, (_, k) => f.key.replace('{k}', String(k)));
}

export function layerTensorName(layer: number, key: string, prefix = TEXT_PREFIX): string {
  return `${prefix}layers.${layer}.${key}`;
}

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: number[];
  /** K/V weights of a KV-shared (consumer) layer: allowed but never required. */
  readonly optional: boolean;
  readonly family: TensorFamily;
}

/** Every text tensor a checkpoint with this config should hold. */
export function expectedTextTensors(
  c: TextConfig,
  consumers: ReadonlySet<number>,
  prefix = TEXT_PREFIX,
): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  for (const g of GLOBAL_TENSORS) {
    for (const key of globalKeys(g, c))
      out.push({ name: prefix + key, shape: g.shape(c), optional: false, family: g });
  }
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const t of LAYER_TENSORS) {
      out.push({
        name: layerTensorName(l, t.key, prefix),
        shape: t.shape(c, ffnOf(c, l)),
        optional: t.kvOnly && consumers.has(l),
        family: t,
      });
    }
  }
  return out;
}

/** A layer's FFN width (the config guarantees one per layer). */
export function ffnOf(c: TextConfig, layer: number): number {
  const w = c.intermediate_size[layer];
  if (w === undefined)
    throw new RangeError(`layer ${layer} is not a layer of this ${c.num_hidden_layers}-layer config`);
  return w;
}

/** Finds where the text tensors live: the multimodal prefix, or a bare text model's `model.`. */
export function detectTextPrefix(names: Iterable<string>): string {
  for (const n of names) {
    if (n.startsWith(TEXT_PREFIX)) return TEXT_PREFIX;
  }
  return 'model.';
}

/** Splits `<prefix>layers.<i>.<key>` into layer and key; null for other names. */
export function parseLayerTensorName(name: string, prefix: string): { layer: number; key: string } | null {
  if (!name.startsWith(`${prefix}layers.`)) return null;
  const m = /^(\d+)\.(.+)$/.exec(name.slice(prefix.length + 'layers.'.length));
  if (!m || m[1] === undefined || m[2] === undefined) return null;
  return { layer: Number(m[1]), key: m[2] };
}

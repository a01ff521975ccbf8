// Gemma 3n text configuration: one typed config named as config.json names it (defaults from transformers),
// parsed from both published styles, with the per-layer facts derived from it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserInputError, fileProblem } from '../formats';

export class ConfigError extends UserInputError {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

export type LayerType = 'sliding_attention' | 'full_attention';
export type KvRole = 'producer' | 'consumer' | 'independent';
/** 4.53 keeps `rope_theta`/`rope_local_base_freq`; 5.x writes `rope_parameters`. */
export type ConfigStyle = '4.53' | '5.x';

/**
 * The text decoder's configuration, fields named exactly as in config.json (transformers'
 * `Gemma3nTextConfig`). Absent fields take `TEXT_CONFIG_DEFAULTS` (transformers' defaults); per-layer lists
 * given as one value are expanded to one entry per layer.
 */
export interface TextConfig {
  /** Rows of the token embedding and the LM head (text, vision and audio ids). */
  readonly vocab_size: number;
  /** Rows of the per-layer-embedding table; ids at or above it get no per-layer embedding. */
  readonly vocab_size_per_layer_input: number;
  /** Width of the residual stream (H). */
  readonly hidden_size: number;
  /** Width of each layer's per-layer embedding (P). */
  readonly hidden_size_per_layer_input: number;
  /** FFN width of each layer (a single number in config.json means the same width for all). */
  readonly intermediate_size: readonly number[];
  /** Decoder layers (L); required, no default. */
  readonly num_hidden_layers: number;
  /** Query heads. */
  readonly num_attention_heads: number;
  /** K/V heads (grouped-query attention); divides num_attention_heads. */
  readonly num_key_value_heads: number;
  /** Width of one attention head (D). */
  readonly head_dim: number;
  /** Epsilon of every RMSNorm. */
  readonly rms_norm_eps: number;
  /** RoPE base of full-attention layers (5.x: `rope_parameters.full_attention.rope_theta`). */
  readonly rope_theta: number;
  /** RoPE base of sliding-window layers (5.x: `rope_parameters.sliding_attention.rope_theta`). */
  readonly rope_local_base_freq: number;
  /** Keys a sliding-window layer attends to, its own position included. */
  readonly sliding_window: number;
  /** Attention kind of each layer; default: every fifth layer full, the others sliding. */
  readonly layer_types: readonly LayerType[];
  /** tanh soft cap of the final logits (cap·tanh(x/cap)); null for none. */
  readonly final_logit_softcapping: number | null;
  /** Last layers that reuse the K/V of an earlier layer of their type instead of computing their own. */
  readonly num_kv_shared_layers: number;
  /** AltUp streams (N); stream `altup_active_idx` goes through the layer, the others are predicted. */
  readonly altup_num_inputs: number;
  /** The AltUp stream the layers compute on. */
  readonly altup_active_idx: number;
  /** Clip of the AltUp prediction/correction coefficients; null for none. */
  readonly altup_coef_clip: number | null;
  /** Whether AltUp scales the corrected active stream by its learned correct_output_scale. */
  readonly altup_correct_scale: boolean;
  /** Rank of the Laurel low-rank residual. */
  readonly laurel_rank: number;
  /** Per-layer fraction of FFN activations zeroed by the Gaussian top-k; default 0.95 for the first 10. */
  readonly activation_sparsity_pattern: readonly number[];
  /** FFN activation; only gelu_pytorch_tanh is supported. */
  readonly hidden_activation: string;
  readonly bos_token_id: number;
  /** One id or a list of ids that end generation. */
  readonly eos_token_id: number | number[];
  /** Id that fills padded batch positions. */
  readonly pad_token_id: number;
}

/** transformers' defaults for fields config.json may leave out (per-layer lists are derived, see above). */
export const TEXT_CONFIG_DEFAULTS = {
  vocab_size: 262400,
  vocab_size_per_layer_input: 262144,
  hidden_size: 2048,
  hidden_size_per_layer_input: 256,
  intermediate_size: 16384,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 1_000_000,
  rope_local_base_freq: 10_000,
  sliding_window: 512,
  final_logit_softcapping: 30,
  num_kv_shared_layers: 15,
  altup_num_inputs: 4,
  altup_active_idx: 0,
  altup_coef_clip: 120,
  altup_correct_scale: true,
  laurel_rank: 64,
  hidden_activation: 'gelu_pytorch_tanh',
  bos_token_id: 2,
  eos_token_id: 1,
  pad_token_id: 0,
} as const satisfies { readonly [K in keyof TextConfig]?: unknown };

export interface LayerFacts {
  readonly index: number;
  readonly type: LayerType;
  readonly ropeTheta: number;
  readonly kv: KvRole;
  /** For consumers, the producer whose K/V they read; for others, null. */
  readonly kvSource: number | null;
  readonly sparsity: number;
  readonly ffn: number;
}

export interface ModelConfig {
  /** The JSON as read, unknown keys included. */
  readonly raw: Record<string, unknown>;
  /** True when the text settings sit under `text_config` (the published multimodal layout). */
  readonly multimodal: boolean;
  readonly style: ConfigStyle;
  readonly text: TextConfig;
  readonly layers: readonly LayerFacts[];
  /** First KV-shared layer index, F = L - num_kv_shared_layers. */
  readonly firstSharedLayer: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a numeric field with a default, rejecting wrong types. */
function num(file: string, o: Json, key: string, dflt?: number, integer = false): number {
  const v = o[key];
  if (v === undefined || v === null) {
    if (dflt === undefined) throw new ConfigError(file, `text config lacks "${key}"`);
    return dflt;
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new ConfigError(
      file,
      `"${key}" must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/** A size that must be a positive integer (a zero or negative width would give empty or absurd tensors). */
function dim(file: string, o: Json, key: string, dflt: number): number {
  const v = num(file, o, key, dflt, true);
  if (v < 1) throw new ConfigError(file, `"${key}" must be a positive integer, got ${v}`);
  return v;
}

function positive(file: string, o: Json, key: string, dflt: number): number {
  const v = num(file, o, key, dflt);
  if (!(v > 0)) throw new ConfigError(file, `"${key}" must be positive, got ${v}`);
  return v;
}

const MAX_LAYERS = 4096;
const MAX_ALTUP_INPUTS = 64;

function defaultLayerTypes(n: number): LayerType[] {
  return Array.from({ length: n }, (_, i) => ((i + 1) % 5 === 0 ? 'full_attention' : 'sliding_attention'));
}

export function parseConfig(json: unknown, file = 'config.json'): ModelConfig {
  const D = TEXT_CONFIG_DEFAULTS;
  if (!isObject(json)) throw new ConfigError(file, 'expected a JSON object');
  const multimodal = isObject(json.text_config);
  const t: Json = multimodal ? (json.text_config as Json) : json;
  const mt = t.model_type;
  if (mt !== undefined && mt !== 'gemma3n_text' && mt !== 'gemma3n') {
    throw new ConfigError(file, `model_type ${JSON.stringify(mt)} is not Gemma 3n (expected gemma3n_text)`);
  }
  const L = num(file, t, 'num_hidden_layers', undefined, true);
  // The bound keeps a corrupt value from allocating per-layer lists of absurd length (Gemma 3n has 30-35).
  if (L < 1) throw new ConfigError(file, '"num_hidden_layers" must be at least 1');
  if (L > MAX_LAYERS)
    throw new ConfigError(file, `"num_hidden_layers" must be at most ${MAX_LAYERS}, got ${L}`);

  const listOfLength = <T>(key: string, value: unknown, check: (x: unknown) => x is T, what: string): T[] => {
    if (!Array.isArray(value) || !value.every(check)) {
      throw new ConfigError(file, `"${key}" must be a list of ${what}`);
    }
    if (value.length !== L) {
      throw new ConfigError(file, `"${key}" has ${value.length} entries but num_hidden_layers is ${L}`);
    }
    return value;
  };
  const isPosInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x > 0;
  const isFrac = (x: unknown): x is number => typeof x === 'number' && x >= 0 && x < 1;
  const isType = (x: unknown): x is LayerType => x === 'sliding_attention' || x === 'full_attention';

  const inter = t.intermediate_size ?? D.intermediate_size;
  const intermediateSize =
    typeof inter === 'number'
      ? Array.from({ length: L }, () => (isPosInt(inter) ? inter : NaN))
      : listOfLength('intermediate_size', inter, isPosInt, 'positive integers');
  if (intermediateSize.some(Number.isNaN))
    throw new ConfigError(file, '"intermediate_size" must be a positive integer');

  const layerTypes =
    t.layer_types === undefined || t.layer_types === null
      ? defaultLayerTypes(L)
      : listOfLength('layer_types', t.layer_types, isType, '"sliding_attention" / "full_attention"');

  const sp = t.activation_sparsity_pattern;
  const activationSparsityPattern =
    sp === undefined || sp === null
      ? Array.from({ length: L }, (_, i) => (L > 10 && i < 10 ? 0.95 : 0))
      : listOfLength('activation_sparsity_pattern', sp, isFrac, 'numbers in [0, 1)');

  const style: ConfigStyle = isObject(t.rope_parameters) ? '5.x' : '4.53';
  let ropeTheta: number;
  let ropeLocalBaseFreq: number;
  if (style === '5.x') {
    const rp = t.rope_parameters as Json;
    const full = isObject(rp.full_attention) ? rp.full_attention : {};
    const sliding = isObject(rp.sliding_attention) ? rp.sliding_attention : {};
    for (const [k, sub] of [
      ['full_attention', full],
      ['sliding_attention', sliding],
    ] as const) {
      const rt = sub.rope_type;
      if (rt !== undefined && rt !== 'default') {
        throw new ConfigError(
          file,
          `rope_parameters.${k}.rope_type ${JSON.stringify(rt)} is not supported (only "default")`,
        );
      }
    }
    ropeTheta = num(file, full, 'rope_theta', D.rope_theta);
    ropeLocalBaseFreq = num(file, sliding, 'rope_theta', D.rope_local_base_freq);
  } else {
    ropeTheta = num(file, t, 'rope_theta', D.rope_theta);
    ropeLocalBaseFreq = num(file, t, 'rope_local_base_freq', D.rope_local_base_freq);
    if (t.rope_scaling !== undefined && t.rope_scaling !== null) {
      throw new ConfigError(file, '"rope_scaling" must be null (only default RoPE is supported)');
    }
  }

  const H = dim(file, t, 'hidden_size', D.hidden_size);
  const heads = dim(file, t, 'num_attention_heads', D.num_attention_heads);
  const kvHeads = dim(file, t, 'num_key_value_heads', D.num_key_value_heads);
  if (heads % kvHeads !== 0) {
    throw new ConfigError(
      file,
      `num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`,
    );
  }
  const shared = num(file, t, 'num_kv_shared_layers', D.num_kv_shared_layers, true);
  if (shared < 0 || shared > L) {
    throw new ConfigError(
      file,
      `"num_kv_shared_layers" (${shared}) must be between 0 and num_hidden_layers (${L})`,
    );
  }
  const altupN = dim(file, t, 'altup_num_inputs', D.altup_num_inputs);
  // Each AltUp input has its own projection tensors; Gemma 3n uses 4.
  if (altupN > MAX_ALTUP_INPUTS) {
    throw new ConfigError(file, `"altup_num_inputs" must be at most ${MAX_ALTUP_INPUTS}, got ${altupN}`);
  }
  const active = num(file, t, 'altup_active_idx', D.altup_active_idx, true);
  if (active < 0 || active >= altupN) {
    throw new ConfigError(file, `"altup_active_idx" (${active}) must be below altup_num_inputs (${altupN})`);
  }
  const act = t.hidden_activation ?? D.hidden_activation;
  if (act !== D.hidden_activation) {
    throw new ConfigError(
      file,
      `"hidden_activation" ${JSON.stringify(act)} is not supported (expected gelu_pytorch_tanh)`,
    );
  }
  const softcap = t.final_logit_softcapping;
  const eos = t.eos_token_id ?? D.eos_token_id;

  const text: TextConfig = {
    vocab_size: dim(file, t, 'vocab_size', D.vocab_size),
    vocab_size_per_layer_input: dim(file, t, 'vocab_size_per_layer_input', D.vocab_size_per_layer_input),
    hidden_size: H,
    hidden_size_per_layer_input: dim(file, t, 'hidden_size_per_layer_input', D.hidden_size_per_layer_input),
    intermediate_size: intermediateSize,
    num_hidden_layers: L,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: dim(file, t, 'head_dim', D.head_dim),
    rms_norm_eps: positive(file, t, 'rms_norm_eps', D.rms_norm_eps),
    rope_theta: ropeTheta,
    rope_local_base_freq: ropeLocalBaseFreq,
    sliding_window: dim(file, t, 'sliding_window', D.sliding_window),
    layer_types: layerTypes,
    final_logit_softcapping:
      softcap === null ? null : num(file, t, 'final_logit_softcapping', D.final_logit_softcapping),
    num_kv_shared_layers: shared,
    altup_num_inputs: altupN,
    altup_active_idx: active,
    altup_coef_clip: t.altup_coef_clip === null ? null : num(file, t, 'altup_coef_clip', D.altup_coef_clip),
    altup_correct_scale:
      t.altup_correct_scale === undefined ? D.altup_correct_scale : Boolean(t.altup_correct_scale),
    laurel_rank: dim(file, t, 'laurel_rank', D.laurel_rank),
    activation_sparsity_pattern: activationSparsityPattern,
    hidden_activation: act,
    bos_token_id: num(file, t, 'bos_token_id', D.bos_token_id, true),
    eos_token_id: Array.isArray(eos) ? (eos as number[]) : (eos as number),
    pad_token_id: num(file, t, 'pad_token_id', D.pad_token_id, true),
  };
  const { layers, firstSharedLayer } = deriveLayers(text, file);
  return { raw: json, multimodal, style, text, layers, firstSharedLayer };
}

/**
 * KV roles from layer types and num_kv_shared_layers (never hard-coded 18/19): consumers are
 * l >= F = L - S (when F > 0); each reads the last earlier layer of its type before F.
 */
export function deriveKvRoles(
  layerTypes: readonly LayerType[],
  numKvSharedLayers: number,
): { roles: KvRole[]; sources: (number | null)[]; firstShared: number; missing: number[] } {
  const L = layerTypes.length;
  const F = L - numKvSharedLayers;
  const roles: KvRole[] = layerTypes.map(() => 'independent');
  const sources: (number | null)[] = layerTypes.map(() => null);
  const missing: number[] = [];
  if (F > 0) {
    for (let l = F; l < L; l++) {
      let src = -1;
      for (let j = F - 1; j >= 0; j--) {
        if (layerTypes[j] === layerTypes[l]) {
          src = j;
          break;
        }
      }
      if (src < 0) {
        missing.push(l);
        continue;
      }
      roles[l] = 'consumer';
      sources[l] = src;
      roles[src] = 'producer';
    }
  }
  return { roles, sources, firstShared: F > 0 ? F : L, missing };
}

function deriveLayers(text: TextConfig, file: string): { layers: LayerFacts[]; firstSharedLayer: number } {
  const { roles, sources, firstShared, missing } = deriveKvRoles(text.layer_types, text.num_kv_shared_layers);
  const orphan = missing[0];
  if (orphan !== undefined) {
    throw new ConfigError(
      file,
      `KV-shared layer ${orphan} (${text.layer_types[orphan]}) has no earlier layer of its type to share from`,
    );
  }
  // roles, sources and the per-layer lists all have num_hidden_layers entries (parseConfig checks the lists).
  const layers = text.layer_types.map((type, i) => ({
    index: i,
    type,
    ropeTheta: type === 'full_attention' ? text.rope_theta : text.rope_local_base_freq,
    kv: roles[i]!,
    kvSource: sources[i]!,
    sparsity: text.activation_sparsity_pattern[i]!,
    ffn: text.intermediate_size[i]!,
  }));
  return { layers, firstSharedLayer: firstShared };
}

export function readConfigFile(filePath: string): ModelConfig {
  const problem = fileProblem(filePath);
  if (problem) throw new ConfigError(filePath, problem);
  let text: string;
  try {
    text = fs.readFileSync(filePath, 'utf8');
  } catch (err) {
    throw new ConfigError(filePath, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError(filePath, 'is not valid JSON');
  }
  return parseConfig(json, filePath);
}

/** Reads `<dir>/config.json`, or the file itself when given a path to a .json file. */
export function loadConfig(dirOrFile: string): ModelConfig {
  const p = dirOrFile.endsWith('.json') ? dirOrFile : path.join(dirOrFile, 'config.json');
  if (!fs.existsSync(p)) {
    throw new ConfigError(p, 'not found: expected a Gemma 3n config.json (is this a checkpoint folder?)');
  }
  return readConfigFile(p);
}

/** The text part of the raw JSON (what the HF text_config holds). */
export function rawTextConfig(cfg: ModelConfig): Json {
  return cfg.multimodal ? (cfg.raw.text_config as Json) : cfg.raw;
}

/**
 * A new config JSON with text fields replaced, everything else (unknown keys, key order, style) kept.
 * `updates` uses the HF key names (e.g. `num_hidden_layers`).
 */
export function withTextUpdates(cfg: ModelConfig, updates: Json): Json {
  const clone = JSON.parse(JSON.stringify(cfg.raw)) as Json;
  const target = cfg.multimodal ? (clone.text_config as Json) : clone;
  for (const [k, v] of Object.entries(updates)) target[k] = v;
  return clone;
}

export function serializeConfig(json: Json): string {
  return JSON.stringify(json, null, 2) + '\n';
}

/** Ids at or above this are not text tokens (the vision/audio ids of a multimodal vocabulary). */
export function textVocabLimit(cfg: ModelConfig): number {
  const vision = cfg.raw.vision_config as { vocab_offset?: unknown } | undefined;
  const offset = typeof vision?.vocab_offset === 'number' ? vision.vocab_offset : Infinity;
  return Math.min(cfg.text.vocab_size, offset);
}

/** transformers' Gemma3nTextConfig default for max_position_embeddings. */
const DEFAULT_MAX_POSITIONS = 32768;

/** Longest sequence (prompt + generated tokens) the model takes: text_config.max_position_embeddings. */
export function maxPositionEmbeddings(cfg: ModelConfig): number {
  const v = rawTextConfig(cfg).max_position_embeddings;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : DEFAULT_MAX_POSITIONS;
}

// Gemma 3n text configuration: parse both published styles, normalise, derive per-layer facts.
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

export interface TextConfig {
  readonly vocabSize: number;
  readonly vocabSizePerLayerInput: number;
  readonly hiddenSize: number;
  readonly hiddenSizePerLayerInput: number;
  readonly intermediateSize: readonly number[];
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeLocalBaseFreq: number;
  readonly slidingWindow: number;
  readonly layerTypes: readonly LayerType[];
  readonly finalLogitSoftcapping: number | null;
  readonly numKvSharedLayers: number;
  readonly altupNumInputs: number;
  readonly altupActiveIdx: number;
  readonly altupCoefClip: number | null;
  readonly altupCorrectScale: boolean;
  readonly laurelRank: number;
  readonly activationSparsityPattern: readonly number[];
  readonly hiddenActivation: string;
  readonly bosTokenId: number;
  readonly eosTokenId: number | number[];
  readonly padTokenId: number;
}

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

  const inter = t.intermediate_size ?? 16384;
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
    ropeTheta = num(file, full, 'rope_theta', 1_000_000);
    ropeLocalBaseFreq = num(file, sliding, 'rope_theta', 10_000);
  } else {
    ropeTheta = num(file, t, 'rope_theta', 1_000_000);
    ropeLocalBaseFreq = num(file, t, 'rope_local_base_freq', 10_000);
    if (t.rope_scaling !== undefined && t.rope_scaling !== null) {
      throw new ConfigError(file, '"rope_scaling" must be null (only default RoPE is supported)');
    }
  }

  const H = dim(file, t, 'hidden_size', 2048);
  const heads = dim(file, t, 'num_attention_heads', 8);
  const kvHeads = dim(file, t, 'num_key_value_heads', 2);
  if (heads % kvHeads !== 0) {
    throw new ConfigError(
      file,
      `num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`,
    );
  }
  const shared = num(file, t, 'num_kv_shared_layers', 15, true);
  if (shared < 0 || shared > L) {
    throw new ConfigError(
      file,
      `"num_kv_shared_layers" (${shared}) must be between 0 and num_hidden_layers (${L})`,
    );
  }
  const altupN = dim(file, t, 'altup_num_inputs', 4);
  // Each AltUp input has its own projection tensors; Gemma 3n uses 4.
  if (altupN > MAX_ALTUP_INPUTS) {
    throw new ConfigError(file, `"altup_num_inputs" must be at most ${MAX_ALTUP_INPUTS}, got ${altupN}`);
  }
  const active = num(file, t, 'altup_active_idx', 0, true);
  if (active < 0 || active >= altupN) {
    throw new ConfigError(file, `"altup_active_idx" (${active}) must be below altup_num_inputs (${altupN})`);
  }
  const act = t.hidden_activation ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') {
    throw new ConfigError(
      file,
      `"hidden_activation" ${JSON.stringify(act)} is not supported (expected gelu_pytorch_tanh)`,
    );
  }
  const softcap = t.final_logit_softcapping;
  const eos = t.eos_token_id ?? 1;

  const text: TextConfig = {
    vocabSize: dim(file, t, 'vocab_size', 262400),
    vocabSizePerLayerInput: dim(file, t, 'vocab_size_per_layer_input', 262144),
    hiddenSize: H,
    hiddenSizePerLayerInput: dim(file, t, 'hidden_size_per_layer_input', 256),
    intermediateSize,
    numHiddenLayers: L,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim: dim(file, t, 'head_dim', 256),
    rmsNormEps: positive(file, t, 'rms_norm_eps', 1e-6),
    ropeTheta,
    ropeLocalBaseFreq,
    slidingWindow: dim(file, t, 'sliding_window', 512),
    layerTypes,
    finalLogitSoftcapping: softcap === null ? null : num(file, t, 'final_logit_softcapping', 30),
    numKvSharedLayers: shared,
    altupNumInputs: altupN,
    altupActiveIdx: active,
    altupCoefClip: t.altup_coef_clip === null ? null : num(file, t, 'altup_coef_clip', 120),
    altupCorrectScale: t.altup_correct_scale === undefined ? true : Boolean(t.altup_correct_scale),
    laurelRank: dim(file, t, 'laurel_rank', 64),
    activationSparsityPattern,
    hiddenActivation: act,
    bosTokenId: num(file, t, 'bos_token_id', 2, true),
    eosTokenId: Array.isArray(eos) ? (eos as number[]) : (eos as number),
    padTokenId: num(file, t, 'pad_token_id', 0, true),
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
  const { roles, sources, firstShared, missing } = deriveKvRoles(text.layerTypes, text.numKvSharedLayers);
  if (missing.length > 0) {
    throw new ConfigError(
      file,
      `KV-shared layer ${missing[0]} (${text.layerTypes[missing[0]]}) has no earlier layer of its type to share from`,
    );
  }
  const layers = text.layerTypes.map((type, i) => ({
    index: i,
    type,
    ropeTheta: type === 'full_attention' ? text.ropeTheta : text.ropeLocalBaseFreq,
    kv: roles[i],
    kvSource: sources[i],
    sparsity: text.activationSparsityPattern[i],
    ffn: text.intermediateSize[i],
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
  return Math.min(cfg.text.vocabSize, offset);
}

/** transformers' Gemma3nTextConfig default for max_position_embeddings. */
const DEFAULT_MAX_POSITIONS = 32768;

/** Longest sequence (prompt + generated tokens) the model takes: text_config.max_position_embeddings. */
export function maxPositionEmbeddings(cfg: ModelConfig): number {
  const v = rawTextConfig(cfg).max_position_embeddings;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : DEFAULT_MAX_POSITIONS;
}

// What a checkpoint (or a bare config.json) holds: per-layer facts, parameter counts, and, when weights
// are present, a check of every text tensor against the tensor table. The CLI renders the report.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONFIG_FILE, Checkpoint, INDEX_FILE, TensorShard, UserInputError } from '../formats';
import { ConfigStyle, KvRole, LayerType, ModelConfig, loadConfig } from './config';
import { ParamBreakdown, textParams, withTowers } from './accounting';
import { MixNMatchSpec, deriveSubmodel, identitySpec } from './submodel';
import { TEXT_PREFIX, detectTextPrefix, expectedTextTensors } from './tensors';

/** Tensors under these prefixes belong to the towers: never "unexpected" text tensors. */
export const NON_TEXT_PREFIXES = [
  'model.vision_tower.',
  'model.audio_tower.',
  'model.embed_vision.',
  'model.embed_audio.',
] as const;

export interface InspectLayer {
  /** Index in the (sub)model. */
  readonly index: number;
  /** Index in the parent checkpoint (differs from `index` when layers are skipped). */
  readonly parentIndex: number;
  readonly type: LayerType;
  readonly ffn: number;
  readonly kv: KvRole;
  /** For a consumer: the (sub)model index of the producer whose K/V it reads. */
  readonly kvSource: number | null;
  readonly sparsity: number;
}

export interface WrongShape {
  readonly name: string;
  readonly expected: number[];
  readonly actual: number[];
}

export interface ShardReport {
  readonly file: string;
  readonly bytes: number;
  readonly tensors: number;
}

export interface CheckpointReport {
  readonly shards: ShardReport[];
  /** Number of tensors the checkpoint names (index entries, or the single file's tensors). */
  readonly tensors: number;
  /** Bytes of all shard files. */
  readonly bytes: number;
  readonly textPrefix: string;
  readonly expectedText: number;
  /** Consumer-layer K/V tensors (allowed, not required) that are present. */
  readonly optionalPresent: number;
  readonly missing: string[];
  readonly wrongShape: WrongShape[];
  readonly unexpected: string[];
  readonly dtypes: Record<string, number>;
  readonly warnings: string[];
}

export interface InspectReport {
  readonly source: string;
  readonly configPath: string;
  readonly multimodal: boolean;
  readonly style: ConfigStyle;
  readonly text: {
    readonly layers: number;
    readonly hiddenSize: number;
    readonly numAttentionHeads: number;
    readonly numKeyValueHeads: number;
    readonly headDim: number;
    readonly hiddenSizePerLayerInput: number;
    readonly vocabSize: number;
    readonly vocabSizePerLayerInput: number;
    readonly slidingWindow: number;
    readonly numKvSharedLayers: number;
    readonly firstSharedLayer: number;
  };
  /** Present when a Mix-n-Match spec was given: the numbers below are the submodel's. */
  readonly spec: MixNMatchSpec | null;
  readonly layers: InspectLayer[];
  readonly params: ParamBreakdown;
  readonly checkpoint: CheckpointReport | null;
}

/** Where the config lives: `<dir>/config.json`, or the path itself when it is a .json file. */
export function resolveSource(target: string): { dir: string; configPath: string; configOnly: boolean } {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch {
    throw new UserInputError(
      `${target}: no such file or folder (expected a checkpoint folder or a config.json)`,
    );
  }
  if (st.isDirectory()) return { dir: target, configPath: path.join(target, CONFIG_FILE), configOnly: false };
  if (!target.endsWith('.json')) {
    throw new UserInputError(`${target}: expected a checkpoint folder or a config.json, got another file`);
  }
  return { dir: path.dirname(target), configPath: target, configOnly: true };
}

/** Layers of the submodel a spec describes (or of the parent), as the submodel derivation gives them. */
export function specLayers(cfg: ModelConfig, spec: MixNMatchSpec): InspectLayer[] {
  return deriveSubmodel(cfg, spec).layers.map((l) => ({
    index: l.index,
    parentIndex: l.parentIndex,
    type: l.type,
    ffn: l.ffn,
    kv: l.kv,
    kvSource: l.kvSource,
    sparsity: l.sparsity,
  }));
}

function isTextName(name: string, prefix: string): boolean {
  return name.startsWith(prefix) && !NON_TEXT_PREFIXES.some((p) => name.startsWith(p));
}

/** Checks the checkpoint's text tensors against the parent config (the checkpoint on disk). */
export function checkTensors(cfg: ModelConfig, ckpt: Checkpoint<TensorShard>): CheckpointReport {
  const names = [...ckpt.tensors.keys()];
  const prefix = cfg.multimodal ? TEXT_PREFIX : detectTextPrefix(names);
  const consumers = new Set(cfg.layers.filter((l) => l.kv === 'consumer').map((l) => l.index));
  const expected = expectedTextTensors(cfg.text, consumers, prefix);
  const byName = new Map(expected.map((e) => [e.name, e]));
  // A tied LM head may be re-saved as a duplicate of embed_tokens: allowed, and must have its shape.
  const lmHead = 'lm_head.weight';
  const missing: string[] = [];
  const wrongShape: WrongShape[] = [];
  const unexpected: string[] = [];
  let optionalPresent = 0;
  for (const e of expected) {
    const t = ckpt.tensors.get(e.name);
    if (!t) {
      if (!e.optional) missing.push(e.name);
      continue;
    }
    if (e.optional) optionalPresent++;
    const actual = [...t.info.shape];
    if (actual.length !== e.shape.length || actual.some((d, i) => d !== e.shape[i])) {
      wrongShape.push({ name: e.name, expected: e.shape, actual });
    }
  }
  const dtypes: Record<string, number> = {};
  for (const [name, t] of ckpt.tensors) {
    dtypes[t.info.dtype] = (dtypes[t.info.dtype] ?? 0) + 1;
    if (name === lmHead) {
      const want = [cfg.text.vocab_size, cfg.text.hidden_size];
      const got = [...t.info.shape];
      if (got.length !== 2 || got[0] !== want[0] || got[1] !== want[1]) {
        wrongShape.push({ name, expected: want, actual: got });
      }
      continue;
    }
    if (isTextName(name, prefix) && !byName.has(name)) unexpected.push(name);
  }
  const shardTensors = new Map<string, number>();
  for (const t of ckpt.tensors.values())
    shardTensors.set(t.file.path, (shardTensors.get(t.file.path) ?? 0) + 1);
  const shards = ckpt.shards.map((s) => ({
    file: path.basename(s.path),
    bytes: s.fileBytes,
    tensors: shardTensors.get(s.path) ?? 0,
  }));
  const warnings: string[] = [];
  const declared = ckpt.index?.metadata.total_size;
  if (typeof declared === 'number' && declared !== ckpt.dataBytes) {
    warnings.push(
      `${INDEX_FILE}: metadata.total_size is ${declared} but the tensors hold ${ckpt.dataBytes} bytes`,
    );
  }
  return {
    shards,
    tensors: ckpt.tensors.size,
    bytes: shards.reduce((a, s) => a + s.bytes, 0),
    textPrefix: prefix,
    expectedText: expected.length,
    optionalPresent,
    missing,
    wrongShape,
    unexpected: unexpected.sort(),
    dtypes,
    warnings,
  };
}

export interface InspectOptions {
  /** A Mix-n-Match spec over the checkpoint's config: layers and parameters are shown for it. */
  readonly spec?: MixNMatchSpec;
  /** Weights opened elsewhere (e.g. shard headers read from the Hub), and the name to report them by. */
  readonly checkpoint?: Checkpoint<TensorShard>;
  readonly source?: string;
}

/** Config-only when `target` is a config.json or a folder without weights; a full check otherwise. */
export function inspect(target: string, opts: InspectOptions = {}): InspectReport {
  const src = resolveSource(target);
  const cfg = loadConfig(src.configPath);
  return inspectConfig(cfg, src, opts);
}

/** `inspect` for an already-parsed config (the spec parser needs the config first). */
export function inspectConfig(
  cfg: ModelConfig,
  src: { dir: string; configPath: string; configOnly: boolean },
  opts: InspectOptions = {},
): InspectReport {
  const c = cfg.text;
  const spec = opts.spec ?? identitySpec(c.intermediate_size);
  const layers = specLayers(cfg, spec);
  const firstConsumer = layers.findIndex((l) => l.kv === 'consumer');
  let params = textParams(c, spec);
  let checkpoint: CheckpointReport | null = null;
  if (opts.checkpoint || (!src.configOnly && hasAnyWeights(src.dir))) {
    // Shards without an index (or a broken index) are an error, not "config only": Checkpoint.open says why.
    const ckpt = opts.checkpoint ?? Checkpoint.open(src.dir);
    try {
      checkpoint = checkTensors(cfg, ckpt);
      params = withTowers(
        params,
        [...ckpt.tensors].map(([name, t]) => ({ name, shape: t.info.shape })),
      );
    } finally {
      if (!opts.checkpoint) ckpt.close();
    }
  }
  return {
    source: opts.source ?? (src.configOnly ? src.configPath : src.dir),
    configPath: opts.source ? `${opts.source}/config.json` : src.configPath,
    multimodal: cfg.multimodal,
    style: cfg.style,
    text: {
      layers: layers.length,
      hiddenSize: c.hidden_size,
      numAttentionHeads: c.num_attention_heads,
      numKeyValueHeads: c.num_key_value_heads,
      headDim: c.head_dim,
      hiddenSizePerLayerInput: c.hidden_size_per_layer_input,
      vocabSize: c.vocab_size,
      vocabSizePerLayerInput: c.vocab_size_per_layer_input,
      slidingWindow: c.sliding_window,
      numKvSharedLayers: layers.filter((l) => l.kv === 'consumer').length,
      firstSharedLayer: firstConsumer >= 0 ? firstConsumer : layers.length,
    },
    spec: opts.spec ? { skip: [...opts.spec.skip], ffn: [...opts.spec.ffn] } : null,
    layers,
    params,
    checkpoint,
  };
}

function hasAnyWeights(dir: string): boolean {
  if (Checkpoint.hasWeights(dir)) return true;
  try {
    // Loose shards without an index: Checkpoint.open reports that. reference*.safetensors hold the
    // parity fixtures' expected outputs, not weights.
    return fs.readdirSync(dir).some((f) => f.endsWith('.safetensors') && !f.startsWith('reference'));
  } catch {
    return false;
  }
}

/**
 * One line about missing or wrong-shape text tensors, or null when there are none: what inspect exits 2 with
 * and what every command that reads the weights (slice) refuses a broken checkpoint with.
 */
export function tensorProblems(ck: CheckpointReport): string | null {
  if (ck.missing.length === 0 && ck.wrongShape.length === 0) return null;
  const first = ck.missing[0] ?? ck.wrongShape[0]!.name;
  return (
    `checkpoint does not match its config: ${ck.missing.length} missing and ${ck.wrongShape.length} ` +
    `wrong-shape text tensors (first: ${first})`
  );
}

/** True when the checkpoint lacks required text tensors or has wrong shapes. */
export function hasProblems(r: InspectReport): boolean {
  return r.checkpoint !== null && (r.checkpoint.missing.length > 0 || r.checkpoint.wrongShape.length > 0);
}

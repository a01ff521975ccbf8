// The inference engine: load a checkpoint once, then evaluate any Mix-n-Match submodel of it as an elastic
// view (no checkpoint written or reloaded: kept layers share the parent's resident weights, narrower FFNs are
// tf.slice copies of the full-width ones). Batches are right-padded with explicit positions and masks.
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint, UserInputError } from '../formats';
import {
  type MixNMatchSpec,
  type ModelConfig,
  deriveSubmodel,
  identitySpec,
  loadConfig,
  maxPositionEmbeddings,
  textVocabLimit,
} from '../gemma3n';
import {
  type BackendChoice,
  type BackendInfo,
  currentBackend,
  initBackend,
  releaseIdleBuffers,
} from './backend';
import { KvCache, PAD_KEY_POSITION, PrefixPast, buildMasks } from './cache';
import {
  type AttentionKeys,
  type ForwardState,
  Gemma3nText,
  disposeAttentionKeys,
  sharedPrefixProgram,
  type Gemma3nTextConfig,
  type LayerPlan,
  type LayerWeights,
  disposeForwardState,
  type SparsityStd,
} from './gemma3n';
import type { RestrictedRow } from './head';
import { packKeyPositions } from './kernels/attention';
import type { LinearWeight } from './kernels/linear';
import { PRECISIONS, type Precision } from './precision';
import { type LoadProgress, type ParentWeights, loadParentWeights, residentWeightBytes } from './weights';

export { PRECISIONS, type Precision } from './precision';

export type TokenBatch = readonly (readonly number[])[];

export interface EngineLoadOptions {
  /** Backend to activate; omitted: keep the active one if `initBackend` ran, else `auto`. */
  backend?: BackendChoice;
  /** 'exact' when omitted. */
  precision?: Precision;
  onProgress?: (p: LoadProgress) => void;
}

/** What every backend computes in (bf16/f16 weights are decoded exactly): recorded with results and journals. */
export const ENGINE_PRECISION = 'float32';

/** Keeps every single tensor (LM-head chunk, logits tile) at most this large, and under the binding limit. */
const MAX_TENSOR_BYTES = 1 << 30;

/**
 * GPU memory the weights of a model with this config hold on the webgpu backend at `precision`, from the
 * packed layouts (bf16 words; int8 words and scales for the projections int8 mode quantizes), without loading
 * it. The embedding and PLE tables are not resident (read per batch from the checkpoint); the tied LM head is.
 */
export function gpuWeightBytes(config: ModelConfig, precision: Precision): number {
  return residentWeightBytes(config, { precision, packBf16: true, maxTensorBytes: MAX_TENSOR_BYTES });
}

export interface ViewOptions {
  /** Gaussian top-k standard deviation: 'population' (transformers, the default) or 'sample' (llama.cpp). */
  readonly sparsityStd?: SparsityStd;
}

export class Engine {
  private readonly views = new Set<TextModel>();
  private disposed = false;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly backend: BackendInfo,
    readonly weights: ParentWeights,
    private readonly ckpt: Checkpoint,
    /** Ids at or above this are not text tokens (vision/audio ids of the multimodal vocabulary). */
    readonly maxTextId: number,
    readonly precision: Precision,
  ) {}

  static async load(dir: string, opts: EngineLoadOptions = {}): Promise<Engine> {
    const active = currentBackend();
    const precision = opts.precision ?? 'exact';
    if (!PRECISIONS.includes(precision)) {
      throw new UserInputError(
        `--precision: expected one of ${PRECISIONS.join(', ')}, got ${String(precision)}`,
      );
    }
    const backend = opts.backend === undefined && active ? active : await initBackend(opts.backend ?? 'auto');
    const config = loadConfig(dir);
    // The int8 programs are registered for webgpu and (their twins) cpu only.
    if (precision === 'int8' && backend.name !== 'webgpu' && backend.name !== 'cpu') {
      throw new UserInputError(
        `--precision int8 runs on the webgpu and cpu backends, not ${backend.name} (add --backend webgpu or --backend cpu)`,
      );
    }
    const ckpt = Checkpoint.open(dir);
    try {
      const weights = loadParentWeights(
        ckpt,
        config,
        Math.min(MAX_TENSOR_BYTES, backend.maxBindingBytes),
        opts.onProgress,
        backend.name === 'webgpu',
        precision,
      );
      return new Engine(dir, config, backend, weights, ckpt, textVocabLimit(config), precision);
    } catch (e) {
      ckpt.close();
      throw e;
    }
  }

  /** The parent itself (no spec) or a Mix-n-Match submodel of it. Dispose views you no longer need. */
  view(spec?: MixNMatchSpec, opts: ViewOptions = {}): TextModel {
    if (this.disposed) throw new Error('engine used after dispose()');
    const v = new TextModel(this, spec ?? identitySpec(this.config.text.intermediate_size), opts);
    this.views.add(v);
    return v;
  }

  /** @internal */
  forget(v: TextModel): void {
    this.views.delete(v);
  }

  dispose(): void {
    if (this.disposed) return;
    for (const v of [...this.views]) v.dispose();
    this.weights.dispose();
    this.ckpt.close();
    this.disposed = true;
  }
}

/**
 * The decoder config of a submodel: the kept layers, widths and KV roles of the one submodel derivation (what
 * a sliced checkpoint's config says, §5.2), in the shape the forward pass wants.
 */
export function submodelConfig(
  config: ModelConfig,
  spec: MixNMatchSpec,
  opts: ViewOptions = {},
): Gemma3nTextConfig {
  const t = config.text;
  const submodel = deriveSubmodel(config, spec);
  const layers: LayerPlan[] = submodel.layers.map((l) => ({
    parentIndex: l.parentIndex,
    kind: l.type === 'full_attention' ? 'full' : 'sliding',
    ropeTheta: l.ropeTheta,
    kvRole: l.kv,
    kvSource: l.kvSource,
    sparsity: l.sparsity,
    sparsityStd: opts.sparsityStd ?? 'population',
    ffn: l.ffn,
  }));
  return {
    hidden_size: t.hidden_size,
    num_attention_heads: t.num_attention_heads,
    num_key_value_heads: t.num_key_value_heads,
    head_dim: t.head_dim,
    hidden_size_per_layer_input: t.hidden_size_per_layer_input,
    altup_num_inputs: t.altup_num_inputs,
    altup_correct_scale: t.altup_correct_scale,
    rms_norm_eps: t.rms_norm_eps,
    sliding_window: t.sliding_window,
    final_logit_softcapping: t.final_logit_softcapping,
    vocab_size: t.vocab_size,
    vocab_size_per_layer_input: t.vocab_size_per_layer_input,
    pad_token_id: t.pad_token_id,
    parentLayers: t.num_hidden_layers,
    layers,
  };
}

/** Where to read the head: the last token of each sequence, or chosen positions (indices into its new tokens). */
export type Positions = 'last' | readonly (readonly number[])[];

export interface GenerateOptions {
  maxNewTokens: number;
  /**
   * A batch-1 cache of a prompt every sequence continues (e.g. a system prompt): the prompts are then the
   * rest of each sequence, and every row reads the prefix's K/V without a copy per row (`KvCache.share`).
   */
  prefix?: KvCache;
  /** Stop a sequence after it emits one of these ids (the id is kept in its output). */
  stopIds?: readonly number[];
  /** Called after each step with the new token of every sequence still running. */
  onStep?: (tokens: readonly (number | null)[]) => void;
}

/** A (sub)model of a loaded parent. Everything is float32 on the engine's backend. */
export class TextModel {
  readonly cfg: Gemma3nTextConfig;
  readonly decoder: Gemma3nText;
  /** FFN weights narrowed for this view (float32 copies; bf16 and int8 views own nothing). */
  private readonly owned: LinearWeight[] = [];
  private disposed = false;

  constructor(
    readonly engine: Engine,
    readonly spec: MixNMatchSpec,
    opts: ViewOptions = {},
  ) {
    this.cfg = submodelConfig(engine.config, spec, opts);
    const parent = engine.weights;
    try {
      const layers: LayerWeights[] = this.cfg.layers.map((plan) => {
        const w = parent.layers[plan.parentIndex];
        if (!w) throw new Error(`the parent has no weights for layer ${plan.parentIndex}`);
        if (plan.ffn === w.down.inFeatures) return w;
        // MatFormer prefix slice: gate/up keep their first I' outputs, down its first I' inputs.
        const I = plan.ffn;
        const gate = w.gate.prefix(w.gate.inFeatures, I);
        const up = w.up.prefix(w.up.inFeatures, I);
        const down = w.down.prefix(I, w.down.outFeatures);
        this.owned.push(gate, up, down);
        return { ...w, gate, up, down };
      });
      this.decoder = new Gemma3nText(this.cfg, parent.global, layers, parent.host);
    } catch (e) {
      for (const w of this.owned) w.dispose();
      throw e;
    }
  }

  /** Bytes this view added on top of the parent (its narrowed float32 FFN copies; 0 for bf16 or int8). */
  get extraBytes(): number {
    return this.owned.reduce((n, w) => n + w.bytes, 0);
  }

  newCache(batch = 1): KvCache {
    return new KvCache(this.cfg.layers, batch, this.cfg.sliding_window);
  }

  private check(batch: TokenBatch, cache: KvCache | null): void {
    if (this.disposed) throw new Error('model view used after dispose()');
    if (batch.length === 0) throw new UserInputError('no sequences given');
    if (cache && !cache.belongsTo(this.cfg.layers))
      throw new Error('the KV cache was made by another model view');
    if (cache && cache.batch !== batch.length) {
      throw new Error(`the KV cache holds ${cache.batch} sequences but ${batch.length} were given`);
    }
    const max = this.engine.maxTextId;
    const limit = maxPositionEmbeddings(this.engine.config);
    for (const [b, seq] of batch.entries()) {
      if (seq.length === 0) throw new UserInputError('empty token sequence');
      const end = (cache ? cache.nextPos[b]! : 0) + seq.length;
      if (end > limit) {
        throw new UserInputError(
          `a sequence of ${end} tokens exceeds the model's max_position_embeddings (${limit})`,
        );
      }
      for (const id of seq) {
        if (!Number.isInteger(id) || id < 0 || id >= max) {
          throw new UserInputError(`token id ${id} is outside the text vocabulary [0, ${max})`);
        }
      }
    }
  }

  /**
   * Runs the decoder over a right-padded batch and returns the final hidden rows at `rows` (flat indices
   * b·T + t), as one [N, H] tensor the caller disposes. The cache, if any, is advanced.
   */
  /** Padded ids, RoPE positions and key positions of a batch whose rows start at `start(b)`. */
  private batchInputs(
    batch: TokenBatch,
    start: (b: number) => number,
  ): { B: number; T: number; ids: Int32Array; positions: Int32Array; keyPos: Int32Array } {
    const B = batch.length;
    const T = Math.max(...batch.map((s) => s.length));
    const ids = new Int32Array(B * T).fill(this.cfg.pad_token_id);
    const positions = new Int32Array(B * T);
    const keyPos = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const seq = batch[b]!; // b < B = batch.length
      for (let t = 0; t < T; t++) {
        const m = b * T + t;
        positions[m] = start(b) + t;
        if (t < seq.length) {
          ids[m] = seq[t]!;
          keyPos[m] = start(b) + t;
        } else {
          keyPos[m] = PAD_KEY_POSITION;
        }
      }
    }
    return { B, T, ids, positions, keyPos };
  }

  /** Masks repeated per head on cpu (see buildMasks). */
  private get maskHeads(): number {
    return tf.getBackend() === 'cpu' ? this.cfg.num_attention_heads : 1;
  }

  /**
   * Runs the decoder over a right-padded batch and returns the final hidden rows at `rows` (flat indices
   * b·T + t), as one [N, H] tensor the caller disposes. The cache, if any, is advanced.
   */
  private async hidden(
    batch: TokenBatch,
    cache: KvCache | null,
    rows: (T: number) => number[],
  ): Promise<tf.Tensor2D> {
    this.check(batch, cache);
    releaseIdleBuffers();
    const { B, T, ids, positions, keyPos } = this.batchInputs(batch, (b) => (cache ? cache.nextPos[b]! : 0));
    const heads = this.maskHeads;
    // Rows continuing a shared prefix: the attention program masks by position (no [B, T, P + S] masks).
    const shared = cache?.sharesPrefix ?? false;
    const masks =
      shared && sharedPrefixProgram(this.cfg.head_dim, T)
        ? null
        : cache
          ? cache.masks(positions, keyPos, T, heads)
          : buildMasks(positions, keyPos, B, T, T, 0, this.cfg.sliding_window, heads);
    let keys: AttentionKeys | null = null;
    let h: tf.Tensor2D;
    try {
      if (shared) keys = cache!.keyPositions(positions, keyPos, T);
      h = this.decoder.forward({ shape: { B, T }, ids, positions, masks, keys }, cache);
    } finally {
      if (masks) tf.dispose([masks.full, masks.sliding]);
      disposeAttentionKeys(keys);
    }
    if (cache)
      cache.commit(
        keyPos,
        T,
        batch.map((s) => s.length),
      );
    const picked = rows(T);
    if (picked.length === B * T && picked.every((r, i) => r === i)) return h;
    const out = tf.gather(h, picked) as tf.Tensor2D;
    h.dispose();
    return out;
  }

  /**
   * Begins a forward of `batch` and pauses it before the first layer (see `PausedForward`). With `after`, the
   * rows continue that batch-1 prefix: positions start after it and every row attends to its K/V.
   */
  beginPaused(batch: TokenBatch, after?: PausedForward): PausedForward {
    this.check(batch, null);
    if (after && after.batch !== 1) throw new Error('a paused prefix must be a single sequence');
    releaseIdleBuffers();
    const P = after ? after.lengths[0]! : 0; // batch 1: one length
    const { B, T, ids, positions, keyPos } = this.batchInputs(batch, () => P);
    const S = P + T;
    // After a prefix the rows read its K/V at batch stride 0; the program masks them by position.
    let masks: Record<'full' | 'sliding', tf.Tensor4D> | null = null;
    if (!after || !sharedPrefixProgram(this.cfg.head_dim, T)) {
      const all = new Int32Array(B * S);
      for (let b = 0; b < B; b++) {
        for (let s = 0; s < P; s++) all[b * S + s] = s;
        all.set(keyPos.subarray(b * T, (b + 1) * T), b * S + P);
      }
      masks = buildMasks(positions, all, B, T, S, 0, this.cfg.sliding_window, this.maskHeads);
    }
    let keys: AttentionKeys | null = null;
    try {
      if (after) {
        const prefixPos = Array.from({ length: P }, (_, s) => s);
        const packed = tf.tensor1d(packKeyPositions(positions, prefixPos, keyPos), 'int32');
        keys = { positions: { full: packed, sliding: tf.clone(packed) }, window: this.cfg.sliding_window };
      }
      const state = this.decoder.begin({ shape: { B, T }, ids, positions, masks, keys });
      return new PausedForward(
        this.engine,
        state,
        masks,
        keys,
        batch.map((s) => s.length),
        after ?? null,
      );
    } catch (e) {
      if (masks) tf.dispose([masks.full, masks.sliding]);
      disposeAttentionKeys(keys);
      throw e;
    }
  }

  /**
   * Runs this view's layers [p.done, to) on a paused forward, returning a new one (`p` stays usable). Its first
   * p.done layers must be this view's too. A batch begun after a prefix needs that prefix advanced to ≥ `to`.
   */
  advancePaused(p: PausedForward, to: number, prefix?: PausedForward): PausedForward {
    if (this.disposed) throw new Error('model view used after dispose()');
    if (p.engine !== this.engine) throw new Error('the paused forward belongs to another engine');
    if ((prefix ?? null) !== null && prefix!.done < to) throw new Error('the prefix is behind the batch');
    const past = prefix ? new PrefixPast(prefix.state.kv) : null;
    return p.next(this.decoder.advance(p.state, to, past));
  }

  /** The restricted head at each row's last token of a paused forward that ran all of this view's layers. */
  async restrictedLast(p: PausedForward, vocabIds: readonly number[]): Promise<RestrictedRow[]> {
    const T = p.state.root.shape.T;
    const h = tf.tidy(() => {
      const all = this.decoder.finish(p.state);
      return tf.gather(
        all,
        p.lengths.map((n, b) => b * T + n - 1),
      ) as tf.Tensor2D;
    });
    try {
      return await this.engine.weights.head.restricted(h, vocabIds);
    } finally {
      h.dispose();
    }
  }

  /** Full soft-capped logits [len, V] of every sequence (host arrays, row-major). */
  async logits(batch: TokenBatch, opts: { cache?: KvCache } = {}): Promise<Float32Array[]> {
    const h = await this.hidden(batch, opts.cache ?? null, (T) =>
      batch.flatMap((s, b) => s.map((_, t) => b * T + t)),
    );
    try {
      const all = await this.engine.weights.head.logits(h);
      const V = this.cfg.vocab_size;
      const out: Float32Array[] = [];
      let r = 0;
      for (const s of batch) {
        out.push(all.subarray(r * V, (r + s.length) * V));
        r += s.length;
      }
      return out;
    } finally {
      h.dispose();
    }
  }

  /**
   * The restricted head: at the requested positions only, the logits of `vocabIds` and the full-vocabulary
   * log-sum-exp (log-softmax = logit − logsumexp). Never builds [T, vocab]. Result: [sequence][position].
   */
  async forward(
    batch: TokenBatch,
    opts: { positions?: Positions; vocabIds: readonly number[]; cache?: KvCache },
  ): Promise<RestrictedRow[][]> {
    const pos = this.resolvePositions(batch, opts.positions ?? 'last');
    const h = await this.hidden(batch, opts.cache ?? null, (T) =>
      pos.flatMap((ps, b) => ps.map((t) => b * T + t)),
    );
    try {
      const rows = await this.engine.weights.head.restricted(h, opts.vocabIds);
      const out: RestrictedRow[][] = [];
      let r = 0;
      for (const ps of pos) {
        out.push(rows.slice(r, r + ps.length));
        r += ps.length;
      }
      return out;
    } finally {
      h.dispose();
    }
  }

  /** Runs the batch through the decoder only to extend `cache` (no LM head at all). */
  async prefill(batch: TokenBatch, cache: KvCache): Promise<void> {
    const h = await this.hidden(batch, cache, () => [0]);
    h.dispose();
  }

  /** Greedy next text token after each sequence (advancing the cache if given). */
  async nextTokens(batch: TokenBatch, cache?: KvCache): Promise<number[]> {
    const h = await this.hidden(batch, cache ?? null, (T) => batch.map((s, b) => b * T + s.length - 1));
    try {
      return [...(await this.engine.weights.head.argmax(h, this.engine.maxTextId))];
    } finally {
      h.dispose();
    }
  }

  /** Greedy decoding with a KV cache: one batched prefill, then one token per sequence per step. */
  async generate(prompts: TokenBatch, opts: GenerateOptions): Promise<number[][]> {
    const cache = opts.prefix ? opts.prefix.share(prompts.length) : this.newCache(prompts.length);
    const out: number[][] = prompts.map(() => []);
    const running = prompts.map(() => opts.maxNewTokens > 0);
    const stop = new Set(opts.stopIds ?? []);
    try {
      let next = opts.maxNewTokens > 0 ? await this.nextTokens(prompts, cache) : [];
      while (running.some(Boolean)) {
        const step: (number | null)[] = next.map((tok, b) => {
          // One token per prompt: b < prompts.length = out.length.
          const seq = out[b]!;
          if (!running[b]) return null;
          seq.push(tok);
          if (stop.has(tok) || seq.length >= opts.maxNewTokens) running[b] = false;
          return tok;
        });
        opts.onStep?.(step);
        if (!running.some(Boolean)) break;
        // Finished sequences keep decoding (their output is ignored) so the batch shape stays fixed.
        next = await this.nextTokens(
          next.map((t) => [t]),
          cache,
        );
      }
      return out;
    } finally {
      cache.dispose();
    }
  }

  private resolvePositions(batch: TokenBatch, positions: Positions): number[][] {
    if (positions === 'last') return batch.map((s) => [s.length - 1]);
    if (positions.length !== batch.length) throw new Error('one list of positions per sequence is required');
    return positions.map((ps, b) =>
      ps.map((t) => {
        const length = batch[b]!.length; // as many position lists as sequences (checked above)
        if (!Number.isInteger(t) || t < 0 || t >= length) {
          throw new RangeError(`position ${t} is outside sequence ${b} (length ${length})`);
        }
        return t;
      }),
    );
  }

  dispose(): void {
    if (this.disposed) return;
    for (const w of this.owned) w.dispose();
    this.decoder.dispose();
    this.engine.forget(this);
    this.disposed = true;
  }
}

/**
 * A forward paused between layers. A sweep begins one on the parent view and advances it on each candidate
 * view, branching where candidates' layer plans part, so layers candidates share run once. Dispose every
 * state advanced from a `beginPaused` one before that one (it owns the inputs they all read).
 */
export class PausedForward {
  /** @internal */
  constructor(
    readonly engine: Engine,
    /** @internal */
    readonly state: ForwardState,
    private readonly masks: Readonly<Record<'full' | 'sliding', tf.Tensor4D>> | null,
    private readonly keys: AttentionKeys | null,
    /** Real (unpadded) length of each row. */
    readonly lengths: readonly number[],
    /** The prefix this batch continues, if any. */
    readonly after: PausedForward | null,
  ) {}

  get batch(): number {
    return this.lengths.length;
  }

  /** Layers run so far. */
  get done(): number {
    return this.state.done;
  }

  /** Real tokens of the batch (what one layer evaluates, padding excluded). */
  get tokens(): number {
    return this.lengths.reduce((a, b) => a + b, 0);
  }

  /** Bytes of activations this state holds (streams and its own K/V, an estimate for memory caps). */
  get bytes(): number {
    return (this.state.streams.all.size + this.state.streams.active.size) * 4;
  }

  /** @internal */
  next(state: ForwardState): PausedForward {
    return new PausedForward(this.engine, state, null, null, this.lengths, this.after);
  }

  dispose(): void {
    disposeForwardState(this.state);
    if (this.masks) tf.dispose([this.masks.full, this.masks.sliding]);
    disposeAttentionKeys(this.keys);
  }
}

// The Gemma 3n text decoder on TensorFlow.js, one small module per concept of the architecture doc (§3):
// RMSNorm, RoPE, AltUp, Laurel, Attention, Mlp, PerLayerEmbeddings, KvSharing, DecoderLayer, Gemma3nText.
// Everything is float32. Activations are token-major: M = B·T tokens, hidden [M, H], AltUp streams [M, N, H]
// (stream axis in the middle so predict/correct are one batched matmul per token). Weights are stored
// transposed to [in, out] so every Linear is a plain `x @ W`.
import * as tf from '@tensorflow/tfjs-core';
import { normalQuantile } from '../formats';
import type { TextConfig } from '../gemma3n';
import type { KvCache } from './cache';
import { LinearWeight } from './kernels/linear';
import { altupCorrect, altupPredict } from './kernels/altup';
import { altupRoute } from './kernels/altup-route';
import { fusedAttention, sharedPrefixAttention } from './kernels/attention';
import { ownKernels } from './kernels/register';
import {
  fusedGeluGate,
  fusedGeluGateOf,
  fusedNormAdd,
  fusedNormRope,
  fusedRmsNorm,
  fusedStreamsAdd,
} from './kernels/row-ops';

// ---------------------------------------------------------------------------------------------------------
// Config: what the forward pass of one (sub)model needs. Built from the parent's TextConfig and a spec;
// config.json facts keep their config.json names.

export type AttentionKind = 'sliding' | 'full';

export interface LayerPlan {
  /** Index in the parent checkpoint (PLE columns, weight names). */
  readonly parentIndex: number;
  readonly kind: AttentionKind;
  readonly ropeTheta: number;
  /** Position of this layer's K/V producer in the submodel's layer list (consumers only). */
  readonly kvSource: number | null;
  readonly kvRole: 'producer' | 'consumer' | 'independent';
  readonly sparsity: number;
  /**
   * Standard deviation of the Gaussian top-k: 'population' (divide by N, transformers) or 'sample'
   * (divide by N-1, llama.cpp's `gaussian_topk`), to compare against a GGUF runtime.
   */
  readonly sparsityStd: SparsityStd;
  readonly ffn: number;
}

export type SparsityStd = 'population' | 'sample';

/** What the forward pass of one (sub)model needs: config.json fields, plus the engine's own per-layer plans. */
export interface Gemma3nTextConfig extends Pick<
  TextConfig,
  | 'hidden_size'
  | 'num_attention_heads'
  | 'num_key_value_heads'
  | 'head_dim'
  | 'hidden_size_per_layer_input'
  | 'altup_num_inputs'
  | 'altup_correct_scale'
  | 'rms_norm_eps'
  | 'sliding_window'
  | 'final_logit_softcapping'
  | 'vocab_size'
  | 'vocab_size_per_layer_input'
  | 'pad_token_id'
> {
  /** Layers of the parent checkpoint (PLE table and projection are laid out for all of them). */
  readonly parentLayers: number;
  /** The submodel's layers, in order. */
  readonly layers: readonly LayerPlan[];
}

// Float32 constants exactly as transformers' float32 buffers hold them (§4).
const f32 = Math.fround;
/** Φ⁻¹(0.95) as torch evaluates it in float32 (TF.js has no erfinv). */
const GAUSSIAN_Z_95 = 1.6448533535003662;
const ALTUP_MAG_EPS = 1e-5;
const SQRT_2_OVER_PI = 0.7978845608028654;
/** Queries per row up to which attention is one program (decode); longer prefills use batched matmuls. */
const FUSED_ATTENTION_MAX_T = 8;

/** Φ⁻¹(s) in float32; only s = 0.95 occurs in published configs, others use a rational approximation. */
export function gaussianZ(s: number): number {
  if (Math.abs(s - 0.95) < 1e-12) return GAUSSIAN_Z_95;
  return f32(normalQuantile(s));
}

// ---------------------------------------------------------------------------------------------------------
// Small functions of the math.

/**
 * op(x, col) for a per-row statistic col = [..., 1]. TF.js's cpu backend broadcasts such a column through a
 * per-element index path (~100 ns per element, most of a forward's time there), so on cpu the column is first
 * expanded by an outer product with ones, which is exact (each entry is col·1). Other backends broadcast natively.
 */
export function byRow<T extends tf.Tensor>(
  op: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  x: T,
  col: tf.Tensor,
): T {
  if (tf.getBackend() !== 'cpu') return op(x, col) as T;
  const width = x.shape[x.shape.length - 1] ?? 1;
  return op(x, tf.reshape(tf.matMul(tf.reshape(col, [-1, 1]), tf.ones([1, width])), x.shape)) as T;
}

/** x / sqrt(mean(x², last) + eps) · w — divide (not rsqrt) and `w`, not `1 + w` (§3.1). */
export function rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D | null, eps: number): T {
  if (ownKernels()) return fusedRmsNorm(x, w, eps);
  const ms = tf.mean(tf.square(x), -1, true);
  const y = byRow(tf.div, x, tf.sqrt(tf.add(ms, eps)));
  return (w ? tf.mul(y, w) : y) as T;
}

/** Softmax over the last axis: exp(x − max) / Σ, the same ops as tf.softmax, with byRow's cpu broadcasting. */
function softmax<T extends tf.Tensor>(x: T): T {
  if (tf.getBackend() !== 'cpu') return tf.softmax(x);
  const e = tf.exp(byRow(tf.sub, x, tf.max(x, -1, true)));
  return byRow(tf.div, e, tf.sum(e, -1, true));
}

/** gelu_pytorch_tanh, written out (never erf-based). */
export function geluTanh<T extends tf.Tensor>(x: T): T {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), SQRT_2_OVER_PI);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as T;
}

/** x @ W for x [M, in] and W [in, out] (float32, or a LinearWeight: packed bf16 on webgpu). */
function linear(x: tf.Tensor2D, w: tf.Tensor2D | LinearWeight): tf.Tensor2D {
  return w instanceof tf.Tensor ? tf.matMul(x, w) : w.apply(x);
}

/** Scales each token so its RMS equals `target` (AltUp's magnitude matching, ε = 1e-5 on the mean square). */
function matchMagnitude(x: tf.Tensor, target: tf.Tensor): tf.Tensor {
  const mag = tf.sqrt(tf.maximum(tf.mean(tf.square(x), -1, true), ALTUP_MAG_EPS));
  return tf.div(tf.mul(x, target), mag);
}

// ---------------------------------------------------------------------------------------------------------
// RoPE (§3.6 step 3): inv_freq and angles rounded like torch's float32 path, tables built on the host for the
// exact positions of a batch (cheap: M·D/2 cosines), NeoX rotate-half.

export function ropeInvFreq(theta: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = f32(1 / f32(Math.pow(theta, f32((2 * i) / headDim))));
  return out;
}

/** cos/sin [B, T, heads, D] ([cos α_0..α_{D/2-1}, cos α_0..]), repeated over heads so products need no broadcast. */
export interface RopeTable {
  readonly cos: tf.Tensor4D;
  readonly sin: tf.Tensor4D;
}

/** Tables for one θ: for the query heads and for the K/V heads. */
export interface RopeTables {
  readonly q: RopeTable;
  readonly k: RopeTable;
}

export function ropeTables(
  positions: Int32Array,
  shape: BatchShape,
  theta: number,
  headDim: number,
  heads: { q: number; k: number },
): RopeTables {
  const { B, T } = shape;
  const inv = ropeInvFreq(theta, headDim);
  const half = headDim / 2;
  const one = (n: number): RopeTable => {
    const cos = new Float32Array(B * T * n * headDim);
    const sin = new Float32Array(B * T * n * headDim);
    for (let m = 0; m < B * T; m++) {
      const p = positions[m]!; // positions has B·T entries, inv has D/2
      for (let i = 0; i < half; i++) {
        const a = f32(p * inv[i]!);
        const c = Math.cos(a);
        const s = Math.sin(a);
        for (let h = 0; h < n; h++) {
          const o = (m * n + h) * headDim;
          cos[o + i] = c;
          cos[o + half + i] = c;
          sin[o + i] = s;
          sin[o + half + i] = s;
        }
      }
    }
    return { cos: tf.tensor4d(cos, [B, T, n, headDim]), sin: tf.tensor4d(sin, [B, T, n, headDim]) };
  };
  return { q: one(heads.q), k: one(heads.k) };
}

/**
 * rotate_half as a signed permutation matrix R [D, D]: x·R = [-x₂, x₁]. One matmul instead of split + neg +
 * concat (non-contiguous slices are slow on the cpu backend); exact, since each output is one ±x term.
 */
export function rotateHalfMatrix(headDim: number): tf.Tensor2D {
  const half = headDim / 2;
  const r = new Float32Array(headDim * headDim);
  for (let j = 0; j < half; j++) {
    r[(j + half) * headDim + j] = -1;
    r[j * headDim + j + half] = 1;
  }
  return tf.tensor2d(r, [headDim, headDim]);
}

/** x·cos + rotate_half(x)·sin (NeoX split halves); x is [B, T, heads, D]. */
function applyRope(x: tf.Tensor4D, r: RopeTable, rotateHalf: tf.Tensor2D): tf.Tensor4D {
  const D = x.shape[3];
  const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, D]), rotateHalf), x.shape);
  return tf.add(tf.mul(x, r.cos), tf.mul(rotated, r.sin));
}

// ---------------------------------------------------------------------------------------------------------
// Weights (resident tensors). Linear weights are [in, out].

export interface AltUpWeights {
  readonly routerNorm: tf.Tensor1D;
  /** modality_router transposed: [H, N]. */
  readonly router: tf.Tensor2D;
  /** prediction_coefs transposed: [N, N²]. */
  readonly predict: tf.Tensor2D;
  /** correction_coefs (clipped to ±coef_clip at load) transposed: [N, N]. */
  readonly correct: tf.Tensor2D;
  readonly correctOutputScale: tf.Tensor1D;
}

export interface LayerWeights {
  readonly q: LinearWeight;
  /** k, v, k_norm: absent on consumers (their own K/V weights are never used, §3.7). */
  readonly k: LinearWeight | null;
  readonly v: LinearWeight | null;
  readonly qNorm: tf.Tensor1D;
  readonly kNorm: tf.Tensor1D | null;
  readonly laurelLeft: LinearWeight;
  readonly oProj: LinearWeight;
  readonly laurelRight: LinearWeight;
  readonly postLaurelNorm: tf.Tensor1D;
  readonly inputNorm: tf.Tensor1D;
  readonly postAttnNorm: tf.Tensor1D;
  readonly preFfnNorm: tf.Tensor1D;
  readonly postFfnNorm: tf.Tensor1D;
  /** gate_proj / up_proj at this submodel's width I: [H, I]. */
  readonly gate: LinearWeight;
  readonly up: LinearWeight;
  /** down_proj transposed: [I, H]. */
  readonly down: LinearWeight;
  readonly altup: AltUpWeights;
  readonly pleGate: LinearWeight;
  readonly pleProj: LinearWeight;
  readonly postPleNorm: tf.Tensor1D;
}

export interface GlobalWeights {
  /** per_layer_model_projection transposed, all parent layers: [H, L·P]. */
  readonly pleModelProj: LinearWeight;
  readonly pleProjNorm: tf.Tensor1D;
  /** altup_projections 0..N-2 fused and transposed: [H, (N-1)·H]. */
  readonly altupIn: tf.Tensor2D;
  /** altup_unembed_projections transposed and stacked: [N-1, H, H]. */
  readonly altupOut: tf.Tensor3D;
  readonly finalNorm: tf.Tensor1D;
}

/** Host-side tables (never uploaded whole): embedding rows and PLE rows of the tokens in a batch. */
export interface HostTables {
  /** [n, H] rows of embed_tokens (unscaled). */
  embeddingRows(ids: Int32Array): Float32Array;
  /** [n, layers.length, P] rows of embed_tokens_per_layer for the given parent layers (ids ≥ Vp read row 0). */
  pleRows(ids: Int32Array, parentLayers: readonly number[]): Float32Array;
}

// ---------------------------------------------------------------------------------------------------------
// Modules.

/** A batch as the decoder sees it: B right-padded rows of T new tokens (M = B·T). */
export interface BatchShape {
  readonly B: number;
  readonly T: number;
}

/**
 * The AltUp streams [M, N, H] plus their active stream [M, H] as its own tensor: every module reads the
 * active stream, and carving it out of the middle axis would be a strided slice on every use.
 */
export type Streams = {
  readonly all: tf.Tensor3D;
  readonly active: tf.Tensor2D;
};

export class PerLayerEmbeddings {
  constructor(
    private readonly cfg: Gemma3nTextConfig,
    private readonly g: GlobalWeights,
  ) {}

  /**
   * ple [L', M, P] (§3.3): (RMSNorm(e·W_plmp · H^-½) + E_ple[id]·√P) · 2^-½, for the submodel's layers,
   * layer-major so each layer's slice is contiguous. The projection runs for all parent layers and the kept
   * ones are gathered, so an elastic view needs no copy of W_plmp.
   */
  forward(e: tf.Tensor2D, tokRows: tf.Tensor3D): tf.Tensor3D {
    const { cfg } = this;
    const M = e.shape[0];
    const kept = cfg.layers.map((l) => l.parentIndex);
    let proj = tf.reshape(tf.mul(linear(e, this.g.pleModelProj), f32(1 / Math.sqrt(cfg.hidden_size))), [
      M,
      cfg.parentLayers,
      cfg.hidden_size_per_layer_input,
    ]) as tf.Tensor3D;
    const identity = kept.length === cfg.parentLayers && kept.every((p, i) => p === i);
    if (!identity) proj = tf.gather(proj, kept, 1);
    proj = rmsNorm(proj, this.g.pleProjNorm, cfg.rms_norm_eps);
    const tok = tf.mul(tokRows, Math.sqrt(cfg.hidden_size_per_layer_input));
    return tf.transpose(tf.mul(tf.add(proj, tok), f32(1 / Math.SQRT2)), [1, 0, 2]) as tf.Tensor3D;
  }
}

export class AltUp {
  constructor(
    private readonly cfg: Gemma3nTextConfig,
    private readonly w: AltUpWeights,
  ) {}

  /** modalities(x) @ coefs: one program on webgpu. */
  private route(x: tf.Tensor2D, coefs: tf.Tensor2D): tf.Tensor2D {
    if (ownKernels()) return altupRoute(x, this.w.routerNorm, this.w.router, coefs, this.cfg.rms_norm_eps);
    return linear(this.modalities(x), coefs);
  }

  /** tanh(router(RMSNorm(x) / H)) → [M, N]. */
  private modalities(x: tf.Tensor2D): tf.Tensor2D {
    const routed = tf.div(
      rmsNorm(x, this.w.routerNorm, this.cfg.rms_norm_eps),
      this.cfg.hidden_size,
    ) as tf.Tensor2D;
    return tf.tanh(linear(routed, this.w.router));
  }

  /**
   * Pred_j = S_j + Σ_i c[N·j + i]·S_i with c = prediction_coefs(m(S_active)): one batched [N, N]·[N, H] per
   * token. The active prediction is the same product for row 0 only.
   */
  predict(s: Streams): Streams {
    const { altup_num_inputs: N } = this.cfg;
    const M = s.active.shape[0];
    const coefs = this.route(s.active, this.w.predict);
    if (ownKernels()) {
      return {
        all: altupPredict(s.all, coefs, false) as tf.Tensor3D,
        active: altupPredict(s.all, coefs, true) as tf.Tensor2D,
      };
    }
    const c = tf.reshape(coefs, [M, N, N]) as tf.Tensor3D;
    const all = tf.add(tf.matMul(c, s.all), s.all) as tf.Tensor3D;
    const c0 = tf.slice(c, [0, 0, 0], [M, 1, N]);
    const active = tf.add(tf.reshape(tf.matMul(c0, s.all), [M, -1]), s.active) as tf.Tensor2D;
    return { all, active };
  }

  /**
   * Corr_j = Pred_j + d_j · (act − Pred_active) with d = correction_coefs(m(act)) + 1. The products d_j·x are
   * a per-token outer product [N, 1]·[1, H] (exact), which avoids broadcasting a column.
   */
  correct(pred: Streams, act: tf.Tensor2D): Streams {
    const { altup_num_inputs: N } = this.cfg;
    const M = act.shape[0];
    const coefs = this.route(act, this.w.correct);
    if (ownKernels()) {
      return {
        all: altupCorrect(pred.all, pred.active, act, coefs, false) as tf.Tensor3D,
        active: altupCorrect(pred.all, pred.active, act, coefs, true) as tf.Tensor2D,
      };
    }
    const d = tf.reshape(tf.add(coefs, 1), [M, N, 1]) as tf.Tensor3D;
    const innovation = tf.reshape(tf.sub(act, pred.active), [M, 1, -1]) as tf.Tensor3D;
    const all = tf.add(pred.all, tf.matMul(d, innovation)) as tf.Tensor3D;
    const d0 = tf.slice(d, [0, 0, 0], [M, 1, 1]);
    const active = tf.add(pred.active, tf.reshape(tf.matMul(d0, innovation), [M, -1])) as tf.Tensor2D;
    return { all, active };
  }

  /** The active stream times `correct_output_scale`: feeds only the PLE gate (Corr itself stays unscaled). */
  scaledActive(corr: Streams): tf.Tensor2D {
    return this.cfg.altup_correct_scale ? tf.mul(corr.active, this.w.correctOutputScale) : corr.active;
  }
}

export class Laurel {
  constructor(
    private readonly cfg: Gemma3nTextConfig,
    private readonly w: LayerWeights,
  ) {}

  /** LAuReL returns its own residual: n + RMSNorm(linear_right(linear_left(n))). */
  forward(n: tf.Tensor2D): tf.Tensor2D {
    const r = linear(linear(n, this.w.laurelLeft), this.w.laurelRight);
    if (ownKernels()) return fusedNormAdd(r, this.w.postLaurelNorm, this.cfg.rms_norm_eps, n);
    return tf.add(n, rmsNorm(r, this.w.postLaurelNorm, this.cfg.rms_norm_eps));
  }
}

/**
 * Per-forward K/V store for always-share semantics: producers publish their full (cache + new) K/V, consumers
 * read them; consumers never compute K/V of their own. A fork reads through to its parent, so a paused forward
 * can be continued along several branches (a sweep's candidates) without copying the K/V of the shared layers.
 */
export class KvSharing {
  private readonly kv = new Map<number, LayerKv>();

  constructor(private readonly parent: KvSharing | null = null) {}

  /** The layer's own K/V (kept, owned here) after the prefix its rows share (owned by whoever holds it). */
  publish(layer: number, k: tf.Tensor4D, v: tf.Tensor4D, shared: SharedKv | null = null): void {
    this.kv.set(layer, { k: tf.keep(k), v: tf.keep(v), shared });
  }

  read(layer: number): LayerKv {
    const e = this.kv.get(layer) ?? this.parent?.find(layer);
    if (!e) throw new Error(`K/V of layer ${layer} read before it was computed`);
    return e;
  }

  private find(layer: number): LayerKv | undefined {
    return this.kv.get(layer) ?? this.parent?.find(layer);
  }

  /** A store for the next layers: reads fall back to this one, which must outlive it. */
  fork(): KvSharing {
    return new KvSharing(this);
  }

  /** Hands the K/V of `layer` over (the cache keeps it); it is no longer disposed here. */
  take(layer: number): LayerKv | undefined {
    const e = this.kv.get(layer);
    this.kv.delete(layer);
    return e;
  }

  /** Frees this store's own K/V (not its parent's). */
  dispose(): void {
    for (const { k, v } of this.kv.values()) tf.dispose([k, v]);
    this.kv.clear();
  }
}

/** A prefix's K/V [1, Kh, P, D] that every row of a batch attends to (batch stride 0: never tiled per row). */
export interface SharedKv {
  readonly k: tf.Tensor4D;
  readonly v: tf.Tensor4D;
}

/** K/V of one layer in a forward: the rows' own [B, Kh, S, D], after a shared prefix (or none). */
export interface LayerKv {
  readonly k: tf.Tensor4D;
  readonly v: tf.Tensor4D;
  readonly shared: SharedKv | null;
}

/** What a layer attends to besides its new tokens: the rows' own past K/V and/or a prefix they share. */
export interface PastEntry {
  readonly own: { k: tf.Tensor4D; v: tf.Tensor4D } | null;
  readonly shared: SharedKv | null;
}

/** Past K/V a forward attends to besides its own tokens: a KV cache, or a paused prefix forward (sweeps). */
export interface PastKv {
  past(layer: number): PastEntry | undefined;
}

/**
 * Key positions of a forward whose rows continue a shared prefix (the attention program builds its masks from
 * them), per layer kind (sliding layers may hold a trimmed prefix): packKeyPositions of the queries [B·T], the
 * prefix's columns and the rows' own columns [B, S] (past and new; PAD_KEY_POSITION for padding).
 */
export interface AttentionKeys {
  readonly positions: Readonly<Record<AttentionKind, tf.Tensor1D>>;
  readonly window: number;
}

/**
 * Whether shared-prefix attention of T queries per row runs as the engine's program here (then no masks are
 * built): on webgpu up to FUSED_ATTENTION_MAX_T queries (one workgroup per query reads every key, which beats
 * the batched matmuls only for a few queries: measured on lavapipe, 16 queries per row ran at ~0.6× them), on
 * the cpu backend always (its twin, the reference).
 */
export function sharedPrefixProgram(headDim: number, T: number): boolean {
  const be = tf.getBackend();
  return headDim % 4 === 0 && (be === 'cpu' || (be === 'webgpu' && T <= FUSED_ATTENTION_MAX_T));
}

export function disposeAttentionKeys(keys: AttentionKeys | null | undefined): void {
  if (keys) tf.dispose([keys.positions.full, keys.positions.sliding]);
}

/** What attention needs besides its input: rope tables, masks and the K/V of this forward. */
export interface AttentionContext {
  readonly shape: BatchShape;
  /** RoPE tables by θ. */
  readonly rope: ReadonlyMap<number, RopeTables>;
  readonly rotateHalf: tf.Tensor2D;
  /**
   * Additive masks [B, 1 or A, T, S] for full and sliding layers (S = keys visible to this forward); null when
   * the rows continue a shared prefix and the attention program builds them from `keys`.
   */
  readonly masks: Readonly<Record<AttentionKind, tf.Tensor4D>> | null;
  /** Key positions when the rows continue a shared prefix. */
  readonly keys: AttentionKeys | null;
  readonly kv: KvSharing;
  readonly cache: PastKv | null;
}

export class Attention {
  constructor(
    private readonly cfg: Gemma3nTextConfig,
    private readonly plan: LayerPlan,
    private readonly index: number,
    private readonly w: LayerWeights,
  ) {}

  /** n [M, H] → o_proj(attention) [M, H]. */
  forward(n: tf.Tensor2D, ctx: AttentionContext): tf.Tensor2D {
    const { cfg, plan, w } = this;
    const { B, T } = ctx.shape;
    const { num_attention_heads: A, num_key_value_heads: Kh, head_dim: D, rms_norm_eps: eps } = cfg;
    const rope = ctx.rope.get(plan.ropeTheta)!;
    const heads = (x: tf.Tensor2D, count: number) => tf.reshape(x, [B, T, count, D]) as tf.Tensor4D;

    // Queries always use this layer's own q_proj/q_norm and the token's true position (§6.2). Norm, RoPE
    // and the move of heads before tokens are one program on webgpu.
    const own = ownKernels();
    // One product each; in int8 mode q, k and v share one quantization of n.
    const producer = plan.kvRole !== 'consumer';
    const [qx, kx, vx] = LinearWeight.applyShared(n, producer ? [w.q, w.k!, w.v!] : [w.q]);
    const q = own
      ? fusedNormRope(heads(qx!, A), w.qNorm, eps, rope.q)
      : tf.transpose(applyRope(rmsNorm(heads(qx!, A), w.qNorm, eps), rope.q, ctx.rotateHalf), [0, 2, 1, 3]);

    let k: tf.Tensor4D;
    let v: tf.Tensor4D;
    let shared: SharedKv | null;
    if (!producer) {
      ({ k, v, shared } = ctx.kv.read(plan.kvSource!));
    } else {
      const kh = heads(kx!, Kh);
      const vh = heads(vx!, Kh);
      const kNew = own
        ? fusedNormRope(kh, w.kNorm, eps, rope.k)
        : tf.transpose(applyRope(rmsNorm(kh, w.kNorm, eps), rope.k, ctx.rotateHalf), [0, 2, 1, 3]);
      const vNew = own
        ? fusedNormRope(vh, null, eps, null)
        : tf.transpose(rmsNorm(vh, null, eps), [0, 2, 1, 3]);
      const past = ctx.cache?.past(this.index);
      k = past?.own ? tf.concat([past.own.k, kNew], 2) : kNew;
      v = past?.own ? tf.concat([past.own.v, vNew], 2) : vNew;
      shared = past?.shared ?? null;
      ctx.kv.publish(this.index, k, v, shared);
    }
    if (shared) return linear(this.sharedAttention(q, shared, k, v, ctx), w.oProj);

    const S = k.shape[2];
    const mask = ctx.masks?.[plan.kind];
    if (!mask) throw new Error('attention without a shared prefix needs masks');
    // Decode steps (a few new tokens): one program from scores to the token-major output.
    if (own && T <= FUSED_ATTENTION_MAX_T && D % 4 === 0 && mask.shape[0] === B && mask.shape[1] === 1)
      return linear(fusedAttention(q, k, v, mask), w.oProj);
    // GQA without repeating K/V: query head h = kv·G + g, so [B, A, T, D] → [B·Kh, G·T, D].
    const G = A / Kh;
    const qg = tf.reshape(q, [B * Kh, G * T, D]);
    const kg = tf.reshape(k, [B * Kh, S, D]);
    const vg = tf.reshape(v, [B * Kh, S, D]);
    // Scale 1.0 (q/k are normed; query_pre_attn_scalar is ignored), no logit soft-capping.
    const scores = tf.add(tf.reshape(tf.matMul(qg, kg, false, true), [B, A, T, S]), mask);
    const probs = tf.reshape(softmax(scores), [B * Kh, G * T, S]);
    const out = tf.transpose(tf.reshape(tf.matMul(probs, vg), [B, A, T, D]), [0, 2, 1, 3]);
    return linear(tf.reshape(out, [B * T, A * D]), w.oProj);
  }

  /**
   * Rows that continue a prefix they share: the program (webgpu, cpu twin) reads the prefix at batch stride 0;
   * elsewhere tf ops score the prefix once per KV head with the queries of every row as its rows (batch Kh,
   * B·G·T query rows: no batch-B copy of the prefix either), then one softmax over [prefix; own] columns.
   * q [B, A, T, D], own k/v [B, Kh, S, D] → [B·T, A·D].
   */
  private sharedAttention(
    q: tf.Tensor4D,
    shared: SharedKv,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    ctx: AttentionContext,
  ): tf.Tensor2D {
    const { B, T } = ctx.shape;
    const { num_attention_heads: A, num_key_value_heads: Kh, head_dim: D } = this.cfg;
    const kind = this.plan.kind;
    if (sharedPrefixProgram(D, T)) {
      if (!ctx.keys) throw new Error('shared-prefix attention needs key positions');
      const { positions, window } = ctx.keys;
      return sharedPrefixAttention(q, shared, { k, v }, positions[kind], kind === 'sliding' ? window : 0);
    }
    const mask = ctx.masks?.[kind];
    if (!mask) throw new Error('shared-prefix attention on this backend needs masks');
    const G = A / Kh;
    const P = shared.k.shape[2];
    const S = k.shape[2];
    const rows = G * T;
    // Scores against the prefix [Kh, B·G·T, P], moved to [B, Kh, G·T, P] (scores, not K/V, are per row).
    const qh = tf.reshape(tf.transpose(tf.reshape(q, [B, Kh, rows, D]), [1, 0, 2, 3]), [Kh, B * rows, D]);
    const kp = tf.reshape(shared.k, [Kh, P, D]);
    const vp = tf.reshape(shared.v, [Kh, P, D]);
    const sp = tf.transpose(tf.reshape(tf.matMul(qh, kp, false, true), [Kh, B, rows, P]), [1, 0, 2, 3]);
    const so = tf.reshape(
      tf.matMul(tf.reshape(q, [B * Kh, rows, D]), tf.reshape(k, [B * Kh, S, D]), false, true),
      [B, Kh, rows, S],
    );
    const scores = tf.add(tf.reshape(tf.concat([sp, so], 3), [B, A, T, P + S]), mask);
    const probs = tf.reshape(softmax(scores), [B, Kh, rows, P + S]);
    const pp = tf.reshape(tf.transpose(tf.slice(probs, [0, 0, 0, 0], [B, Kh, rows, P]), [1, 0, 2, 3]), [
      Kh,
      B * rows,
      P,
    ]);
    const op = tf.transpose(tf.reshape(tf.matMul(pp, vp), [Kh, B, rows, D]), [1, 0, 2, 3]);
    const po = tf.reshape(tf.slice(probs, [0, 0, 0, P], [B, Kh, rows, S]), [B * Kh, rows, S]);
    const oo = tf.reshape(tf.matMul(po, tf.reshape(v, [B * Kh, S, D])), [B, Kh, rows, D]);
    const out = tf.transpose(tf.reshape(tf.add(op, oo), [B, A, T, D]), [0, 2, 1, 3]);
    return tf.reshape(out, [B * T, A * D]);
  }
}

export class Mlp {
  private readonly z: number;

  constructor(
    private readonly plan: LayerPlan,
    private readonly w: LayerWeights,
  ) {
    this.z = plan.sparsity > 0 ? gaussianZ(plan.sparsity) : 0;
  }

  /** down(gelu(sparsify(gate·x)) ⊙ up·x); the width is whatever this (sub)model's weights hold. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    const z = this.plan.sparsity > 0 ? this.z : 0;
    if (ownKernels()) {
      // gate|up in one dispatch where the two share a packed buffer, then one GELU-gate program.
      const gateUp = LinearWeight.applyPair(x, this.w.gate, this.w.up);
      const h = gateUp
        ? fusedGeluGateOf(gateUp, z)
        : fusedGeluGate(linear(x, this.w.gate), linear(x, this.w.up), z);
      return linear(h, this.w.down);
    }
    let gate = linear(x, this.w.gate);
    if (this.plan.sparsity > 0) {
      // Gaussian top-k: shift by mean + z·std (population std over this width by default), then relu (§3.5).
      const mean = tf.mean(gate, -1, true);
      let variance = tf.mean(tf.square(byRow(tf.sub, gate, mean)), -1, true);
      if (this.plan.sparsityStd === 'sample') {
        const n = gate.shape[1];
        variance = tf.mul(variance, n / (n - 1));
      }
      const std = tf.sqrt(variance);
      gate = tf.relu(byRow(tf.sub, gate, tf.add(mean, tf.mul(std, this.z))));
    }
    return linear(tf.mul(geluTanh(gate), linear(x, this.w.up)), this.w.down);
  }
}

/** Slab `row` [M, P] of the per-layer inputs [L', M, P]. */
function pleSlab(ple: tf.Tensor3D, row: number): tf.Tensor2D {
  const [, M, P] = ple.shape;
  return tf.reshape(tf.slice(ple, [row, 0, 0], [1, M, P]), [M, P]) as tf.Tensor2D;
}

export class DecoderLayer {
  readonly altup: AltUp;
  readonly laurel: Laurel;
  readonly attention: Attention;
  readonly mlp: Mlp;

  constructor(
    private readonly cfg: Gemma3nTextConfig,
    readonly plan: LayerPlan,
    index: number,
    private readonly w: LayerWeights,
    /** [1, N, 1] = [0, 1, …, 1]: PLE goes to every stream but the first (hard-coded `[1:]` in transformers). */
    private readonly pleStreams: tf.Tensor3D,
  ) {
    this.altup = new AltUp(cfg, w.altup);
    this.laurel = new Laurel(cfg, w);
    this.attention = new Attention(cfg, plan, index, w);
    this.mlp = new Mlp(plan, w);
  }

  /** §3.5; this layer's per-layer input [M, P] is slab `pleRow` of `ple` [L', M, P]. */
  forward(streams: Streams, ple: tf.Tensor3D, pleRow: number, ctx: AttentionContext): Streams {
    const { cfg, w } = this;
    const pred = this.altup.predict(streams);
    const a = pred.active;
    const n = rmsNorm(a, w.inputNorm, cfg.rms_norm_eps);
    const lr = this.laurel.forward(n);
    const own = ownKernels();
    const attOut = this.attention.forward(n, ctx);
    // Norm and residual adds are one program each on webgpu: (a + norm(att)) + laurel over √2, h1 + norm(mlp).
    const h1 = own
      ? fusedNormAdd(attOut, w.postAttnNorm, cfg.rms_norm_eps, a, lr, Math.SQRT2)
      : (tf.div(
          tf.add(tf.add(a, rmsNorm(attOut, w.postAttnNorm, cfg.rms_norm_eps)), lr),
          Math.SQRT2,
        ) as tf.Tensor2D);
    const mlp = this.mlp.forward(rmsNorm(h1, w.preFfnNorm, cfg.rms_norm_eps));
    const act = own
      ? fusedNormAdd(mlp, w.postFfnNorm, cfg.rms_norm_eps, h1)
      : (tf.add(h1, rmsNorm(mlp, w.postFfnNorm, cfg.rms_norm_eps)) as tf.Tensor2D);
    const corr = this.altup.correct(pred, act);
    const gate = linear(this.altup.scaledActive(corr), w.pleGate);
    // On webgpu the gate program reads the slab in place (no slice dispatch per layer).
    const gated = ownKernels()
      ? fusedGeluGate(gate, ple, 0, pleRow)
      : (tf.mul(geluTanh(gate), pleSlab(ple, pleRow)) as tf.Tensor2D);
    const projected = linear(gated, w.pleProj);
    if (ownKernels())
      return {
        all: fusedStreamsAdd(corr.all, projected, w.postPleNorm, cfg.rms_norm_eps),
        active: corr.active,
      };
    const q = rmsNorm(projected, w.postPleNorm, cfg.rms_norm_eps);
    // [1, N, 1]·[M, 1, H] (batch-broadcast outer product): q on streams 1.., exact zeros on stream 0.
    const all = tf.add(
      corr.all,
      tf.matMul(this.pleStreams, tf.reshape(q, [q.shape[0], 1, -1])),
    ) as tf.Tensor3D;
    return { all, active: corr.active };
  }
}

/** Inputs of one forward, prepared on the host (ids padded with pad_token_id; positions per token). */
export interface DecoderInputs {
  readonly shape: BatchShape;
  /** [B·T] token ids, right-padded. */
  readonly ids: Int32Array;
  /** [B·T] RoPE positions (past length + t). */
  readonly positions: Int32Array;
  /** [B, 1, T, S] additive masks, built by the cache/engine from key positions (null: see AttentionKeys). */
  readonly masks: Readonly<Record<AttentionKind, tf.Tensor4D>> | null;
  /** Key positions when the rows continue a shared prefix (owned by the caller). */
  readonly keys?: AttentionKeys | null;
}

/**
 * The decoder: embeddings + PLE → AltUp streams → layers → collapse → final norm. Returns the normed hidden
 * states [M, H] (the LM head lives in head.ts so callers can ask for just the rows and columns they need).
 */
export class Gemma3nText {
  readonly layers: readonly DecoderLayer[];
  private readonly ple: PerLayerEmbeddings;
  private readonly pleStreams: tf.Tensor3D;
  private readonly rotateHalf: tf.Tensor2D;
  private readonly thetas: readonly number[];

  constructor(
    readonly cfg: Gemma3nTextConfig,
    private readonly g: GlobalWeights,
    layerWeights: readonly LayerWeights[],
    private readonly host: HostTables,
  ) {
    const N = cfg.altup_num_inputs;
    this.pleStreams = tf.tensor3d(
      Array.from({ length: N }, (_, j) => (j >= 1 ? 1 : 0)),
      [1, N, 1],
    );
    this.rotateHalf = rotateHalfMatrix(cfg.head_dim);
    this.ple = new PerLayerEmbeddings(cfg, g);
    if (layerWeights.length !== cfg.layers.length) {
      throw new Error(`${cfg.layers.length} layer plans but ${layerWeights.length} layers of weights`);
    }
    this.layers = cfg.layers.map((p, i) => new DecoderLayer(cfg, p, i, layerWeights[i]!, this.pleStreams));
    this.thetas = [...new Set(cfg.layers.map((l) => l.ropeTheta))];
  }

  /** Token embeddings · √H (float32 constant) and the per-layer token rows, gathered on the host. */
  private embed(ids: Int32Array): { e: tf.Tensor2D; tok: tf.Tensor3D } {
    const { cfg } = this;
    const M = ids.length;
    const e = tf.tidy(() =>
      tf.mul(
        tf.tensor2d(this.host.embeddingRows(ids), [M, cfg.hidden_size]),
        f32(Math.sqrt(cfg.hidden_size)),
      ),
    ) as tf.Tensor2D;
    const kept = cfg.layers.map((l) => l.parentIndex);
    const tok = tf.tensor3d(this.host.pleRows(ids, kept), [M, kept.length, cfg.hidden_size_per_layer_input]);
    return { e, tok };
  }

  /** S_0 = e, S_k = altup_projections[k-1](e) scaled to e's RMS (§3.4). */
  private initialStreams(e: tf.Tensor2D): Streams {
    const { hidden_size: H, altup_num_inputs: N } = this.cfg;
    const M = e.shape[0];
    const target = tf.sqrt(tf.mean(tf.square(e), -1, true));
    const u = tf.reshape(linear(e, this.g.altupIn), [M, N - 1, H]);
    const all = tf.concat([tf.reshape(e, [M, 1, H]), matchMagnitude(u, tf.reshape(target, [M, 1, 1]))], 1);
    return { all: all as tf.Tensor3D, active: tf.clone(e) };
  }

  /** Mean of S_0 and the unembedded, magnitude-matched S_1..S_{N-1}, then the final norm → [M, H] (§3.8). */
  private collapse(s: Streams): tf.Tensor2D {
    const { hidden_size: H, altup_num_inputs: N } = this.cfg;
    const M = s.active.shape[0];
    const target = tf.sqrt(tf.mean(tf.square(s.active), -1, true));
    const rest = tf.transpose(tf.slice(s.all, [0, 1, 0], [M, N - 1, H]), [1, 0, 2]);
    const unembedded = matchMagnitude(tf.matMul(rest, this.g.altupOut), tf.reshape(target, [1, M, 1]));
    let sum: tf.Tensor = s.active;
    for (const part of tf.unstack(unembedded, 0)) sum = tf.add(sum, part);
    return rmsNorm(tf.div(sum, N) as tf.Tensor2D, this.g.finalNorm, this.cfg.rms_norm_eps);
  }

  /**
   * One forward over a padded batch. With a cache, non-consumer layers append their new K/V to it (the caller
   * commits the new key positions); without one, K/V live for this forward only. Returns hidden [M, H] (kept).
   */
  forward(inp: DecoderInputs, cache: KvCache | null): tf.Tensor2D {
    const start = this.begin(inp);
    let end: ForwardState | null = null;
    try {
      end = this.advance(start, this.layers.length, cache);
      if (cache) cache.absorb(end.kv);
      return this.finish(end);
    } finally {
      if (end) disposeForwardState(end);
      disposeForwardState(start);
    }
  }

  /**
   * The part of a forward before the first layer: embeddings, per-layer inputs, RoPE tables, AltUp streams.
   * The state can be continued by any decoder of the same parent whose layers are among this one's (a sweep
   * begins on the parent and continues on its candidates).
   */
  begin(inp: DecoderInputs): ForwardState {
    const { cfg } = this;
    const { e, tok } = this.embed(inp.ids);
    const rope = new Map<number, RopeTables>();
    try {
      const heads = { q: cfg.num_attention_heads, k: cfg.num_key_value_heads };
      for (const theta of this.thetas)
        rope.set(theta, ropeTables(inp.positions, inp.shape, theta, cfg.head_dim, heads));
      const ple = tf.tidy(() => this.ple.forward(e, tok));
      const pleRow = new Map(cfg.layers.map((l, i) => [l.parentIndex, i]));
      const streams = tf.tidy(() => this.initialStreams(e));
      const root: ForwardRoot = {
        shape: inp.shape,
        masks: inp.masks,
        keys: inp.keys ?? null,
        rope,
        ple,
        pleRow,
      };
      return { root, done: 0, plans: [], streams, kv: new KvSharing(), owner: true };
    } catch (err) {
      for (const r of rope.values()) tf.dispose([r.q.cos, r.q.sin, r.k.cos, r.k.sin]);
      throw err;
    } finally {
      tf.dispose([e, tok]);
    }
  }

  /**
   * Runs layers [state.done, to) of this decoder on `state`, which is left intact (a branch point keeps it for
   * its other branches). The layers before must be exactly this decoder's: sharing them is then exact.
   */
  advance(state: ForwardState, to: number, past: PastKv | null): ForwardState {
    const { cfg } = this;
    const { root } = state;
    if (to < state.done || to > this.layers.length) throw new RangeError(`cannot advance to layer ${to}`);
    state.plans.forEach((p, i) => {
      if (!samePlan(p, cfg.layers[i]))
        throw new Error(`layer ${i} of this decoder differs from the paused forward's`);
    });
    const ctx: AttentionContext = {
      shape: root.shape,
      rope: root.rope,
      rotateHalf: this.rotateHalf,
      masks: root.masks,
      keys: root.keys,
      kv: state.kv.fork(),
      cache: past,
    };
    let streams = state.streams;
    try {
      for (let i = state.done; i < to; i++) {
        const layer = this.layers[i];
        if (!layer) throw new RangeError(`the decoder has no layer ${i} (it has ${this.layers.length})`);
        const row = root.pleRow.get(layer.plan.parentIndex);
        if (row === undefined || !root.rope.has(layer.plan.ropeTheta))
          throw new Error(`the paused forward has no inputs for parent layer ${layer.plan.parentIndex}`);
        const prev: Streams = streams;
        // One tidy per layer: everything but the new streams (and published K/V) is freed here.
        streams = tf.tidy(() => layer.forward(prev, root.ple, row, ctx));
        if (prev !== state.streams) tf.dispose([prev.all, prev.active]);
      }
    } catch (err) {
      if (streams !== state.streams) tf.dispose([streams.all, streams.active]);
      ctx.kv.dispose();
      throw err;
    }
    if (streams === state.streams) streams = { all: tf.clone(streams.all), active: tf.clone(streams.active) };
    const plans = [...state.plans, ...cfg.layers.slice(state.done, to)];
    return { root, done: to, plans, streams, kv: ctx.kv, owner: false };
  }

  /** Collapses the streams of a forward that ran every layer: hidden [M, H] (kept). */
  finish(state: ForwardState): tf.Tensor2D {
    if (state.done !== this.layers.length)
      throw new Error(`finish after ${state.done} of ${this.layers.length} layers`);
    return tf.tidy(() => this.collapse(state.streams));
  }

  dispose(): void {
    tf.dispose([this.pleStreams, this.rotateHalf]);
  }
}

/** What every state grown from one `begin` shares: owned by the first state (free it last). */
export interface ForwardRoot {
  readonly shape: BatchShape;
  /** The caller's masks and key positions (not owned). */
  readonly masks: Readonly<Record<AttentionKind, tf.Tensor4D>> | null;
  readonly keys: AttentionKeys | null;
  readonly rope: ReadonlyMap<number, RopeTables>;
  /** Per-layer inputs [L', M, P] of the beginning decoder's layers, row `pleRow.get(parentIndex)`. */
  readonly ple: tf.Tensor3D;
  readonly pleRow: ReadonlyMap<number, number>;
}

/** A forward paused after `done` layers (whose plans are `plans`): its streams and the K/V published so far. */
export interface ForwardState {
  readonly root: ForwardRoot;
  readonly done: number;
  readonly plans: readonly LayerPlan[];
  readonly streams: Streams;
  /** K/V of this state's own layers; reads fall through to the states it was advanced from. */
  readonly kv: KvSharing;
  /** True for `begin`'s state, which owns the root. */
  readonly owner: boolean;
}

/** Frees a state's streams and own K/V (and, for `begin`'s state, the root): after every state advanced from it. */
export function disposeForwardState(s: ForwardState): void {
  tf.dispose([s.streams.all, s.streams.active]);
  s.kv.dispose();
  if (s.owner) {
    s.root.ple.dispose();
    for (const r of s.root.rope.values()) tf.dispose([r.q.cos, r.q.sin, r.k.cos, r.k.sin]);
  }
}

/** Two layer plans compute the same function of the same inputs. */
export function samePlan(a: LayerPlan, b: LayerPlan | undefined): boolean {
  return (
    b !== undefined &&
    a.parentIndex === b.parentIndex &&
    a.kind === b.kind &&
    a.ropeTheta === b.ropeTheta &&
    a.kvSource === b.kvSource &&
    a.kvRole === b.kvRole &&
    a.sparsity === b.sparsity &&
    a.ffn === b.ffn
  );
}

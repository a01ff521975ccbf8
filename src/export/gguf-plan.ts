// A pure GGUF plan for a Gemma 3n checkpoint or any of its Mix-n-Match submodels: the metadata keys
// (`gemma3n.*` and `tokenizer.ggml.*` exactly as llama.cpp's converter writes them, plus provenance
// under `matformer_lab.*`) and, for every GGUF tensor, which parent tensors feed it and how. The
// submodel comes from the slicer's own plan (`planSlice`), so the parent is read directly and no
// intermediate checkpoint is written.
import {
  GGML_TYPE_BYTES,
  GgmlType,
  GgufKv,
  GgufType,
  UserInputError,
  gguf,
  normalQuantile,
} from '../formats';
import {
  MixNMatchSpec,
  ModelConfig,
  TensorFamily,
  detectTextPrefix,
  globalKeys,
  keptLayers,
  layerTensorName,
  parseConfig,
  rawTextConfig,
  withTextUpdates,
} from '../gemma3n';
import { PlannedTensor, SlicePlan, SourceTensor, planSlice } from '../slicing';
import { GGUF_GLOBAL_TENSORS, GGUF_LAYER_TENSORS, GgufFamily } from './gguf-tensors';
import { GgufVocab } from './vocab';

export type ExportDtype = 'bf16' | 'f16' | 'f32';

export const GGML_TYPE_OF: Record<ExportDtype, GgmlType> = {
  bf16: GgmlType.BF16,
  f16: GgmlType.F16,
  f32: GgmlType.F32,
};

/** `general.file_type` (llama_ftype): ALL_F32 0, MOSTLY_F16 1, MOSTLY_BF16 32. */
const FILE_TYPE: Record<ExportDtype, number> = { f32: 0, f16: 1, bf16: 32 };

/** ggml's quantization version the converter stamps on every file. */
const GGML_QUANT_VERSION = 2;

export class GgufPlanError extends UserInputError {
  override name = 'GgufPlanError';
}

export interface GgufTensorPlan {
  readonly name: string;
  /** ggml order (innermost first). */
  readonly dims: readonly number[];
  readonly type: GgmlType;
  /** The slicer's planned tensors (parent source + row/column selection), concatenated in order. */
  readonly sources: readonly PlannedTensor[];
  /** Zero rows appended after the sources (embedding tables padded to vocab_size; --pad-ffn gate/up). */
  readonly padRows: number;
  /** Zero columns appended to every row (--pad-ffn down projections). */
  readonly padCols: number;
  readonly bytes: number;
}

export interface GgufPlan {
  readonly kvs: readonly GgufKv[];
  readonly tensors: readonly GgufTensorPlan[];
  readonly slice: SlicePlan;
  /** The exported model's config. */
  readonly child: ModelConfig;
  readonly dtype: ExportDtype;
  /** Sum of tensor bytes (without alignment padding). */
  readonly bytes: number;
}

export interface Provenance {
  /** sha256 over the source's config.json and every shard header. */
  readonly sourceFingerprint: string;
  readonly source: string;
  readonly toolVersion: string;
  readonly preset?: string;
}

export interface GgufPlanOptions {
  readonly dtype: ExportDtype;
  readonly vocab: GgufVocab;
  readonly provenance: Provenance;
  /** `general.name`; the converter derives it from the folder name. */
  readonly name: string;
  /** Zero-pad every FFN to the widest (exact only without sparsity on the padded layers; checked by the caller). */
  readonly padFfn?: boolean;
}

/** gguf-py's `Metadata.id_to_title`: `gemma-3n-e4b` → `Gemma 3n E4B` (lowercase words title-cased). */
export function idToTitle(id: string): string {
  return id
    .trim()
    .replace(/-/g, ' ')
    .split(/\s+/)
    .map((w) =>
      w === w.toLowerCase() && !/^(v\d+(?:\.\d+)*|\d.*)$/.test(w)
        ? w.replace(/[a-z]+/g, (m) => m[0]!.toUpperCase() + m.slice(1))
        : w,
    )
    .join(' ');
}

/** gguf-py's `size_label`: total parameters in the file, e.g. "8.0M", "5.4B". */
export function sizeLabel(params: number): string {
  const [scaled, suffix] =
    params > 1e12
      ? [params * 1e-12, 'T']
      : params > 1e9
        ? [params * 1e-9, 'B']
        : params > 1e6
          ? [params * 1e-6, 'M']
          : [params * 1e-3, 'K'];
  const digits = String(Math.round(scaled)).replace(/^0+/, '').length;
  return `${scaled.toFixed(Math.max(2 - digits, 0))}${suffix}`;
}

/** The `gemma3n.*` keys, in the order and with the types llama.cpp's converter writes them. */
function architectureKeys(child: ModelConfig, dtype: ExportDtype): GgufKv[] {
  const c = child.text;
  const raw = rawTextConfig(child);
  const a = (k: string) => `gemma3n.${k}`;
  const uniform = typeof raw.intermediate_size === 'number';
  const ctx = typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : 131072;
  const kvs: GgufKv[] = [
    { key: a('block_count'), value: gguf.u32(c.num_hidden_layers) },
    { key: a('context_length'), value: gguf.u32(ctx) },
    { key: a('embedding_length'), value: gguf.u32(c.hidden_size) },
    {
      key: a('feed_forward_length'),
      value: uniform
        ? gguf.u32(c.intermediate_size[0]!)
        : gguf.array(GgufType.INT32, [...c.intermediate_size]),
    },
    { key: a('attention.head_count'), value: gguf.u32(c.num_attention_heads) },
    { key: a('attention.head_count_kv'), value: gguf.u32(c.num_key_value_heads) },
    { key: a('rope.freq_base'), value: gguf.f32(c.rope_theta) },
    { key: a('rope.freq_base_swa'), value: gguf.f32(c.rope_local_base_freq) },
    { key: a('attention.layer_norm_rms_epsilon'), value: gguf.f32(c.rms_norm_eps) },
    { key: a('attention.key_length'), value: gguf.u32(c.head_dim) },
    { key: a('attention.value_length'), value: gguf.u32(c.head_dim) },
    { key: 'general.file_type', value: gguf.u32(FILE_TYPE[dtype]) },
  ];
  if (c.final_logit_softcapping)
    kvs.push({ key: a('final_logit_softcapping'), value: gguf.f32(c.final_logit_softcapping) });
  kvs.push(
    { key: a('attention.sliding_window'), value: gguf.u32(c.sliding_window) },
    { key: a('altup.active_idx'), value: gguf.u32(c.altup_active_idx) },
    { key: a('altup.num_inputs'), value: gguf.u32(c.altup_num_inputs) },
    { key: a('embedding_length_per_layer_input'), value: gguf.u32(c.hidden_size_per_layer_input) },
    { key: a('attention.shared_kv_layers'), value: gguf.u32(c.num_kv_shared_layers) },
    {
      // Φ⁻¹(s) in float32, as torch's Normal.icdf gives it: -inf where s = 0 (no sparsity).
      key: a('activation_sparsity_scale'),
      value: gguf.array(
        GgufType.FLOAT32,
        c.activation_sparsity_pattern.map((s) => (s === 0 ? -Infinity : Math.fround(normalQuantile(s)))),
      ),
    },
    {
      key: a('attention.sliding_window_pattern'),
      value: gguf.array(
        GgufType.BOOL,
        c.layer_types.map((t) => t === 'sliding_attention'),
      ),
    },
  );
  return kvs;
}

const SPECIAL_KEYS: Record<string, string> = {
  bos: 'tokenizer.ggml.bos_token_id',
  eos: 'tokenizer.ggml.eos_token_id',
  unk: 'tokenizer.ggml.unknown_token_id',
  sep: 'tokenizer.ggml.seperator_token_id',
  pad: 'tokenizer.ggml.padding_token_id',
  mask: 'tokenizer.ggml.mask_token_id',
};
const ADD_KEYS: Record<string, string> = {
  bos: 'tokenizer.ggml.add_bos_token',
  eos: 'tokenizer.ggml.add_eos_token',
  sep: 'tokenizer.ggml.add_sep_token',
};

/** `tokenizer.ggml.*` as `_set_vocab_sentencepiece` + SpecialVocab + `add_space_prefix(False)` write them. */
export function tokenizerKeys(v: GgufVocab): GgufKv[] {
  const kvs: GgufKv[] = [
    { key: 'tokenizer.ggml.model', value: gguf.str('llama') },
    { key: 'tokenizer.ggml.pre', value: gguf.str('default') },
    { key: 'tokenizer.ggml.tokens', value: gguf.array(GgufType.STRING, v.tokens) },
    { key: 'tokenizer.ggml.scores', value: gguf.array(GgufType.FLOAT32, v.scores) },
    { key: 'tokenizer.ggml.token_type', value: gguf.array(GgufType.INT32, v.types) },
  ];
  for (const [kind, id] of v.special) {
    const key = SPECIAL_KEYS[kind];
    if (key) kvs.push({ key, value: gguf.u32(id) });
  }
  for (const [kind, flag] of v.addSpecial) {
    const key = ADD_KEYS[kind];
    if (key) kvs.push({ key, value: gguf.bool(flag) });
  }
  if (v.chatTemplate !== null) kvs.push({ key: 'tokenizer.chat_template', value: gguf.str(v.chatTemplate) });
  kvs.push({ key: 'tokenizer.ggml.add_space_prefix', value: gguf.bool(false) });
  return kvs;
}

/** Plans the GGUF of `spec` cut from `parent` (whose tensors are `tensors`, in read order). */
export function planGgufExport(
  parent: ModelConfig,
  tensors: readonly SourceTensor[],
  spec: MixNMatchSpec,
  opts: GgufPlanOptions,
): GgufPlan {
  const slice = planSlice(parent, tensors, spec, { maxShardBytes: Number.MAX_SAFE_INTEGER });
  const sliced = parseConfig(slice.config, 'exported config');
  const W = Math.max(...sliced.text.intermediate_size);
  const child = opts.padFfn
    ? parseConfig(
        withTextUpdates(sliced, { intermediate_size: sliced.text.intermediate_size.map(() => W) }),
        'padded config',
      )
    : sliced;
  const c = child.text;
  const prefix = detectTextPrefix(slice.tensors.map((t) => t.name));
  const byName = new Map(slice.tensors.map((t) => [t.name, t]));
  const wanted = GGML_TYPE_OF[opts.dtype];

  if (opts.vocab.tokens.length !== c.vocab_size) {
    throw new GgufPlanError(
      `${opts.vocab.source}: vocabulary has ${opts.vocab.tokens.length} tokens, expected vocab_size ${c.vocab_size}`,
    );
  }

  const out: (GgufTensorPlan & { order: string })[] = [];
  const add = (f: GgufFamily<TensorFamily>, ggufName: string, hfNames: string[], layer?: number) => {
    const row = f.gguf;
    const sources = hfNames.map((n) => {
      const t = byName.get(n);
      if (!t) {
        throw new GgufPlanError(
          `${n}: missing in the source, but llama.cpp needs ${ggufName}` +
            (/self_attn\.[kv]_(proj|norm)/.test(n)
              ? ' (it loads K/V weights of KV-shared layers too; checkpoints re-saved by transformers 5 lack them)'
              : ''),
        );
      }
      if (!['BF16', 'F16', 'F32'].includes(t.dtype))
        throw new GgufPlanError(`${n}: dtype ${t.dtype}; expected BF16, F16 or F32`);
      return t;
    });
    const first = sources[0]!;
    const type = row.f32 ? GgmlType.F32 : wanted;
    let shape = [...first.shape];
    let padRows = 0;
    let padCols = 0;
    const ffnPad = layer === undefined ? 0 : W - sliced.text.intermediate_size[layer]!;
    if (opts.padFfn && ffnPad > 0 && f.slice === 'ffn_rows') {
      padRows = ffnPad;
      shape[0] = W;
    } else if (opts.padFfn && ffnPad > 0 && f.slice === 'ffn_cols') {
      padCols = ffnPad;
      shape[1] = W;
    }
    if (row.transform === 'stack') {
      for (const s of sources) {
        if (s.shape.join() !== first.shape.join())
          throw new GgufPlanError(`${s.name}: shape differs from ${first.name}`);
      }
      shape = [sources.length, ...shape];
    } else if (row.transform === 'pad_vocab') {
      if (shape[0]! > c.vocab_size)
        throw new GgufPlanError(`${first.name}: ${shape[0]} rows, more than vocab_size ${c.vocab_size}`);
      padRows = c.vocab_size - shape[0]!;
      shape[0] = c.vocab_size;
    }
    const dims = [...shape].reverse();
    out.push({
      name: ggufName,
      dims,
      type,
      sources,
      padRows,
      padCols,
      bytes: dims.reduce((x, d) => x * d, 1) * GGML_TYPE_BYTES[type],
      // The converter emits tensors in the (string) order of their source names.
      order: first.name,
    });
  };

  for (const f of GGUF_GLOBAL_TENSORS) {
    add(
      f,
      f.gguf.name,
      globalKeys(f, c).map((k) => prefix + k),
    );
  }
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const f of GGUF_LAYER_TENSORS)
      add(f, `blk.${l}.${f.gguf.name}`, [layerTensorName(l, f.key, prefix)], l);
  }
  out.sort((x, y) => (x.order < y.order ? -1 : x.order > y.order ? 1 : 0));
  const planned = out.map(({ order: _order, ...t }) => t);

  const kept = keptLayers(parent.text.num_hidden_layers, spec);
  const provenance: GgufKv[] = [
    { key: 'matformer_lab.version', value: gguf.str(opts.provenance.toolVersion) },
    { key: 'matformer_lab.source', value: gguf.str(opts.provenance.source) },
    { key: 'matformer_lab.source_fingerprint', value: gguf.str(opts.provenance.sourceFingerprint) },
    { key: 'matformer_lab.spec', value: gguf.str(JSON.stringify({ skip: spec.skip, ffn: spec.ffn })) },
    { key: 'matformer_lab.parent_layers', value: gguf.array(GgufType.UINT32, kept) },
    { key: 'matformer_lab.params.effective', value: gguf.u64(slice.params.child.effective) },
    { key: 'matformer_lab.params.text_total', value: gguf.u64(slice.params.child.textTotal) },
    { key: 'matformer_lab.params.parent_effective', value: gguf.u64(slice.params.parent.effective) },
  ];
  if (opts.provenance.preset)
    provenance.push({ key: 'matformer_lab.preset', value: gguf.str(opts.provenance.preset) });
  const kvs: GgufKv[] = [
    { key: 'general.architecture', value: gguf.str('gemma3n') },
    { key: 'general.type', value: gguf.str('model') },
    { key: 'general.name', value: gguf.str(opts.name) },
    {
      key: 'general.size_label',
      value: gguf.str(sizeLabel(planned.reduce((x, t) => x + t.dims.reduce((a, d) => a * d, 1), 0))),
    },
    ...architectureKeys(child, opts.dtype),
    { key: 'general.quantization_version', value: gguf.u32(GGML_QUANT_VERSION) },
    ...tokenizerKeys(opts.vocab),
    ...provenance,
  ];
  return {
    kvs,
    tensors: planned,
    slice,
    child,
    dtype: opts.dtype,
    bytes: planned.reduce((x, t) => x + t.bytes, 0),
  };
}

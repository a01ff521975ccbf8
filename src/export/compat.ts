// Which runtimes can run a Gemma 3n submodel, from its config and spec alone: a compatibility matrix
// with, for every target that cannot, the constraint that breaks. The facts come from each runtime's
// source (see the README's "Compatibility matrix"); llama.cpp's loader hard-codes most of Gemma 3n's
// shape, so a sliced model runs there only if it keeps that shape.
import { LayerType, ModelConfig, parseConfig, MixNMatchSpec, keptLayers, detectTextPrefix } from '../gemma3n';
import { planSlice } from '../slicing';

export type Target =
  'transformers-4.53' | 'transformers-5' | 'mlx-lm' | 'mlx-vlm' | 'llama.cpp' | 'ollama' | 'vllm' | 'sglang';

export const TARGETS: readonly Target[] = [
  'transformers-4.53',
  'transformers-5',
  'mlx-lm',
  'mlx-vlm',
  'llama.cpp',
  'ollama',
  'vllm',
  'sglang',
];

export interface CompatRow {
  readonly target: Target;
  readonly runs: boolean;
  /** Broken constraints, each one line. */
  readonly reasons: readonly string[];
}

/** What llama.cpp's gemma3n loader hard-codes (src/models/gemma3n.cpp, models.h). */
export const LLAMA_CPP_FIXED = {
  altupNumInputs: 4,
  laurelRank: 64,
  perLayerInputWidth: 256,
  /** Layers that compute their own K/V (`n_layer_kv_from_start`). */
  kvFromStart: 20,
  /** Layers with activation sparsity (`n_layer_sparsity`), each at 0.95. */
  sparsityLayers: 10,
  sparsity: 0.95,
  /** 4 sliding layers then 1 full (`swa_period`). */
  swaPeriod: 5,
  softcap: 30,
} as const;

export interface SubmodelFacts {
  readonly parent: ModelConfig;
  readonly spec: MixNMatchSpec;
  /** The submodel's config (the slicer's output). */
  readonly child: ModelConfig;
  /** Kept parent layer indices. */
  readonly kept: readonly number[];
}

/** The submodel's config as the slicer writes it (without touching tensors). */
export function submodelFacts(parent: ModelConfig, spec: MixNMatchSpec): SubmodelFacts {
  // The slicer's plan over no tensors is just its config update: one submodel function for both.
  const child = parseConfig(planSlice(parent, [], spec).config, 'submodel config');
  return { parent, spec, child, kept: keptLayers(parent.text.num_hidden_layers, spec) };
}

function uniformWidth(widths: readonly number[]): boolean {
  return widths.every((w) => w === widths[0]);
}

function describeWidths(widths: readonly number[]): string {
  const distinct = [...new Set(widths)];
  return distinct.length > 4 ? `${distinct.length} different widths` : `widths ${distinct.join(', ')}`;
}

/** llama.cpp's constraints; `ignoreWidth` when --pad-ffn will make the widths uniform. */
export function llamaCppReasons(f: SubmodelFacts, ignoreWidth = false): string[] {
  const c = f.child.text;
  const L = c.num_hidden_layers;
  const F = LLAMA_CPP_FIXED;
  const out: string[] = [];
  if (c.altup_num_inputs !== F.altupNumInputs)
    out.push(`altup_num_inputs is ${c.altup_num_inputs}; llama.cpp needs ${F.altupNumInputs}`);
  if (c.altup_active_idx !== 0)
    out.push(`altup_active_idx is ${c.altup_active_idx}; llama.cpp uses stream 0`);
  if (c.laurel_rank !== F.laurelRank)
    out.push(`laurel_rank is ${c.laurel_rank}; llama.cpp needs ${F.laurelRank}`);
  if (c.hidden_size_per_layer_input !== F.perLayerInputWidth)
    out.push(
      `hidden_size_per_layer_input is ${c.hidden_size_per_layer_input}; llama.cpp needs ${F.perLayerInputWidth}`,
    );
  if (!ignoreWidth && !uniformWidth(c.intermediate_size))
    out.push(
      `FFN ${describeWidths(c.intermediate_size)}; llama.cpp builds every layer with layer 0's width (one uniform width needed)`,
    );
  const early = f.spec.skip.filter((s) => s < F.kvFromStart);
  if (early.length > 0)
    out.push(
      `skips layer ${early[0]}; llama.cpp hard-codes ${F.kvFromStart} KV-producing layers, so layers 0-${F.kvFromStart - 1} must all be kept`,
    );
  const firstShared = L - c.num_kv_shared_layers;
  if (early.length === 0 && firstShared !== Math.min(L, F.kvFromStart))
    out.push(`the first KV-shared layer is ${firstShared}; llama.cpp hard-codes layer ${F.kvFromStart}`);
  const expected = (i: number): LayerType =>
    (i + 1) % F.swaPeriod === 0 ? 'full_attention' : 'sliding_attention';
  const badType = c.layer_types.findIndex((t, i) => t !== expected(i));
  if (badType >= 0) {
    const late = f.spec.skip.filter((s) => s >= F.kvFromStart);
    out.push(
      late.length > 0 && early.length === 0
        ? `skips ${late.join(',')}: the kept layers must keep llama.cpp's fixed ${F.swaPeriod - 1} sliding : 1 full pattern (skip whole ${F.swaPeriod}-layer runs such as 20-24)`
        : `layer ${badType} is ${c.layer_types[badType]}; llama.cpp hard-codes ${F.swaPeriod - 1} sliding then 1 full layer`,
    );
  }
  const badSparsity = c.activation_sparsity_pattern.findIndex(
    (s, i) => s !== (i < F.sparsityLayers ? F.sparsity : 0),
  );
  if (badSparsity >= 0 && early.length === 0)
    out.push(
      `layer ${badSparsity} has activation sparsity ${c.activation_sparsity_pattern[badSparsity]}; llama.cpp applies ${F.sparsity} on layers 0-${F.sparsityLayers - 1} exactly and none elsewhere`,
    );
  if (c.final_logit_softcapping !== F.softcap)
    out.push(`final_logit_softcapping is ${c.final_logit_softcapping}; llama.cpp uses ${F.softcap}`);
  return out;
}

/** vLLM and SGLang take the KV producers by position: the two layers before the first shared one. */
function positionalProducerReasons(f: SubmodelFacts): string[] {
  const c = f.child.text;
  const F = c.num_hidden_layers - c.num_kv_shared_layers;
  if (c.num_kv_shared_layers === 0) return [];
  if (F < 2)
    return [
      `only ${F} layer(s) before the first KV-shared layer; producers are taken at positions F-2 and F-1`,
    ];
  const types = [c.layer_types[F - 2], c.layer_types[F - 1]];
  if (types[0] !== 'sliding_attention' || types[1] !== 'full_attention')
    return [
      `layers ${F - 2} and ${F - 1} are [${types.join(', ')}]; producers are taken by position and must be [sliding, full]`,
    ];
  return [];
}

export interface MatrixOptions {
  /** Names of the source's tensors, when a checkpoint is at hand (K/V presence). */
  readonly tensorNames?: ReadonlySet<string>;
  readonly padFfn?: boolean;
}

export function compatibilityMatrix(f: SubmodelFacts, opts: MatrixOptions = {}): CompatRow[] {
  const c = f.child.text;
  const uniform = uniformWidth(c.intermediate_size);
  const kvMissing: string[] = [];
  if (opts.tensorNames) {
    const names = opts.tensorNames;
    const prefix = detectTextPrefix(names);
    const missing = f.parent.layers.filter(
      (l) => l.kv === 'consumer' && !names.has(`${prefix}layers.${l.index}.self_attn.k_proj.weight`),
    );
    if (missing.length > 0)
      kvMissing.push(
        `the source lacks K/V weights of KV-shared layer ${missing[0]!.index} (re-saved by transformers 5?); this runtime loads them`,
      );
  }
  const llama = [...llamaCppReasons(f, opts.padFfn), ...kvMissing];
  const rows: [Target, string[]][] = [
    ['transformers-4.53', kvMissing],
    ['transformers-5', []],
    ['mlx-lm', []],
    [
      'mlx-vlm',
      uniform
        ? []
        : [`FFN ${describeWidths(c.intermediate_size)}; mlx-vlm builds every MLP with intermediate_size[0]`],
    ],
    ['llama.cpp', llama],
    ['ollama', llama],
    ['vllm', positionalProducerReasons(f)],
    ['sglang', positionalProducerReasons(f)],
  ];
  return rows.map(([target, reasons]) => ({ target, runs: reasons.length === 0, reasons }));
}

/** Whether --pad-ffn is exact: every layer narrower than the widest has no activation sparsity. */
export function padFfnProblem(f: SubmodelFacts): string | null {
  const c = f.child.text;
  const W = Math.max(...c.intermediate_size);
  const bad = c.intermediate_size.findIndex((w, i) => w < W && c.activation_sparsity_pattern[i]! > 0);
  if (bad < 0) return null;
  return `--pad-ffn: layer ${bad} (parent layer ${f.kept[bad]}) is narrower than ${W} and has activation sparsity ${c.activation_sparsity_pattern[bad]}; zero-padding changes its top-k statistics, so padding is exact only for layers without sparsity`;
}

export function formatMatrix(rows: readonly CompatRow[]): string {
  const w = Math.max(...rows.map((r) => r.target.length));
  return rows
    .map(
      (r) =>
        `  ${r.target.padEnd(w)}  ${r.runs ? 'yes' : 'no '}${r.reasons.length ? `  ${r.reasons.join('; ')}` : ''}`,
    )
    .join('\n');
}

export function matrixJson(rows: readonly CompatRow[]): Record<string, { runs: boolean; reasons: string[] }> {
  return Object.fromEntries(rows.map((r) => [r.target, { runs: r.runs, reasons: [...r.reasons] }]));
}

// A pure slice plan: from the parent's config, its tensor list and a spec, what every output tensor is
// made of, which shard it lands in, and the new config. No I/O here, so plans are cheap to test and print.
import { DType, dtypeBytes } from '../model/dtype';
import { ModelConfig, parseConfig, withTextUpdates } from '../model/config';
import { ParamBreakdown, textParams, withTowers } from '../model/accounting';
import { UserInputError } from '../model/errors';
import { MixNMatchSpec, keptLayers } from '../model/spec';
import { detectTextPrefix } from '../model/tensors';
import { NON_TEXT_PREFIXES } from '../model/inspect';
import { numel } from '../model/safetensors';
import { validateSpec } from './spec';

/** The parent tensor does not have the shape its config implies. */
export class SlicePlanError extends UserInputError {
  override name = 'SlicePlanError';
}

export interface SourceTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** Half-open element ranges [start, end) along one axis. */
export type Ranges = readonly (readonly [number, number])[];

/**
 * How an output tensor is made from its source:
 * - copy: every byte unchanged;
 * - rows: the listed row ranges, concatenated (FFN gate/up prefix; PLE projection's kept layers);
 * - cols: in every row, the listed column ranges, concatenated (down_proj prefix; PLE table's kept layers).
 */
export type SliceOp =
  | { readonly kind: 'copy' }
  | { readonly kind: 'rows'; readonly ranges: Ranges }
  | { readonly kind: 'cols'; readonly ranges: Ranges };

export interface PlannedTensor {
  /** Output name (differs from `source` when the layer is renumbered). */
  readonly name: string;
  readonly source: string;
  readonly dtype: DType;
  readonly sourceShape: readonly number[];
  readonly shape: readonly number[];
  readonly op: SliceOp;
  readonly bytes: number;
  /** Index into `SlicePlan.shards`. */
  readonly shard: number;
}

export interface PlannedShard {
  readonly file: string;
  /** Indices into `SlicePlan.tensors`, in write order. */
  readonly tensors: readonly number[];
  readonly bytes: number;
}

export interface LayerRow {
  /** Parent index. */
  readonly parent: number;
  /** New index, or null when skipped. */
  readonly index: number | null;
  readonly type: string;
  readonly kv: string;
  readonly parentWidth: number;
  readonly width: number | null;
  readonly sparsity: number;
}

export interface SlicePlan {
  readonly spec: MixNMatchSpec;
  readonly kept: readonly number[];
  readonly layers: readonly LayerRow[];
  readonly tensors: readonly PlannedTensor[];
  readonly dropped: readonly { readonly name: string; readonly reason: string }[];
  readonly shards: readonly PlannedShard[];
  /** The complete new config.json (unknown keys kept). */
  readonly config: Record<string, unknown>;
  /** The text_config fields that changed. */
  readonly textUpdates: Record<string, unknown>;
  readonly params: { readonly parent: ParamBreakdown; readonly child: ParamBreakdown };
  readonly sourceBytes: number;
  readonly outputBytes: number;
  /** Vision and audio towers left out (`--text-only`). */
  readonly textOnly: boolean;
}

export interface PlanOptions {
  /** Largest shard in bytes (a single bigger tensor still gets its own shard). Default 5 GB. */
  readonly maxShardBytes?: number;
  /** Leave out the vision and audio towers and their embedders. */
  readonly textOnly?: boolean;
}

export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const FFN_ROWS = new Set(['mlp.gate_proj.weight', 'mlp.up_proj.weight']);
const FFN_COLS = 'mlp.down_proj.weight';

/** Merges sorted, touching ranges so each becomes one read or one copy. */
function merge(ranges: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last[1] === r[0]) last[1] = r[1];
    else out.push([r[0], r[1]]);
  }
  return out;
}

function expectShape(t: SourceTensor, want: readonly number[], why: string): void {
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
    throw new SlicePlanError(
      `${t.name}: shape [${t.shape.join(', ')}] does not match the config (${why}: expected [${want.join(', ')}])`,
    );
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Plans a Mix-n-Match slice. `tensors` are the parent's tensors in the order they should be read
 * (shard by shard, by offset); output keeps that order so the executor reads sequentially.
 */
export function planSlice(
  parent: ModelConfig,
  tensors: readonly SourceTensor[],
  spec: MixNMatchSpec,
  options: PlanOptions = {},
): SlicePlan {
  // Callers usually validated already (with their flag names); this guards direct API use.
  validateSpec(parent, spec);
  const c = parent.text;
  const L = c.numHiddenLayers;
  const P = c.hiddenSizePerLayerInput;
  const kept = keptLayers(L, spec);
  const newIndex = new Map(kept.map((l, i) => [l, i]));
  const prefix = detectTextPrefix(tensors.map((t) => t.name));
  const layerRe = new RegExp(`^${escapeRe(prefix)}layers\\.(\\d+)\\.(.+)$`);
  const pleTable = `${prefix}embed_tokens_per_layer.weight`;
  const pleProjection = `${prefix}per_layer_model_projection.weight`;
  const keptPleRanges = merge(kept.map((l) => [l * P, (l + 1) * P]));
  const skipsAny = kept.length < L;

  const planned: Omit<PlannedTensor, 'shard'>[] = [];
  const dropped: { name: string; reason: string }[] = [];
  const add = (t: SourceTensor, name: string, op: SliceOp, shape: number[]) =>
    planned.push({
      name,
      source: t.name,
      dtype: t.dtype,
      sourceShape: t.shape,
      shape,
      op,
      bytes: numel(shape) * dtypeBytes(t.dtype),
    });

  for (const t of tensors) {
    if (options.textOnly && NON_TEXT_PREFIXES.some((p) => t.name.startsWith(p))) {
      dropped.push({ name: t.name, reason: 'text only' });
      continue;
    }
    const m = layerRe.exec(t.name);
    if (m) {
      const l = Number(m[1]);
      const suffix = m[2];
      if (l >= L) throw new SlicePlanError(`${t.name}: layer ${l} is beyond the config's ${L} layers`);
      const n = newIndex.get(l);
      if (n === undefined) {
        dropped.push({ name: t.name, reason: `layer ${l} skipped` });
        continue;
      }
      const name = `${prefix}layers.${n}.${suffix}`;
      const from = c.intermediateSize[l];
      const to = spec.ffn[n];
      if (FFN_ROWS.has(suffix)) {
        expectShape(t, [from, c.hiddenSize], `layer ${l} intermediate_size ${from}`);
        if (to === from) add(t, name, { kind: 'copy' }, [...t.shape]);
        else add(t, name, { kind: 'rows', ranges: [[0, to]] }, [to, t.shape[1]]);
      } else if (suffix === FFN_COLS) {
        expectShape(t, [c.hiddenSize, from], `layer ${l} intermediate_size ${from}`);
        if (to === from) add(t, name, { kind: 'copy' }, [...t.shape]);
        else add(t, name, { kind: 'cols', ranges: [[0, to]] }, [t.shape[0], to]);
      } else {
        add(t, name, { kind: 'copy' }, [...t.shape]);
      }
    } else if (t.name === pleTable) {
      // Layer-major columns: layer l owns columns [l·P, (l+1)·P).
      expectShape(t, [c.vocabSizePerLayerInput, L * P], 'vocab_size_per_layer_input × layers·P');
      if (skipsAny) add(t, t.name, { kind: 'cols', ranges: keptPleRanges }, [t.shape[0], kept.length * P]);
      else add(t, t.name, { kind: 'copy' }, [...t.shape]);
    } else if (t.name === pleProjection) {
      // Layer-major rows: layer l owns rows [l·P, (l+1)·P).
      expectShape(t, [L * P, c.hiddenSize], 'layers·P × hidden_size');
      if (skipsAny) add(t, t.name, { kind: 'rows', ranges: keptPleRanges }, [kept.length * P, t.shape[1]]);
      else add(t, t.name, { kind: 'copy' }, [...t.shape]);
    } else {
      add(t, t.name, { kind: 'copy' }, [...t.shape]);
    }
  }

  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0))
    throw new SlicePlanError(`--max-shard-size: must be positive, got ${maxShardBytes}`);
  const groups: number[][] = [];
  let size = 0;
  planned.forEach((t, i) => {
    if (groups.length === 0 || (size + t.bytes > maxShardBytes && groups[groups.length - 1].length > 0)) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(i);
    size += t.bytes;
  });
  const pad = (n: number) => String(n).padStart(5, '0');
  const shards: PlannedShard[] = groups.map((g, k) => ({
    file: `model-${pad(k + 1)}-of-${pad(groups.length)}.safetensors`,
    tensors: g,
    bytes: g.reduce((a, i) => a + planned[i].bytes, 0),
  }));
  const shardOf = new Map<number, number>();
  groups.forEach((g, k) => g.forEach((i) => shardOf.set(i, k)));
  const outTensors: PlannedTensor[] = planned.map((t, i) => ({ ...t, shard: shardOf.get(i)! }));

  const skipped = new Set(spec.skip);
  const textUpdates: Record<string, unknown> = {
    num_hidden_layers: kept.length,
    intermediate_size: [...spec.ffn],
    layer_types: kept.map((l) => c.layerTypes[l]),
    activation_sparsity_pattern: kept.map((l) => c.activationSparsityPattern[l]),
    num_kv_shared_layers:
      c.numKvSharedLayers - spec.skip.filter((s) => parent.layers[s].kv === 'consumer').length,
  };
  const config = withTextUpdates(parent, textUpdates);
  // The new config must load by the same rules as any other (lengths, KV sources).
  const childConfig = parseConfig(config, 'sliced config.json');

  const layers: LayerRow[] = parent.layers.map((l) => ({
    parent: l.index,
    index: newIndex.get(l.index) ?? null,
    type: l.type,
    kv: l.kv,
    parentWidth: l.ffn,
    width: skipped.has(l.index) ? null : spec.ffn[newIndex.get(l.index)!],
    sparsity: l.sparsity,
  }));
  return {
    spec: { skip: [...spec.skip], ffn: [...spec.ffn] },
    kept,
    layers,
    tensors: outTensors,
    dropped,
    shards,
    config,
    textUpdates,
    params: {
      parent: withTowers(textParams(c), tensors),
      child: withTowers(textParams(childConfig.text), outTensors),
    },
    sourceBytes: tensors.reduce((a, t) => a + numel(t.shape) * dtypeBytes(t.dtype), 0),
    outputBytes: outTensors.reduce((a, t) => a + t.bytes, 0),
    textOnly: Boolean(options.textOnly),
  };
}

// A pure slice plan: from the parent's config, its tensor list and a spec, what every output tensor is
// made of, which shard it lands in, and the new config. No I/O here, so plans are cheap to test and print.
// What happens to each tensor is the tensor table's `slice` column; which layers stay is the submodel's.
import {
  DEFAULT_MAX_SHARD_BYTES,
  DType,
  UserInputError,
  dtypeBytes,
  numel,
  planShards,
  shardFileName,
} from '../formats';
import {
  GLOBAL_TENSORS,
  NON_TEXT_PREFIXES,
  LAYER_TENSORS,
  MixNMatchSpec,
  ModelConfig,
  ParamBreakdown,
  TensorFamily,
  deriveSubmodel,
  detectTextPrefix,
  ffnOf,
  globalKeys,
  parseConfig,
  parseLayerTensorName,
  textParams,
  withTextUpdates,
  withTowers,
} from '../gemma3n';

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

export { DEFAULT_MAX_SHARD_BYTES };

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
  const submodel = deriveSubmodel(parent, spec);
  const c = parent.text;
  const L = c.num_hidden_layers;
  const P = c.hidden_size_per_layer_input;
  const kept = submodel.kept;
  const newIndex = new Map(kept.map((l, i) => [l, i]));
  const prefix = detectTextPrefix(tensors.map((t) => t.name));
  const layerFamilies = new Map<string, TensorFamily>(LAYER_TENSORS.map((f) => [f.key, f]));
  const globalFamilies = new Map<string, TensorFamily>(
    GLOBAL_TENSORS.flatMap((g) => globalKeys(g, c).map((k) => [prefix + k, g] as const)),
  );
  const keptPleRanges = merge(kept.map((l) => [l * P, (l + 1) * P]));
  const skipsAny = kept.length < L;

  const planned: Omit<PlannedTensor, 'shard'>[] = [];
  const dropped: { name: string; reason: string }[] = [];
  const add = (t: SourceTensor, name: string, op: SliceOp, shape: readonly number[]) =>
    planned.push({
      name,
      source: t.name,
      dtype: t.dtype,
      sourceShape: t.shape,
      shape: [...shape],
      op,
      bytes: numel(shape) * dtypeBytes(t.dtype),
    });
  const copy = (t: SourceTensor, name = t.name) => add(t, name, { kind: 'copy' }, t.shape);

  for (const t of tensors) {
    if (options.textOnly && NON_TEXT_PREFIXES.some((p) => t.name.startsWith(p))) {
      dropped.push({ name: t.name, reason: 'text only' });
      continue;
    }
    const m = parseLayerTensorName(t.name, prefix);
    // Tensors the table does not know (vision, audio, extras) are copied byte for byte.
    let family: TensorFamily | undefined;
    let name = t.name;
    let from = 0;
    let to = 0;
    let l = -1;
    if (m) {
      l = m.layer;
      if (l >= L) throw new SlicePlanError(`${t.name}: layer ${l} is beyond the config's ${L} layers`);
      const n = newIndex.get(l);
      if (n === undefined) {
        dropped.push({ name: t.name, reason: `layer ${l} skipped` });
        continue;
      }
      name = `${prefix}layers.${n}.${m.key}`;
      from = ffnOf(c, l);
      to = submodel.layers[n]?.ffn ?? from;
      family = layerFamilies.get(m.key);
    } else {
      family = globalFamilies.get(t.name);
    }
    const R = t.shape[0] ?? 0;
    const C = t.shape[1] ?? 0;
    // The table's shape for this tensor (global shapes ignore the width argument).
    const want = () => (family?.scope === 'layer' ? family.shape(c, from) : (family?.shape(c) ?? []));
    switch (family?.slice ?? 'copy') {
      case 'copy':
        copy(t, name);
        break;
      case 'ffn_rows':
        expectShape(t, want(), `layer ${l} intermediate_size ${from}`);
        if (to === from) copy(t, name);
        else add(t, name, { kind: 'rows', ranges: [[0, to]] }, [to, C]);
        break;
      case 'ffn_cols':
        expectShape(t, want(), `layer ${l} intermediate_size ${from}`);
        if (to === from) copy(t, name);
        else add(t, name, { kind: 'cols', ranges: [[0, to]] }, [R, to]);
        break;
      case 'ple_cols':
        // Layer-major columns: layer l owns columns [l·P, (l+1)·P).
        expectShape(t, want(), 'vocab_size_per_layer_input × layers·P');
        if (skipsAny) add(t, name, { kind: 'cols', ranges: keptPleRanges }, [R, kept.length * P]);
        else copy(t, name);
        break;
      case 'ple_rows':
        // Layer-major rows: layer l owns rows [l·P, (l+1)·P).
        expectShape(t, want(), 'layers·P × hidden_size');
        if (skipsAny) add(t, name, { kind: 'rows', ranges: keptPleRanges }, [kept.length * P, C]);
        else copy(t, name);
        break;
    }
  }

  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0))
    throw new SlicePlanError(`--max-shard-size: must be positive, got ${maxShardBytes}`);
  const groups = planShards(
    planned.map((t, i) => ({ ...t, i })),
    maxShardBytes,
  );
  const shards: PlannedShard[] = groups.map((g, k) => ({
    file: shardFileName(k, groups.length),
    tensors: g.map((t) => t.i),
    bytes: g.reduce((a, t) => a + t.bytes, 0),
  }));
  const shardOf = new Map<number, number>();
  groups.forEach((g, k) => g.forEach((t) => shardOf.set(t.i, k)));
  const outTensors: PlannedTensor[] = planned.map((t, i) => ({ ...t, shard: shardOf.get(i) ?? 0 }));

  const textUpdates: Record<string, unknown> = {
    num_hidden_layers: kept.length,
    intermediate_size: submodel.layers.map((l) => l.ffn),
    layer_types: submodel.layers.map((l) => l.type),
    activation_sparsity_pattern: submodel.layers.map((l) => l.sparsity),
    num_kv_shared_layers: submodel.num_kv_shared_layers,
  };
  const config = withTextUpdates(parent, textUpdates);
  // The new config must load by the same rules as any other (lengths, KV sources).
  const childConfig = parseConfig(config, 'sliced config.json');

  const layers: LayerRow[] = parent.layers.map((l) => {
    const n = newIndex.get(l.index);
    return {
      parent: l.index,
      index: n ?? null,
      type: l.type,
      kv: l.kv,
      parentWidth: l.ffn,
      width: n === undefined ? null : (submodel.layers[n]?.ffn ?? null),
      sparsity: l.sparsity,
    };
  });
  return {
    spec: submodel.spec,
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

// THE submodel derivation: from a parent config and a Mix-n-Match spec to the validated submodel (kept
// layers, widths, KV roles and sources, sparsity, layer types), or one error naming the flag the spec came
// from. inspect, the slicer and the engine all call `deriveSubmodel`, so they cannot disagree.
import { UserInputError } from '../formats';
import { type LayerFacts, type ModelConfig, deriveKvRoles } from './config';

/** A Mix-n-Match submodel of a parent: which layers are skipped, and the FFN width of each kept layer. */
export interface MixNMatchSpec {
  /** Parent layer indices that are dropped, sorted and unique. */
  readonly skip: readonly number[];
  /** One FFN width per kept layer, in layer order (length = parent layers - skip.length). */
  readonly ffn: readonly number[];
}

/** An invalid Mix-n-Match spec (from flags, a spec file, a preset or the API). */
export class SpecError extends UserInputError {
  override name = 'SpecError';
}

/** The parent's own shape as a spec: nothing skipped, full widths. */
export function identitySpec(intermediateSize: readonly number[]): MixNMatchSpec {
  return { skip: [], ffn: [...intermediateSize] };
}

/** Sorted parent indices of the kept layers. */
export function keptLayers(numLayers: number, spec: Pick<MixNMatchSpec, 'skip'>): number[] {
  const skip = new Set(spec.skip);
  const kept: number[] = [];
  for (let i = 0; i < numLayers; i++) if (!skip.has(i)) kept.push(i);
  return kept;
}

/** Widths Gemma 3n E4B's MatFormer training covered; other widths work but are untested. */
export const TRAINED_WIDTHS = { min: 8192, max: 16384 } as const;
/** hidden_size of the full-size Gemma 3n family (E2B/E4B); tiny test models use other sizes. */
const FULL_SIZE_HIDDEN = 2048;

/** A kept layer: the parent's facts with submodel indices (`index`, `kvSource`) and the submodel's width. */
export interface SubmodelLayer extends LayerFacts {
  /** Index in the parent (differs from `index` when layers are skipped). */
  readonly parentIndex: number;
  readonly parentFfn: number;
}

export interface Submodel {
  readonly spec: MixNMatchSpec;
  /** Parent indices of the kept layers. */
  readonly kept: readonly number[];
  readonly layers: readonly SubmodelLayer[];
  /** The submodel's own num_kv_shared_layers (the parent's minus the skipped consumers). */
  readonly num_kv_shared_layers: number;
  /** First KV-shared layer of the submodel (its layer count when none is shared). */
  readonly firstSharedLayer: number;
  /** Problems that do not stop a run (e.g. widths outside the trained range). */
  readonly warnings: readonly string[];
}

/** Where the skip list and the widths came from, for messages (`--skip`, `--spec f.yaml: ffn`, ...). */
export interface SpecLabels {
  readonly skipFrom?: string;
  readonly ffnFrom?: string;
}

const at = <T>(xs: readonly T[], i: number, what: string): T => {
  const x = xs[i];
  if (x === undefined) throw new RangeError(`${what} ${i} is out of range`);
  return x;
};

/**
 * Validates `spec` against `parent` and derives the submodel; throws SpecError on the first problem.
 * KV roles come from the parent's layer_types and num_kv_shared_layers, never from fixed indices; the
 * submodel re-derives them from its own layer types, as a sliced checkpoint's config does (§5.2).
 */
export function deriveSubmodel(parent: ModelConfig, spec: MixNMatchSpec, labels: SpecLabels = {}): Submodel {
  const skipFrom = labels.skipFrom ?? '--skip';
  const ffnFrom = labels.ffnFrom ?? '--ffn';
  const t = parent.text;
  const L = t.num_hidden_layers;
  const seen = new Set<number>();
  spec.skip.forEach((s, i) => {
    if (!Number.isInteger(s) || s < 0 || s >= L) {
      throw new SpecError(
        `${skipFrom}: layer ${s} is not a layer of this ${L}-layer parent (layers 0-${L - 1})`,
      );
    }
    if (seen.has(s)) throw new SpecError(`${skipFrom}: layer ${s} is listed twice`);
    if (i > 0 && s < at(spec.skip, i - 1, 'skip entry')) {
      throw new SpecError(`${skipFrom}: skipped layers must be sorted and unique`);
    }
    seen.add(s);
  });
  const kept = keptLayers(L, spec);
  if (kept.length === 0) throw new SpecError(`${skipFrom}: every layer is skipped; keep at least one`);
  if (spec.ffn.length !== kept.length) {
    throw new SpecError(`${ffnFrom}: ${spec.ffn.length} FFN widths for ${kept.length} kept layers`);
  }
  const parentLayer = (l: number) => at(parent.layers, l, 'layer');

  // A consumer reads the K/V of its producer; dropping a producer that still has readers breaks them.
  for (const s of spec.skip) {
    if (parentLayer(s).kv !== 'producer') continue;
    const readers = parent.layers.filter((l) => l.kvSource === s && !seen.has(l.index)).map((l) => l.index);
    if (readers.length > 0) {
      throw new SpecError(
        `${skipFrom}: layer ${s} is a KV producer (consumers ${readers.join(', ')} read it); it cannot be skipped`,
      );
    }
  }
  // The submodel re-derives roles from its own layer_types and num_kv_shared_layers: every kept consumer
  // must still find its parent producer there.
  const newIndex = new Map(kept.map((l, i) => [l, i]));
  const types = kept.map((l) => parentLayer(l).type);
  const numKvSharedLayers =
    t.num_kv_shared_layers - spec.skip.filter((s) => parentLayer(s).kv === 'consumer').length;
  const child = deriveKvRoles(types, numKvSharedLayers);
  kept.forEach((l, i) => {
    const want = parentLayer(l).kvSource;
    const got = at(child.sources, i, 'layer');
    if ((want === null ? null : newIndex.get(want)) !== got) {
      throw new SpecError(
        `${skipFrom}: after skipping, layer ${l} would read K/V from ${got === null ? 'nowhere' : `layer ${at(kept, got, 'layer')}`} instead of ${want === null ? 'its own' : `layer ${want}`}`,
      );
    }
  });

  const untrained: string[] = [];
  const layers: SubmodelLayer[] = kept.map((l, i) => {
    const p = parentLayer(l);
    const w = at(spec.ffn, i, 'width');
    if (!Number.isSafeInteger(w) || w < 1) {
      throw new SpecError(`${ffnFrom}: width ${w} for layer ${l} must be a positive integer`);
    }
    if (w > p.ffn) throw new SpecError(`${ffnFrom}: width ${w} for layer ${l} exceeds the parent's ${p.ffn}`);
    if (w < TRAINED_WIDTHS.min || w > TRAINED_WIDTHS.max) untrained.push(`${l}:${w}`);
    return {
      index: i,
      parentIndex: l,
      type: p.type,
      ropeTheta: p.ropeTheta,
      kv: at(child.roles, i, 'layer'),
      kvSource: at(child.sources, i, 'layer'),
      sparsity: p.sparsity,
      ffn: w,
      parentFfn: p.ffn,
    };
  });
  const warnings: string[] = [];
  if (t.hidden_size === FULL_SIZE_HIDDEN && untrained.length > 0) {
    warnings.push(
      `${ffnFrom}: widths outside ${TRAINED_WIDTHS.min}..${TRAINED_WIDTHS.max} (only those were trained) on layers ${untrained.join(', ')}`,
    );
  }
  return {
    spec: { skip: [...spec.skip], ffn: [...spec.ffn] },
    kept,
    layers,
    num_kv_shared_layers: numKvSharedLayers,
    firstSharedLayer: child.firstShared,
    warnings,
  };
}

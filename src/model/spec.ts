// A Mix-n-Match submodel of a parent: which layers are skipped, and the FFN width of each kept layer.

export interface MixNMatchSpec {
  /** Parent layer indices that are dropped, sorted and unique. */
  readonly skip: readonly number[];
  /** One FFN width per kept layer, in layer order (length = parent layers - skip.length). */
  readonly ffn: readonly number[];
}

/** The parent's own shape as a spec: nothing skipped, full widths. */
export function identitySpec(intermediateSize: readonly number[]): MixNMatchSpec {
  return { skip: [], ffn: [...intermediateSize] };
}

/** Sorted parent indices of the kept layers. */
export function keptLayers(numLayers: number, spec: MixNMatchSpec): number[] {
  const skip = new Set(spec.skip);
  const kept: number[] = [];
  for (let i = 0; i < numLayers; i++) if (!skip.has(i)) kept.push(i);
  return kept;
}

// A sensitivity scan as a prior for the other strategies: each candidate's metric drop is predicted as the
// sum of its layers' measured drops (a narrowed layer's drop scaled by how much of the scan's narrowing it
// does, a skipped layer's own skip drop), so `random` can draw the most promising candidates and successive
// halving can spend its first round on them only. A pure function of the candidates and the stored scan.
import type { Candidate } from './candidates';
import type { SensitivityRow, StoredCandidate } from './store';

/** The scan as the prior reads it: per layer, the drop when narrowed to `width` and when skipped. */
export interface SensitivityPrior {
  readonly run: number;
  readonly narrow: ReadonlyMap<number, { readonly width: number; readonly drop: number }>;
  readonly skip: ReadonlyMap<number, number>;
}

/** The prior of a finished sensitivity run: its rows and the specs of its candidates. */
export function sensitivityPrior(
  run: number,
  rows: readonly SensitivityRow[],
  candidates: readonly StoredCandidate[],
): SensitivityPrior {
  const byHash = new Map(candidates.map((c) => [c.spec_hash, c]));
  const narrow = new Map<number, { width: number; drop: number }>();
  const skip = new Map<number, number>();
  for (const r of rows) {
    if (r.kind === 'skip') skip.set(r.layer, r.drop);
    else {
      const width = byHash.get(r.spec_hash)?.ffn[r.layer];
      if (width !== undefined) narrow.set(r.layer, { width, drop: r.drop });
    }
  }
  return { run, narrow, skip };
}

/**
 * Predicted drop of each candidate (higher is worse). A layer narrowed from `full` to `w` counts the scan's
 * narrow drop times (full - w) / (full - scan width), so narrowing less costs less; a skipped layer counts its
 * skip drop, or (a layer the scan could not skip alone) its narrow drop extrapolated to width 0.
 */
export function predictedDrops(
  candidates: readonly Candidate[],
  parentWidths: readonly number[],
  prior: SensitivityPrior,
): Map<string, number> {
  const narrowCost = (layer: number, w: number) => {
    const full = parentWidths[layer] ?? 0;
    const n = prior.narrow.get(layer);
    if (!n || w >= full || n.width >= full) return 0;
    return (n.drop * (full - w)) / (full - n.width);
  };
  const out = new Map<string, number>();
  for (const c of candidates) {
    const skipped = new Set(c.spec.skip);
    let drop = 0;
    let k = 0;
    for (let l = 0; l < parentWidths.length; l++) {
      if (skipped.has(l)) drop += prior.skip.get(l) ?? narrowCost(l, 0);
      else drop += narrowCost(l, c.spec.ffn[k++] ?? parentWidths[l] ?? 0);
    }
    out.set(c.hash, drop);
  }
  return out;
}

// The accuracy/size frontier of a set of submodels: a point is on it when no other point has at most its
// parameters and at least its metric, strictly better in one of the two. Sweeps and reports both draw it.

export interface FrontierPoint {
  readonly params: number;
  readonly metric: number;
}

/**
 * Indices of the frontier's points in ascending parameter order. Points with a non-finite metric (nothing
 * measured) are never on it; exact duplicates of a frontier point are all kept.
 */
export function paretoFrontier(points: readonly FrontierPoint[]): number[] {
  const order = points
    .map((p, i) => ({ params: p.params, metric: p.metric, i }))
    .filter((p) => Number.isFinite(p.metric))
    .sort((a, b) => a.params - b.params || b.metric - a.metric || a.i - b.i);
  const front: number[] = [];
  let best = -Infinity;
  let bestParams = NaN;
  for (const p of order) {
    // Sorted by size (ties: best first), so a point is dominated exactly when a smaller or equal one already
    // reached its metric, unless it is that point's twin.
    if (p.metric > best || (p.metric === best && p.params === bestParams)) {
      front.push(p.i);
      best = p.metric;
      bestParams = p.params;
    }
  }
  return front;
}

// The accuracy/size frontier: a candidate is on it when no other one is at most as large and at least as
// good, and strictly better in one of the two.

export interface FrontierPoint {
  readonly params: number;
  readonly metric: number;
}

/** Indices of the points on the frontier (fewer parameters, higher metric), in ascending parameter order. */
export function paretoFrontier(points: readonly FrontierPoint[]): number[] {
  // Indices of `points` itself, so every points[i] below exists.
  const order = points
    .map((_, i) => i)
    .sort((a, b) => points[a]!.params - points[b]!.params || points[b]!.metric - points[a]!.metric);
  const front: number[] = [];
  let best = -Infinity;
  for (const i of order) {
    // Sorted by size (ties: best first), so a point is dominated exactly when a smaller or equal one already
    // reached its metric.
    const { metric } = points[i]!;
    if (metric > best) {
      front.push(i);
      best = metric;
    }
  }
  return front;
}

// The one Pareto frontier (sweeps' results and reports): the brute-force definition on random point sets.
import fc from 'fast-check';
import { paretoFrontier } from '../../src/eval';

describe('paretoFrontier', () => {
  test('equals the brute-force definition on random point sets', () => {
    const point = fc.record({
      params: fc.integer({ min: 1, max: 50 }),
      metric: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(NaN)),
    });
    fc.assert(
      fc.property(fc.array(point, { maxLength: 30 }), (pts) => {
        const front = paretoFrontier(pts);
        const at = (i: number) => pts[i]!;
        const dominated = (i: number) =>
          pts.some(
            (q, j) =>
              j !== i &&
              q.params <= at(i).params &&
              q.metric >= at(i).metric &&
              (q.params < at(i).params || q.metric > at(i).metric),
          );
        // Exactly the measured, undominated points (twins included), smallest first.
        const expected = pts.map((_, i) => i).filter((i) => Number.isFinite(at(i).metric) && !dominated(i));
        expect([...front].sort((a, b) => a - b)).toEqual(expected);
        for (let k = 1; k < front.length; k++)
          expect(at(front[k]!).params).toBeGreaterThanOrEqual(at(front[k - 1]!).params);
      }),
    );
  });

  test('twins are both kept, a smaller equal point dominates, nothing measured is never on it', () => {
    const f = paretoFrontier([
      { params: 10, metric: 0.9 },
      { params: 5, metric: 0.8 },
      { params: 6, metric: 0.7 },
      { params: 5, metric: 0.8 },
      { params: 12, metric: 0.9 },
      { params: 3, metric: NaN },
    ]);
    expect(f).toEqual([1, 3, 0]);
  });
});

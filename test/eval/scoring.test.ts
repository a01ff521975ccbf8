import {
  EvalInputError,
  type QuestionPrediction,
  aggregate,
  mcnemarExact,
  predict,
  wilsonInterval,
} from '../../src/eval';
import { binomialTwoSided } from '../../src/eval/compare';

const pred = (subject: string, index: number, correct: boolean): QuestionPrediction => ({
  subject,
  index,
  gold: 'A',
  pred: correct ? 'A' : 'B',
  logprobs: correct ? [-1, -2, -3, -4] : [-2, -1, -3, -4],
});

describe('wilsonInterval', () => {
  it('matches hand-computed 95% intervals', () => {
    // 8/10: centre (0.8 + 1.92/10) / 1.38415 = 0.71674, half 1.96 * sqrt(0.016 + 0.00096) / 1.38415 = 0.22658.
    const [lo, hi] = wilsonInterval(8, 10);
    expect(lo).toBeCloseTo(0.49016, 4);
    expect(hi).toBeCloseTo(0.94332, 4);
    // 0/10: upper bound z^2 / (n + z^2) = 3.8415 / 13.8415.
    expect(wilsonInterval(0, 10)[0]).toBe(0);
    expect(wilsonInterval(0, 10)[1]).toBeCloseTo(0.27753, 4);
    // 50/100: 0.5 +- 1.96 * 0.05 / sqrt(1 + 3.8415 / 100) ... = [0.40383, 0.59617].
    const [a, b] = wilsonInterval(50, 100);
    expect(a).toBeCloseTo(0.40383, 4);
    expect(b).toBeCloseTo(0.59617, 4);
    expect(wilsonInterval(10, 10)[1]).toBe(1);
    expect(wilsonInterval(0, 0)).toEqual([0, 1]);
  });
});

describe('predict', () => {
  it('is the argmax, first index on ties', () => {
    expect(predict([-3, -1, -2, -4])).toBe(1);
    expect(predict([-1, -2, -1, -5])).toBe(0);
    expect(predict([-9, -9, -9, -0.5])).toBe(3);
  });
});

describe('aggregate', () => {
  it('weights categories and overall by question (micro), reports the macro mean separately', () => {
    const preds = [
      pred('abstract_algebra', 0, true), // stem: 1/1
      pred('philosophy', 0, false), // humanities: 1/4
      pred('philosophy', 1, false),
      pred('philosophy', 2, false),
      pred('philosophy', 3, true),
      pred('anatomy', 0, false), // stem (harness mapping): stem becomes 1/2
    ];
    const r = aggregate(preds);
    expect(r.overall.correct).toBe(2);
    expect(r.overall.n).toBe(6);
    expect(r.overall.acc).toBeCloseTo(2 / 6, 12);
    expect(r.overall.macro_acc).toBeCloseTo((1 + 0.25 + 0) / 3, 12);
    expect(r.overall.ci).toEqual(wilsonInterval(2, 6));
    expect(r.categories.stem).toMatchObject({ correct: 1, n: 2, acc: 0.5 });
    expect(r.categories.humanities).toMatchObject({ correct: 1, n: 4, acc: 0.25 });
    expect(r.categories.other).toBeUndefined();
    expect(Object.keys(r.subjects)).toEqual(['abstract_algebra', 'anatomy', 'philosophy']);
    expect(r.subjects.philosophy!.ci).toEqual(wilsonInterval(1, 4));
    // Probability mass on the four letters: e^-1 + e^-2 + e^-3 + e^-4 for every question here.
    expect(r.overall.choice_mass).toBeCloseTo(Math.exp(-1) + Math.exp(-2) + Math.exp(-3) + Math.exp(-4), 12);
  });
});

describe('mcnemarExact', () => {
  const set = (pattern: string) => [...pattern].map((c, i) => pred('anatomy', i, c === '1'));
  it('counts concordant and discordant pairs and gives the exact two-sided p-value', () => {
    // A right / B wrong once, A wrong / B right 9 times: p = 2 * (1 + 10) / 2^10.
    const a = set('1' + '0'.repeat(9) + '11' + '00');
    const b = set('0' + '1'.repeat(9) + '11' + '00');
    const r = mcnemarExact(a, b);
    expect(r).toMatchObject({ paired: 14, bothCorrect: 2, onlyA: 1, onlyB: 9, bothWrong: 2 });
    expect(r.pValue).toBeCloseTo(22 / 1024, 14);
    expect(r.significant).toBe(true);
    expect(r.accA).toBeCloseTo(3 / 14, 12);
    expect(r.accB).toBeCloseTo(11 / 14, 12);
    expect(mcnemarExact(set('110'), set('101')).pValue).toBe(1);
    expect(mcnemarExact(set('000000'), set('111111')).pValue).toBeCloseTo(2 / 64, 14);
    expect(mcnemarExact(set('00000'), set('11111')).significant).toBe(false); // 2/32 = 0.0625
  });
  it('matches only questions present in both sets (by subject and index)', () => {
    const a = [pred('anatomy', 0, true), pred('anatomy', 1, true), pred('virology', 0, false)];
    const b = [pred('anatomy', 1, false), pred('virology', 0, true), pred('virology', 5, true)];
    expect(mcnemarExact(a, b)).toMatchObject({ paired: 2, onlyA: 1, onlyB: 1 });
    expect(() => mcnemarExact(a, [pred('marketing', 0, true)])).toThrow(EvalInputError);
    const otherGold = { ...pred('anatomy', 0, true), gold: 'C' as const };
    expect(() => mcnemarExact(a, [otherGold])).toThrow(/anatomy #0: gold answers differ \(A vs C\)/);
  });
  it('agrees with an exact BigInt binomial sum for large n', () => {
    for (const [k, n] of [
      [40, 100],
      [700, 1500],
      [0, 30],
    ]) {
      let num = 0n;
      let c = 1n;
      for (let i = 0; i <= k!; i++) {
        if (i > 0) c = (c * BigInt(n! - i + 1)) / BigInt(i);
        num += c;
      }
      // p = 2 * num / 2^n, evaluated with enough precision via a scaled BigInt division.
      const scale = 10n ** 30n;
      const exact = Number((2n * num * scale) / 2n ** BigInt(n!)) / 1e30;
      expect(binomialTwoSided(k!, n!)).toBeCloseTo(exact, 12);
    }
    expect(binomialTwoSided(7000, 14042)).toBeGreaterThan(0.5);
  });
});

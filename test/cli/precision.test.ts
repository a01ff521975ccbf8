// --precision exact|int8 on every command that loads the engine, and --agreement-sample: a bad value is one line
// and exit 2 before anything loads; sweep and worker take exact only (the final rung is exact by design).
import * as path from 'node:path';
import { PRECISIONS } from '../../src/engine';
import { UserInputError } from '../../src/formats';
import { PRECISION_OPTIONS, exactOnlyPrecision, precisionFlag } from '../../src/cli/flags';
import { runCli } from '../helpers/cli';

const tiny = path.join(__dirname, '..', '..', 'configs', 'tiny');

describe('precisionFlag', () => {
  it('defaults to exact and takes the engine’s precisions', () => {
    expect(PRECISION_OPTIONS.precision.default).toBe('exact');
    expect(PRECISION_OPTIONS.precision.choices).toEqual([...PRECISIONS]);
    expect(precisionFlag({})).toBe('exact');
    expect(precisionFlag({ precision: 'int8' })).toBe('int8');
    expect(() => precisionFlag({ precision: 'int4' })).toThrow(
      new UserInputError('--precision: int4 is not one of exact, int8'),
    );
  });

  it('sweep and worker refuse int8 and say where fast mode goes', () => {
    expect(exactOnlyPrecision({ precision: 'exact' }, 'sweep')).toBe('exact');
    expect(() => exactOnlyPrecision({ precision: 'int8' }, 'sweep')).toThrow(
      /^--precision int8: a sweep's final rung scores in exact mode; .*fast_rungs/,
    );
    expect(() => exactOnlyPrecision({ precision: 'int8' }, 'worker')).toThrow(
      /^--precision int8: distributed sweeps score in exact mode/,
    );
  });
});

describe('--precision and --agreement-sample through the CLI', () => {
  const expectOneLine = (args: string[], expected: RegExp) => {
    const r = runCli(args);
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    expect(lines).toEqual([expect.stringMatching(expected)]);
  };

  it.each([
    ['eval', tiny, '--mmlu', 'x', '--out', 'o.json'],
    ['generate', tiny, '--ids', '2'],
    ['logits', tiny, '--ids', '2', '--out', 'l.safetensors'],
    ['bench', tiny],
    ['sweep', 'sweep.yaml'],
    ['worker', '--db', 'postgres://h/db'],
  ])('%s refuses an unknown precision in one line', (...args) => {
    expectOneLine(
      [...args, '--precision', 'fp16'],
      /^error: --precision: "fp16" is not one of "exact", "int8"$/,
    );
  });

  it('sweep and worker refuse int8 before reading anything', () => {
    expectOneLine(
      ['sweep', 'no-such.yaml', '--precision', 'int8'],
      /^error: --precision int8: a sweep's final rung/,
    );
    expectOneLine(
      ['worker', '--db', 'postgres://h/db', '--precision', 'int8'],
      /^error: --precision int8: distributed sweeps score in exact mode/,
    );
  });

  it('--agreement-sample is for int8 only, and a non-negative integer', () => {
    const base = ['eval', tiny, '--mmlu', 'x', '--out', 'o.json'];
    expectOneLine(
      [...base, '--agreement-sample', '5'],
      /^error: --agreement-sample: only with --precision int8/,
    );
    expectOneLine(
      [...base, '--precision', 'int8', '--agreement-sample', '-1'],
      /^error: --agreement-sample: expected an integer at least 0, got -1$/,
    );
    expectOneLine(
      [...base, '--precision', 'int8', '--agreement-sample', '2.5'],
      /^error: --agreement-sample: expected an integer at least 0, got 2.5$/,
    );
  });
});

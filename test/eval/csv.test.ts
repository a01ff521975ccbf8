import fc from 'fast-check';
import { parseCsv } from '../../src/formats';
import { EvalInputError, loadMmlu, questionsOf, SPLITS, SUBJECTS } from '../../src/eval';
import { MMLU_DATA, describeWith } from './helpers/shared';

const fields = (text: string) => parseCsv(text, 'x.csv').map((r) => r.fields);

describe('parseCsv', () => {
  it('keeps newlines and CRs inside quoted fields and tracks start lines', () => {
    const recs = parseCsv('"a\nb",c\n"x\r\ny\rz",w\nlast,1', 'x.csv');
    expect(recs.map((r) => r.fields)).toEqual([
      ['a\nb', 'c'],
      ['x\r\ny\rz', 'w'],
      ['last', '1'],
    ]);
    expect(recs.map((r) => r.line)).toEqual([1, 3, 6]);
  });
  it('accepts CRLF, LF and lone CR record ends, with or without a final newline', () => {
    expect(fields('a,b\r\nc,d\r\n')).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(fields('a,b\nc,d')).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(fields('a,b\rc,d\r')).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });
  it('unescapes doubled quotes and keeps empty fields and outer spaces', () => {
    expect(fields('"say ""hi""",,"",  x ,"a,b"')).toEqual([['say "hi"', '', '', '  x ', 'a,b']]);
    expect(fields('""""')).toEqual([['"']]);
  });
  it('treats a quote inside an unquoted field literally and skips blank lines', () => {
    expect(fields('5" wide,b\n\n\r\nc,d\n')).toEqual([
      ['5" wide', 'b'],
      ['c', 'd'],
    ]);
  });
  it('reports an unterminated quote or junk after a closing quote on one line, naming file and line', () => {
    expect(() => parseCsv('a,b\nc,"open\nmore', 'dir/f.csv')).toThrow(
      new EvalInputError('dir/f.csv:2: unterminated quoted field'),
    );
    expect(() => parseCsv('a,b\n\n"q"x,1', 'f.csv')).toThrow(/^f\.csv:3: expected ',' or end of line/);
  });
  it('round-trips arbitrary fields written by a standard CSV writer', () => {
    const field = fc.string({ unit: fc.constantFrom('a', ' ', ',', '"', '\n', '\r', 'é', 'x') });
    const row = fc.array(field, { minLength: 2, maxLength: 6 });
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        (rows, crlf, final) => {
          const enc = (s: string) => (/[",\r\n]/.test(s) || s === '' ? `"${s.replace(/"/g, '""')}"` : s);
          const eol = crlf ? '\r\n' : '\n';
          const text = rows.map((r) => r.map(enc).join(',')).join(eol) + (final ? eol : '');
          expect(fields(text)).toEqual(rows);
        },
      ),
    );
  });
});

describeWith([MMLU_DATA], 'the shared hendrycks CSVs', () => {
  it('parse to the row counts of SOURCE.md, 57 subjects, 5 dev rows each', async () => {
    const ds = await loadMmlu(MMLU_DATA);
    const count = (s: (typeof SPLITS)[number]) =>
      [...ds.splits[s].values()].reduce((a, q) => a + q.length, 0);
    expect([count('dev'), count('val'), count('test')]).toEqual([285, 1531, 14042]);
    expect([...ds.splits.test.keys()]).toEqual(SUBJECTS);
    for (const s of SUBJECTS) expect(questionsOf(ds, 'dev', s)).toHaveLength(5);
    expect(questionsOf(ds, 'test', 'professional_law')).toHaveLength(1534);
    const tally = [0, 0, 0, 0];
    for (const qs of ds.splits.test.values()) for (const q of qs) tally[q.answer]!++;
    expect(tally).toEqual([3222, 3462, 3582, 3776]);
  });
});

import * as fs from 'fs';
import * as path from 'path';
import { PresetError, evaluateWidth, loadPublishedConfigs, parsePublishedConfigs } from '../../src/gemma3n';
import { parseCsv } from '../../src/formats';

const HEADER = 'name,# Layers,# Effective Params (B),MMLU PT accuracy,FFN Hidden Dims,Layers Skipped';

describe('published configs parser', () => {
  test('width expressions: Python digit separators and products, evaluated without eval', () => {
    expect(evaluateWidth('2_048 * 8')).toBe(16384);
    expect(evaluateWidth(' 2_048 * 4 ')).toBe(8192);
    expect(evaluateWidth('1_0_2_4')).toBe(1024);
    expect(evaluateWidth('12288')).toBe(12288);
    expect(evaluateWidth('2048 * 5.5')).toBe(11264);
    expect(() => evaluateWidth('2048 / 3')).toThrow(/not a positive integer/);
    expect(() => evaluateWidth('_048')).toThrow();
    expect(() => evaluateWidth('process.exit(1)')).toThrow();
    expect(() => evaluateWidth('')).toThrow();
  });

  test('CSV quoting: commas and doubled quotes inside fields, CRLF line ends', () => {
    expect(parseCsv('a,"b, c","d ""e"""\r\n1,2,3\r\n', 'x.csv').map((r) => r.fields)).toEqual([
      ['a', 'b, c', 'd "e"'],
      ['1', '2', '3'],
    ]);
    expect(parseCsv('x,y\n1,\n', 'x.csv').map((r) => r.fields)).toEqual([
      ['x', 'y'],
      ['1', ''],
    ]);
  });

  test('a row parses to numbers', () => {
    const csv = `${HEADER}\nSmall,3,0.5,41.20%,"[2_048 * 4, 2_048 * 8, 1_024]","[1, 0]"\nNo skip,2,0.4,40%,"[8, 16]",\n`;
    expect(parsePublishedConfigs(csv)).toEqual([
      {
        name: 'Small',
        layers: 3,
        effectiveParamsB: 0.5,
        mmluPct: 41.2,
        ffn: [8192, 16384, 1024],
        skip: [0, 1],
      },
      { name: 'No skip', layers: 2, effectiveParamsB: 0.4, mmluPct: 40, ffn: [8, 16], skip: [] },
    ]);
  });

  test.each([
    ['a missing column', 'name,# Layers\nx,1', /lacks the column "# Effective Params \(B\)"/],
    [
      'a width count that does not match # Layers',
      `${HEADER}\nx,3,1,1%,"[8, 8]",`,
      /row 2: 2 FFN widths for 3 layers/,
    ],
    ['a bad width', `${HEADER}\nx,1,1,1%,"[foo]",`, /row 2: /],
    ['a bad percentage', `${HEADER}\nx,1,1,abc,"[8]",`, /not a percentage/],
    ['a duplicate skip', `${HEADER}\nx,1,1,1%,"[8]","[3, 3]"`, /skipped twice/],
    ['an unterminated quote', `${HEADER}\nx,1,1,1%,"[8]`, /unterminated/],
  ])('%s is a PresetError naming the file', (_what, csv, message) => {
    expect(() => parsePublishedConfigs(csv, 'my.csv')).toThrow(PresetError);
    expect(() => parsePublishedConfigs(csv, 'my.csv')).toThrow(message);
    expect(() => parsePublishedConfigs(csv, 'my.csv')).toThrow(/^my\.csv: /);
  });

  test('the shipped configs/gemma3n-e4b-published.csv loads: 16 rows, first is the 35-layer main model', () => {
    const rows = loadPublishedConfigs();
    expect(rows.length).toBe(16);
    expect(rows[0]).toMatchObject({
      name: 'Main model',
      layers: 35,
      effectiveParamsB: 3.98,
      mmluPct: 62.3,
      skip: [],
    });
    expect(rows[0]!.ffn).toEqual(Array(35).fill(16384));
    const e2b = rows.find((r) => r.name === 'Config for official E2B Model')!;
    expect(e2b.skip).toEqual([20, 21, 22, 23, 24]);
    expect(e2b.ffn).toEqual(Array(30).fill(8192));
    // Its source is documented next to it.
    const readme = fs.readFileSync(path.join(__dirname, '../../configs/README.md'), 'utf8');
    expect(readme).toMatch(/google\/gemma3n-slicing-configs/);
  });
});

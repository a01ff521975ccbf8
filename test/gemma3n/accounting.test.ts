import * as fs from 'fs';
import * as path from 'path';
import { loadConfig, textParams, loadPublishedConfigs, parsePublishedConfigs } from '../../src/gemma3n';
import { describeIfShared, fixturesDir, sharedDir } from '../helpers/shared';

const cfgPath = (name: string) => path.join(fixturesDir(), 'gemma3n', name, 'config.json');

describeIfShared('parameter accounting (architecture doc §5.1)', () => {
  test('E4B: exactly 3,980,491,248 effective; 6,866,696,688 text total', () => {
    const p = textParams(loadConfig(cfgPath('e4b-config')).text);
    expect(p.effective).toBe(3_980_491_248);
    expect(p.textTotal).toBe(6_866_696_688);
    expect(p.embeddings).toBe(262_400 * 2048);
    expect(p.pleEmbeddings).toBe(262_144 * 256 * 35);
    expect(p.layers).toBe(35);
  });

  test('E2B: exactly 1,905,495,648 effective; 4,456,156,768 text total', () => {
    const p = textParams(loadConfig(cfgPath('e2b-config')).text);
    expect(p.effective).toBe(1_905_495_648);
    expect(p.textTotal).toBe(4_456_156_768);
  });

  test('E4B with layers 20-24 skipped at width 8192 is E2B', () => {
    const c = loadConfig(cfgPath('e4b-config')).text;
    const p = textParams(c, { skip: [20, 21, 22, 23, 24], ffn: Array(30).fill(8192) });
    expect(p.effective).toBe(1_905_495_648);
    expect(p.textTotal).toBe(4_456_156_768);
  });
});

// What our formula gives for each published row's own widths and skips (exact integer counts).
// For these rows the published "# Effective Params (B)" is NOT the rounded count of its own widths:
// Google's figures run 0.005-0.02 B high (the doc's example: "E2.54B" counts to 2.521 B), and the
// last block-level row is named E3.79B while listing 3.74 and counting 3.729 B. We pin our values so a
// change to the formula cannot hide behind the 0.02 B tolerance.
const DISAGREEING: Record<string, number> = {
  'Config for E2.54B (layer-level)': 2_520_873_456,
  'Config for E2.69B (layer-level)': 2_671_868_400,
  'Config for E2.98B (layer-level)': 2_973_858_288,
  'Config for E3.39B (layer-level)': 3_376_511_472,
  'Config for E3.59B (layer-level)': 3_577_838_064,
  'Config for E3.79B (layer-level)': 3_779_164_656,
  'Config for E2.49B (block-level)': 2_470_541_808,
  'Config for E2.73B (block-level)': 2_722_200_048,
  'Config for E2.98B (block-level)': 2_973_858_288,
  'Config for E3.24B (block-level)': 3_225_516_528,
  'Config for E3.49B (block-level)': 3_477_174_768,
  'Config for E3.79B (block-level)': 3_728_833_008,
};

describeIfShared('published Mix-n-Match configurations', () => {
  const csv = path.join(sharedDir(), 'data/gemma3n-slicing-configs/configs.csv');
  const rows = fs.existsSync(csv) ? parsePublishedConfigs(fs.readFileSync(csv, 'utf8'), csv) : [];
  const e4b = () => loadConfig(cfgPath('e4b-config')).text;
  const count = (r: (typeof rows)[number]) => textParams(e4b(), { skip: r.skip, ffn: r.ffn }).effective;

  test('the CSV has 16 configurations, each with one width per kept layer', () => {
    expect(rows.length).toBe(16);
    for (const r of rows) {
      expect(r.ffn.length).toBe(r.layers);
      expect(r.layers + r.skip.length).toBe(35);
    }
  });

  test.each(rows.map((r) => [r.name, r]))('%s: within 0.02 B of the published figure', (_name, r) => {
    const b = count(r) / 1e9;
    expect(Math.abs(b - r.effectiveParamsB)).toBeLessThanOrEqual(0.02);
  });

  test('rows whose published figure is their own rounded count, and the exact values of the others', () => {
    const agree: string[] = [];
    for (const r of rows) {
      const n = count(r);
      const rounded = Math.round(n / 1e7) / 100;
      if (rounded === r.effectiveParamsB) {
        agree.push(r.name);
        expect(DISAGREEING[r.name]).toBeUndefined();
      } else {
        expect(n).toBe(DISAGREEING[r.name]);
      }
    }
    expect(agree).toEqual([
      'Main model',
      'Config for official E2B Model',
      'Config for E1.96B (layer-level)',
      'Config for E3.18B (layer-level)',
    ]);
  });

  test('the shipped copy is the same data as the shared CSV', () => {
    expect(loadPublishedConfigs()).toEqual(rows);
  });
});

// Spec parsing and validation: flags, files, blocks, presets, and every one-line error.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserInputError } from '../../src/formats';
import {
  SpecError,
  loadPublishedConfigs,
  textParams,
  expandBlocks,
  parentBlocks,
  parseSkipList,
  parseSpecFlags,
  parseWidthList,
  rangeList,
  resolveSpec,
  runLength,
} from '../../src/gemma3n';
import { configOf, makeTempDir } from '../slicing/util';

const e4b = configOf();
const tiny = configOf({ hidden_size: 64, intermediate_size: 256, num_hidden_layers: 35 });

function specError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    expect(err).toBeInstanceOf(UserInputError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected a SpecError');
}

describe('parseSkipList', () => {
  it('reads indices and ranges, sorted', () => {
    expect(parseSkipList('30,20-24', 35)).toEqual([20, 21, 22, 23, 24, 30]);
    expect(parseSkipList('', 35)).toEqual([]);
    expect(parseSkipList([3, '5-6'], 35)).toEqual([3, 5, 6]);
  });
  it.each([
    ['abc', '--skip: "abc" is not a layer index or range like 20-24'],
    ['24-20', '--skip: range "24-20" runs backwards'],
    ['35', '--skip: layer 35 does not exist (the parent has layers 0-34)'],
    ['3,2-4', '--skip: layer 3 is listed twice'],
    ['-1', '--skip: "-1" is not a layer index or range like 20-24'],
  ])('rejects %s', (input, message) => {
    expect(specError(() => parseSkipList(input, 35))).toBe(message);
  });
});

describe('parseWidthList', () => {
  it('expands run lengths and evaluates expressions with mathjs', () => {
    expect(parseWidthList('8192x2,16384x3')).toEqual([8192, 8192, 16384, 16384, 16384]);
    expect(parseWidthList('2_048 * 4, 2048*8 x 2')).toEqual([8192, 16384, 16384]);
    expect(parseWidthList(8192)).toEqual([8192]);
  });
  it('never evaluates JavaScript', () => {
    expect(specError(() => parseWidthList('process.exit(1)'))).toMatch(
      /^--ffn: "process\.exit\(1\)" is not a width/,
    );
  });
  it.each(['0', '8192.5', '-4', 'abc', '8192,,8192'])('rejects %s', (input) => {
    expect(specError(() => parseWidthList(input))).toMatch(/^--ffn: /);
  });
  it('guards huge repeat counts', () => {
    expect(specError(() => parseWidthList('8192x1000000'))).toMatch(/repeat count/);
  });
});

describe('blocks', () => {
  it('derives 4 sliding + 1 full blocks from layer_types', () => {
    const blocks = parentBlocks(e4b.text.layer_types);
    expect(blocks).toHaveLength(7);
    expect(blocks[0]).toEqual([0, 1, 2, 3, 4]);
    expect(blocks[6]).toEqual([30, 31, 32, 33, 34]);
  });
  it('keeps a trailing partial block', () => {
    const types = configOf({ num_hidden_layers: 12, num_kv_shared_layers: 0 }).text.layer_types;
    expect(parentBlocks(types).map((b) => b.length)).toEqual([5, 5, 2]);
  });
  it('maps one width per block to every layer of it', () => {
    const per = expandBlocks('8192x3,16384x4', e4b.text.layer_types);
    expect(per.slice(0, 15)).toEqual(Array(15).fill(8192));
    expect(per.slice(15)).toEqual(Array(20).fill(16384));
    expect(specError(() => expandBlocks('8192x5', e4b.text.layer_types))).toBe(
      '--blocks: 5 widths given but the parent has 7 blocks (each ends with a full-attention layer)',
    );
  });
});

describe('resolveSpec from flags', () => {
  it('accepts one width for all kept layers', () => {
    expect(parseSpecFlags({ skip: '20-24', ffn: '8192' }, e4b)).toEqual({
      skip: [20, 21, 22, 23, 24],
      ffn: Array(30).fill(8192),
    });
  });
  it('accepts widths per parent layer (skipped entries ignored) or per kept layer', () => {
    const perParent = parseSpecFlags({ skip: '20-24', ffn: '8192x20,16384x15' }, e4b);
    expect(perParent.ffn).toEqual([...Array(20).fill(8192), ...Array(10).fill(16384)]);
    const perKept = parseSpecFlags({ skip: '20-24', ffn: '8192x20,16384x10' }, e4b);
    expect(perKept).toEqual(perParent);
  });
  it('rejects other lengths, naming both accepted ones', () => {
    expect(specError(() => parseSpecFlags({ skip: '20-24', ffn: '8192x33' }, e4b))).toBe(
      '--ffn: 33 widths given; expected 1, 35 (one per parent layer) or 30 (one per kept layer)',
    );
    expect(specError(() => parseSpecFlags({ ffn: '8192x34' }, e4b))).toBe(
      '--ffn: 34 widths given; expected 1 or 35 (one per layer)',
    );
  });
  it('keeps parent widths when only layers are skipped', () => {
    expect(parseSpecFlags({ skip: '3' }, tiny).ffn).toEqual(Array(34).fill(256));
  });
  it('accepts the block-level form', () => {
    const s = parseSpecFlags({ blocks: '8192,8192,8192,16384,16384,16384,16384', skip: '20-24' }, e4b);
    expect(s.ffn).toEqual([...Array(15).fill(8192), ...Array(15).fill(16384)]);
    expect(specError(() => parseSpecFlags({ blocks: '8192', ffn: '8192' }, e4b))).toBe(
      '--blocks: cannot be combined with --ffn (both set the widths)',
    );
  });
  it('rejects widths above the parent width and not-integers', () => {
    expect(specError(() => parseSpecFlags({ ffn: '300' }, tiny))).toBe(
      "--ffn: width 300 for layer 0 exceeds the parent's 256",
    );
    expect(specError(() => parseSpecFlags({ ffn: '256x20,512,256x14' }, tiny))).toBe(
      "--ffn: width 512 for layer 20 exceeds the parent's 256",
    );
  });
  it('warns about untrained widths on a full-size parent only', () => {
    const warnings: string[] = [];
    parseSpecFlags({ ffn: '4096x2,8192x33' }, e4b, (w) => warnings.push(w));
    expect(warnings).toEqual([
      '--ffn: widths outside 8192..16384 (only those were trained) on layers 0:4096, 1:4096',
    ]);
    expect(resolveSpec({ ffn: '128' }, tiny).warnings).toEqual([]);
    expect(resolveSpec({ ffn: '8192' }, e4b).warnings).toEqual([]);
  });
});

describe('KV-sharing validation', () => {
  it('refuses to skip a producer its consumers read', () => {
    expect(specError(() => parseSpecFlags({ skip: '19' }, e4b))).toBe(
      '--skip: layer 19 is a KV producer (consumers 24, 29, 34 read it); it cannot be skipped',
    );
    expect(specError(() => parseSpecFlags({ skip: '18,20' }, e4b))).toBe(
      '--skip: layer 18 is a KV producer (consumers 21, 22, 23, 25, 26, 27, 28, 30, 31, 32, 33 read it); it cannot be skipped',
    );
  });
  it('derives producers from layer_types and num_kv_shared_layers, not fixed indices', () => {
    // 10 layers, 4 shared: F = 6, producers are 4 (last full before 6) and 5 (last sliding).
    const small = configOf({ num_hidden_layers: 10, num_kv_shared_layers: 4, intermediate_size: 64 });
    expect(specError(() => parseSpecFlags({ skip: '5' }, small))).toBe(
      '--skip: layer 5 is a KV producer (consumers 6, 7, 8 read it); it cannot be skipped',
    );
    expect(parseSpecFlags({ skip: '18,19' }, configOf({ num_kv_shared_layers: 10 })).skip).toEqual([18, 19]);
  });
  it('allows dropping a producer together with all its consumers', () => {
    expect(parseSpecFlags({ skip: '19,24,29,34' }, e4b).skip).toEqual([19, 24, 29, 34]);
  });
  it('allows skipping layers before the shared region (sharing is re-derived)', () => {
    expect(parseSpecFlags({ skip: '3,9,27,34' }, e4b).ffn).toHaveLength(31);
  });
  it('refuses to skip every layer', () => {
    const small = configOf({ num_hidden_layers: 2, num_kv_shared_layers: 0, intermediate_size: 8 });
    expect(specError(() => parseSpecFlags({ skip: '0-1' }, small))).toBe(
      '--skip: every layer is skipped; keep at least one',
    );
  });
});

describe('published presets', () => {
  it('applies the official E2B config: 30 widths with 5 skipped layers', () => {
    const r = resolveSpec({ preset: 'Config for official E2B Model' }, e4b);
    expect(r.spec).toEqual({ skip: [20, 21, 22, 23, 24], ffn: Array(30).fill(8192) });
    expect(r.preset?.mmluPct).toBe(50.9);
    expect(textParams(e4b.text, r.spec).effective).toBe(1_905_495_648);
  });
  it('finds names case-insensitively and without the "Config for" prefix', () => {
    const a = parseSpecFlags({ preset: 'Config for E2.98B (layer-level)' }, e4b);
    expect(parseSpecFlags({ preset: 'e2.98b (layer-level)' }, e4b)).toEqual(a);
    expect(a.ffn.filter((w) => w === 16384)).toHaveLength(15);
  });
  it('every published config resolves against E4B and matches its published parameter figure', () => {
    for (const p of loadPublishedConfigs()) {
      const r = resolveSpec({ preset: p.name }, e4b);
      expect(r.warnings).toEqual([]);
      expect(Math.abs(textParams(e4b.text, r.spec).effective / 1e9 - p.effectiveParamsB)).toBeLessThan(0.025);
    }
  });
  it('rejects unknown names, other flags, and parents of another depth', () => {
    expect(specError(() => parseSpecFlags({ preset: 'E9B' }, e4b))).toMatch(
      /^--preset: no published config named "E9B"; known: "Main model", "Config for official E2B Model", /,
    );
    expect(specError(() => parseSpecFlags({ preset: 'Main model', skip: '3' }, e4b))).toBe(
      '--preset: a published config fixes every layer; drop --skip',
    );
    const small = configOf({ num_hidden_layers: 10, num_kv_shared_layers: 4 });
    expect(specError(() => parseSpecFlags({ preset: 'Main model' }, small))).toBe(
      '--preset: "Main model" is defined for a 35-layer E4B parent; this checkpoint has 10 layers',
    );
    expect(specError(() => parseSpecFlags({ preset: 'Config for official E2B Model' }, tiny))).toBe(
      '--preset "Config for official E2B Model": width 8192 for layer 0 exceeds the parent\'s 256',
    );
  });
});

describe('spec files', () => {
  const dir = makeTempDir('specfile');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  it('reads JSON with flag-style strings or lists, and manifest-style key names', () => {
    const a = write('a.json', JSON.stringify({ skip: '20-24', ffn: '8192x30', name: 'e2b' }));
    const b = write(
      'b.json',
      JSON.stringify({ layers_to_skip: [20, 21, 22, 23, 24], ffn_hidden_dims: Array(30).fill(8192) }),
    );
    const want = { skip: [20, 21, 22, 23, 24], ffn: Array(30).fill(8192) };
    expect(parseSpecFlags({ specFile: a }, e4b)).toEqual(want);
    expect(parseSpecFlags({ specFile: b }, e4b)).toEqual(want);
  });
  it('reads YAML', () => {
    const y = write('s.yaml', 'skip: [20, 21, 22, 23, 24]\nffn:\n  - 2048 * 4 x 20\n  - 16384x10\n');
    expect(parseSpecFlags({ specFile: y }, e4b).ffn).toEqual([
      ...Array(20).fill(8192),
      ...Array(10).fill(16384),
    ]);
  });
  it('reads a preset or blocks from a file; flags override file fields', () => {
    const p = write('p.json', JSON.stringify({ preset: 'Config for official E2B Model' }));
    expect(parseSpecFlags({ specFile: p }, e4b).skip).toEqual([20, 21, 22, 23, 24]);
    const blk = write(
      'blk.json',
      JSON.stringify({ blocks: [8192, 8192, 8192, 16384, 16384, 16384, 16384], skip: '20-24' }),
    );
    expect(parseSpecFlags({ specFile: blk }, e4b).ffn).toHaveLength(30);
    expect(parseSpecFlags({ specFile: blk, skip: '' }, e4b).skip).toEqual([]);
    expect(parseSpecFlags({ specFile: blk, skip: '30' }, e4b).ffn).toHaveLength(34);
  });
  it('names the file in every error', () => {
    const bad = write('bad.json', '{"skip": [20,');
    expect(specError(() => parseSpecFlags({ specFile: bad }, e4b))).toMatch(
      /^--spec .*bad\.json: not valid JSON/,
    );
    const unknown = write('u.json', '{"skips": [1]}');
    expect(specError(() => parseSpecFlags({ specFile: unknown }, e4b))).toMatch(
      /^--spec .*u\.json: unknown key "skips"/,
    );
    const producer = write('prod.json', '{"skip": [19]}');
    expect(specError(() => parseSpecFlags({ specFile: producer }, e4b))).toMatch(
      /^--spec .*prod\.json: skip: layer 19 is a KV producer/,
    );
    expect(specError(() => parseSpecFlags({ specFile: path.join(dir, 'missing.json') }, e4b))).toMatch(
      /missing\.json: no such file$/,
    );
    expect(specError(() => parseSpecFlags({ specFile: unknown, preset: 'Main model' }, e4b))).toBe(
      '--preset: cannot be combined with --spec (put "preset" in the file instead)',
    );
  });
});

describe('compact forms', () => {
  it('round-trips run-length and range lists', () => {
    const ffn = [8192, 8192, 16384, 8192];
    expect(runLength(ffn)).toBe('8192x2,16384,8192');
    expect(parseWidthList(runLength(ffn))).toEqual(ffn);
    expect(rangeList([3, 20, 21, 22, 30])).toBe('3,20-22,30');
    expect(parseSkipList(rangeList([3, 20, 21, 22, 30]), 35)).toEqual([3, 20, 21, 22, 30]);
  });
});

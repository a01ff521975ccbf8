// End to end through the built CLI: every slice of the shared manifest must come out bit-identical.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '../../src/formats';
import { loadConfig } from '../../src/gemma3n';
import { runCli } from '../helpers/cli';
import { describeIfShared } from '../helpers/shared';
import { gemmaFixtures, leftovers, makeTempDir, manifestSlices, tensorDigests } from './util';

describeIfShared(
  'slice CLI on the shared fixtures',
  () => {
    let tmp: string;
    beforeAll(() => {
      tmp = makeTempDir('cli');
    });
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const specArgs = (skip: number[], ffn: number[]) => [
      ...(skip.length > 0 ? ['--skip', skip.join(',')] : []),
      '--ffn',
      ffn.join(','),
    ];

    const cases = manifestSlices();
    it('the manifest lists the expected slices', () => {
      expect(cases.map((c) => `${c.fixture}/${c.slice}`).sort()).toEqual(
        ['tiny-e4b/e2b-like', 'tiny-e4b/irregular', 'tiny-e4b/layer-mixed', 'tiny-vocab/skip-one'].sort(),
      );
    });

    it.each(cases.map((c) => [`${c.fixture}/${c.slice}`, c] as const))(
      '%s matches the manifest',
      (_label, c) => {
        const out = path.join(tmp, `${c.fixture}-${c.slice}`);
        const r = runCli([
          'slice',
          path.join(gemmaFixtures(), c.fixture),
          '--out',
          out,
          ...specArgs(c.ref.layers_to_skip, c.ref.ffn_hidden_dims),
        ]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^wrote .*: \d+ tensors in 1 shard\(s\)/);

        const got = tensorDigests(out);
        expect([...got.keys()].sort()).toEqual(Object.keys(c.ref.tensor_sha256).sort());
        for (const [name, sha] of Object.entries(c.ref.tensor_sha256)) {
          expect({ name, ...got.get(name) }).toEqual({ name, sha256: sha, shape: c.ref.tensor_shapes[name] });
        }
        const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
        for (const [k, v] of Object.entries(c.ref.text_config))
          expect([k, cfg.text_config[k]]).toEqual([k, v]);
        // Floats stay floats (transformers validates types strictly): the edited text keeps "0.0".
        expect(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).toMatch(
          /"activation_sparsity_pattern": \[\s*0\.95,/,
        );
        expect(loadConfig(out).text.num_hidden_layers).toBe(c.ref.ffn_hidden_dims.length);
        // Side files come along; the reference outputs of the fixture do not.
        const files = fs.readdirSync(out).sort();
        expect(files).toContain('generation_config.json');
        expect(files).toContain('README.md');
        expect(files.some((f) => f.startsWith('reference'))).toBe(false);
        const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
        expect(card).toContain(`--ffn `);
        expect(leftovers(out)).toEqual([]);
      },
    );

    it('--dry-run prints the plan and writes nothing', () => {
      const out = path.join(tmp, 'dry');
      const r = runCli([
        'slice',
        path.join(gemmaFixtures(), 'tiny-e4b'),
        '--out',
        out,
        '--skip',
        '20-24',
        '--ffn',
        '128',
        '--dry-run',
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('slice plan:');
      expect(r.stdout).toMatch(/layers\s+35\s+30/);
      expect(r.stdout).toMatch(/20\s+skipped\s+sliding\s+consumer\s+256\s+-/);
      expect(r.stdout).toContain('dry run: nothing written');
      expect(fs.existsSync(out)).toBe(false);
      expect(leftovers(out)).toEqual([]);
    });

    it('refuses to overwrite without --force, replaces with it', () => {
      const src = path.join(gemmaFixtures(), 'tiny-vocab');
      const out = path.join(tmp, 'exists');
      fs.mkdirSync(out);
      fs.writeFileSync(path.join(out, 'keep.txt'), 'x');
      const r = runCli(['slice', src, '--out', out, '--skip', '2']);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`error: --out: ${out} already exists; pass --force to replace it\n`);
      expect(fs.readdirSync(out)).toEqual(['keep.txt']);

      const f = runCli(['slice', src, '--out', out, '--skip', '2', '--force']);
      expect(f.code).toBe(0);
      expect(fs.existsSync(path.join(out, 'keep.txt'))).toBe(false);
      expect(Checkpoint.hasWeights(out)).toBe(true);
      expect(leftovers(out)).toEqual([]);
      expect(fs.readdirSync(tmp).filter((n) => n.includes('-old'))).toEqual([]);
    });

    it('refuses to write into the source', () => {
      const src = path.join(gemmaFixtures(), 'tiny-vocab');
      const r = runCli(['slice', src, '--out', src, '--skip', '2', '--force']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: --out: .* is the input source checkpoint .*; choose another path\n$/);
    });

    it('slicing a sliced checkpoint equals one slice with the composed spec', () => {
      const parent = path.join(gemmaFixtures(), 'tiny-e4b');
      const first = path.join(tmp, 'twice-1');
      const second = path.join(tmp, 'twice-2');
      const once = path.join(tmp, 'once');
      // Step 1: drop 20-24, width 192. Step 2 (indices of the 30-layer slice): drop 3 and 25 (= parent 30).
      const widths2 = Array.from({ length: 28 }, (_, i) => [64, 128, 192][i % 3]);
      expect(runCli(['slice', parent, '--out', first, '--skip', '20-24', '--ffn', '192']).code).toBe(0);
      const r2 = runCli(['slice', first, '--out', second, '--skip', '3,25', '--ffn', widths2.join(',')]);
      expect(r2.stderr).toBe('');
      expect(r2.code).toBe(0);
      expect(
        runCli(['slice', parent, '--out', once, '--skip', '3,20-24,30', '--ffn', widths2.join(',')]).code,
      ).toBe(0);

      expect(tensorDigests(second)).toEqual(tensorDigests(once));
      const cfg = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8'));
      expect(cfg(second)).toEqual(cfg(once));
      expect(cfg(once).text_config.num_kv_shared_layers).toBe(9);
      // The second slice may not widen what the first narrowed.
      const wide = runCli(['slice', first, '--out', path.join(tmp, 'wide'), '--ffn', '256']);
      expect(wide.code).toBe(2);
      expect(wide.stderr).toBe("error: --ffn: width 256 for layer 0 exceeds the parent's 192\n");
    });

    it('a small --max-shard-size gives several shards that load back exactly', () => {
      const c = manifestSlices().find((s) => s.slice === 'irregular')!;
      const out = path.join(tmp, 'sharded');
      const r = runCli([
        'slice',
        path.join(gemmaFixtures(), 'tiny-e4b'),
        '--out',
        out,
        '--max-shard-size',
        '1MB',
        ...specArgs(c.ref.layers_to_skip, c.ref.ffn_hidden_dims),
      ]);
      expect(r.code).toBe(0);
      const shards = fs.readdirSync(out).filter((f) => f.endsWith('.safetensors'));
      expect(shards.length).toBeGreaterThanOrEqual(6);
      for (const s of shards) expect(fs.statSync(path.join(out, s)).size).toBeLessThan(1_100_000);
      const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
      expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
      const got = tensorDigests(out);
      expect(Object.fromEntries([...got].map(([k, v]) => [k, v.sha256]))).toEqual(c.ref.tensor_sha256);
    });

    it('reports bad specs as one-line errors with exit code 2 and writes nothing', () => {
      const src = path.join(gemmaFixtures(), 'tiny-e4b');
      const out = path.join(tmp, 'bad');
      const cases: [string[], string][] = [
        [
          ['--skip', '19'],
          '--skip: layer 19 is a KV producer (consumers 24, 29, 34 read it); it cannot be skipped',
        ],
        [['--ffn', '128x34'], '--ffn: 34 widths given; expected 1 or 35 (one per layer)'],
        [
          ['--preset', 'Config for official E2B Model'],
          '--preset "Config for official E2B Model": width 8192 for layer 0 exceeds the parent\'s 256',
        ],
        [
          ['--skip', '2', '--max-shard-size', 'big'],
          '--max-shard-size: "big" is not a size like 5GB, 500MB or a byte count',
        ],
        [[], 'slice: give the submodel with --ffn/--skip, --blocks, --preset or --spec'],
      ];
      for (const [args, message] of cases) {
        const r = runCli(['slice', src, '--out', out, ...args]);
        expect([r.code, r.stderr]).toEqual([2, `error: ${message}\n`]);
      }
      const noOut = runCli(['slice', src, '--skip', '2']);
      expect(noOut.stderr).toBe('error: --out: required (or pass --dry-run to only print the plan)\n');
      expect(fs.existsSync(out)).toBe(false);
      expect(leftovers(out)).toEqual([]);
    });

    it('--blocks and --spec work through the CLI', () => {
      const src = path.join(gemmaFixtures(), 'tiny-e4b');
      const spec = path.join(tmp, 'spec.yaml');
      fs.writeFileSync(spec, 'skip: 20-24\nffn: [128]\n');
      const viaFile = runCli(['slice', src, '--spec', spec, '--dry-run']);
      const viaBlocks = runCli(['slice', src, '--skip', '20-24', '--blocks', '128x7', '--dry-run']);
      expect(viaFile.code).toBe(0);
      expect(viaBlocks.stdout.replace(/^slice plan:.*\n/, '')).toBe(
        viaFile.stdout.replace(/^slice plan:.*\n/, ''),
      );
      expect(viaFile.stdout).toMatch(/FFN widths\s+256x35\s+128x30/);
    });
  },
  ['fixtures/gemma3n/manifest.json', 'fixtures/gemma3n/tiny-e4b', 'fixtures/gemma3n/tiny-vocab'],
);

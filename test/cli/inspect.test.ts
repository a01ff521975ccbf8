import * as fs from 'fs';
import * as path from 'path';
import { runCli } from '../helpers/cli';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';

const fx = (name: string) => path.join(fixturesDir(), 'gemma3n', name);

describeIfShared('matformer-lab inspect', () => {
  test('--json on a config.json alone', () => {
    const r = runCli(['inspect', path.join(fx('e4b-config'), 'config.json'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers).toHaveLength(35);
    expect(j.layers[19]).toMatchObject({
      index: 19,
      type: 'full_attention',
      ffn: 16384,
      kv: 'producer',
      kv_source: null,
    });
    expect(j.layers[34]).toMatchObject({ kv: 'consumer', kv_source: 19, sparsity: 0 });
    expect(j.layers[0].sparsity).toBe(0.95);
    expect(j.params).toMatchObject({
      effective: 3980491248,
      embeddings: 537395200,
      ple_embeddings: 2348810240,
      text_total: 6866696688,
      total: null,
    });
    expect(j.checkpoint).toBeNull();
  });

  test('--skip/--ffn and --preset show the submodel (spec parsing comes from src/gemma3n)', () => {
    const cfg = path.join(fx('e4b-config'), 'config.json');
    const r = runCli(['inspect', cfg, '--skip', '20-24', '--ffn', '8192', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers).toHaveLength(30);
    expect(j.layers[20]).toMatchObject({
      index: 20,
      parent_index: 25,
      kv: 'consumer',
      kv_source: 18,
      ffn: 8192,
    });
    expect(j.params.effective).toBe(1905495648);
    expect(j.spec.skip).toEqual([20, 21, 22, 23, 24]);
    const p = JSON.parse(
      runCli(['inspect', cfg, '--preset', 'Config for E2.54B (layer-level)', '--json']).stdout,
    );
    expect(p.params.effective).toBe(2520873456);
    // The published figure (2.54 B) is shown beside ours, not instead of it.
    expect(p.published).toEqual({
      name: 'Config for E2.54B (layer-level)',
      effective_params_b: 2.54,
      mmlu_pct: 55.4,
    });
    const text = runCli(['inspect', cfg, '--preset', 'Config for E2.54B (layer-level)']).stdout;
    expect(text).toMatch(
      /published \(Config for E2\.54B \(layer-level\)\): 2\.54 B effective, MMLU 55\.4%; counted here: 2\.521 B/,
    );
    const bad = runCli(['inspect', cfg, '--skip', '18']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  test('--blocks and --spec are the same submodel flags as every other command', () => {
    const cfg = path.join(fx('e4b-config'), 'config.json');
    const blocks = JSON.parse(
      runCli(['inspect', cfg, '--blocks', '8192x3,16384x4', '--skip', '20-24', '--json']).stdout,
    );
    expect(blocks.layers).toHaveLength(30);
    expect(blocks.layers.map((l: { ffn: number }) => l.ffn)).toEqual([
      ...Array(15).fill(8192),
      ...Array(15).fill(16384),
    ]);
    const dir = tmpDir('inspect-spec');
    const specFile = path.join(dir, 'e2b.yaml');
    fs.writeFileSync(specFile, 'skip: 20-24\nffn: 8192\n');
    const viaSpec = runCli(['inspect', cfg, '--spec', specFile, '--json']);
    expect(viaSpec.code).toBe(0);
    const j = JSON.parse(viaSpec.stdout);
    expect(j.params.effective).toBe(1905495648);
    expect(j.spec.skip).toEqual([20, 21, 22, 23, 24]);
    const bad = runCli(['inspect', cfg, '--blocks', '8192x2']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'error: --blocks: 2 widths given but the parent has 7 blocks (each ends with a full-attention layer)\n',
    );
  });

  test('--json on a sharded checkpoint reports shards and the tensor check', () => {
    const r = runCli(['inspect', fx('tiny-e4b'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.checkpoint.shards).toHaveLength(8);
    expect(j.checkpoint.tensors).toBe(915);
    expect(j.checkpoint).toMatchObject({ missing: [], unexpected: [], wrong_shape: [] });
    expect(j.params.total).toBeGreaterThan(j.params.text_total);
  });

  test('the readable table', () => {
    const r = runCli(['inspect', fx('tiny-vocab')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/transformers 5\.x style/);
    expect(r.stdout).toMatch(/^\s+9\s+full\s+consumer\s+4\s+128\s+0\.00$/m);
    expect(r.stdout).toMatch(/^\s+5\s+sliding\s+producer\s+128\s+0\.00$/m);
    expect(r.stdout).toMatch(/checkpoint: 2 file\(s\)/);
    expect(r.stdout).toMatch(/all text tensors present/);
  });

  test('create-random then inspect through the CLI; a second run refuses the non-empty folder', () => {
    const out = path.join(tmpDir(), 'rnd');
    const args = ['create-random', '--config', path.join(fx('tiny-e4b'), 'config.json'), '--out', out];
    const r = runCli([...args, '--seed', '5', '--max-shard-size', '1MB']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/859 tensors in \d+ file\(s\)/);
    expect(fs.existsSync(path.join(out, 'model.safetensors.index.json'))).toBe(true);
    const j = JSON.parse(runCli(['inspect', out, '--json']).stdout);
    expect(j.checkpoint).toMatchObject({ missing: [], unexpected: [], wrong_shape: [] });
    const again = runCli(args);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`error: --out: ${out} already exists; pass --force to replace it\n`);
    expect(runCli([...args, '--force']).code).toBe(0);
  });

  test('an incomplete checkpoint prints the report, then one error line and exit 2', () => {
    const d = tmpDir();
    for (const f of fs.readdirSync(fx('tiny-vocab')))
      fs.copyFileSync(path.join(fx('tiny-vocab'), f), path.join(d, f));
    const idxPath = path.join(d, 'model.safetensors.index.json');
    const idx = JSON.parse(fs.readFileSync(idxPath, 'utf8'));
    delete idx.weight_map['model.language_model.norm.weight'];
    fs.writeFileSync(idxPath, JSON.stringify(idx));
    const r = runCli(['inspect', d]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/missing \(1\):\n\s+model\.language_model\.norm\.weight/);
    expect(r.stderr).toBe(
      `error: ${d}: checkpoint does not match its config: 1 missing and 0 wrong-shape text tensors (first: model.language_model.norm.weight); all listed above\n`,
    );
  });
});

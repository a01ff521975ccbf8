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
      kvSource: null,
    });
    expect(j.layers[34]).toMatchObject({ kv: 'consumer', kvSource: 19, sparsity: 0 });
    expect(j.layers[0].sparsity).toBe(0.95);
    expect(j.params).toMatchObject({
      effective: 3980491248,
      embeddings: 537395200,
      pleEmbeddings: 2348810240,
      textTotal: 6866696688,
      total: null,
    });
    expect(j.checkpoint).toBeNull();
  });

  test('--skip/--ffn and --preset show the submodel (spec parsing comes from src/slicing)', () => {
    const cfg = path.join(fx('e4b-config'), 'config.json');
    const r = runCli(['inspect', cfg, '--skip', '20-24', '--ffn', '8192', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers).toHaveLength(30);
    expect(j.layers[20]).toMatchObject({
      index: 20,
      parentIndex: 25,
      kv: 'consumer',
      kvSource: 18,
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
      effectiveParamsB: 2.54,
      mmluPct: 55.4,
    });
    const text = runCli(['inspect', cfg, '--preset', 'Config for E2.54B (layer-level)']).stdout;
    expect(text).toMatch(
      /published \(Config for E2\.54B \(layer-level\)\): 2\.54 B effective, MMLU 55\.4%; counted here: 2\.521 B/,
    );
    const bad = runCli(['inspect', cfg, '--skip', '18']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  test('--json on a sharded checkpoint reports shards and the tensor check', () => {
    const r = runCli(['inspect', fx('tiny-e4b'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.checkpoint.shards).toHaveLength(8);
    expect(j.checkpoint.tensors).toBe(915);
    expect(j.checkpoint).toMatchObject({ missing: [], unexpected: [], wrongShape: [] });
    expect(j.params.total).toBeGreaterThan(j.params.textTotal);
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
    expect(j.checkpoint).toMatchObject({ missing: [], unexpected: [], wrongShape: [] });
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

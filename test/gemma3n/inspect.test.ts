import * as fs from 'fs';
import * as path from 'path';
import { inspect, inspectConfig, loadConfig, resolveSource } from '../../src/gemma3n';
import { formatReport } from '../../src/cli/render/inspect';
import { UserInputError } from '../../src/formats';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';
import { writeEditedCheckpoint } from '../helpers/checkpoints';

const fx = (name: string) => path.join(fixturesDir(), 'gemma3n', name);
const P = 'model.language_model.';

describeIfShared('inspect', () => {
  test('config only (E4B): layers, roles and parameters, no checkpoint section', () => {
    const r = inspect(path.join(fx('e4b-config'), 'config.json'));
    expect(r.checkpoint).toBeNull();
    expect(r.layers).toHaveLength(35);
    expect(r.layers[18]).toEqual({
      index: 18,
      parentIndex: 18,
      type: 'sliding_attention',
      ffn: 16384,
      kv: 'producer',
      kvSource: null,
      sparsity: 0,
    });
    expect(r.layers[24]).toMatchObject({ type: 'full_attention', kv: 'consumer', kvSource: 19 });
    expect(r.params).toMatchObject({ effective: 3_980_491_248, textTotal: 6_866_696_688, total: null });
    expect(r.text.firstSharedLayer).toBe(20);
    expect(formatReport(r)).toMatch(/effective \(text, excl\. embeddings\)\s+3,980,491,248/);
    expect(formatReport(r)).toMatch(/weights: none \(config only\)/);
  });

  test('a folder holding only config.json is config only', () => {
    const d = tmpDir();
    fs.copyFileSync(path.join(fx('e2b-config'), 'config.json'), path.join(d, 'config.json'));
    const r = inspect(d);
    expect(r.checkpoint).toBeNull();
    expect(r.params.effective).toBe(1_905_495_648);
  });

  test('tiny-e4b: every text tensor present with the right shape; towers are not unexpected', () => {
    const r = inspect(fx('tiny-e4b'));
    const ck = r.checkpoint!;
    expect(ck.shards).toHaveLength(8);
    expect(ck.tensors).toBe(915);
    expect(ck.expectedText).toBe(851);
    expect(ck.optionalPresent).toBe(45);
    expect(ck).toMatchObject({ missing: [], wrongShape: [], unexpected: [] });
    expect(r.params.total).toBe(r.params.textTotal + r.params.vision! + r.params.audio!);
    const text = formatReport(r);
    expect(text).toMatch(/all text tensors present with the expected shapes/);
    expect(text).toMatch(/model-00008-of-00008\.safetensors/);
    expect(text).toMatch(/^\s+20\s+sliding\s+consumer\s+18\s+256\s+0\.00$/m);
  });

  test('consumer K/V may be absent; anything else missing, misshapen or extra is listed', async () => {
    const d = tmpDir();
    await writeEditedCheckpoint(path.join(fx('tiny-e4b'), 'config.json'), d, (ts) => {
      const out = ts
        // A re-save through newer transformers drops consumer K/V: fine.
        .filter((t) => !/layers\.(2\d|3\d)\.self_attn\.(k_proj|v_proj|k_norm)\./.test(t.name))
        // Producer K/V and an MLP weight are required.
        .filter(
          (t) =>
            t.name !== `${P}layers.18.self_attn.k_proj.weight` &&
            t.name !== `${P}layers.2.mlp.up_proj.weight`,
        )
        .map((t) => (t.name === `${P}layers.5.mlp.down_proj.weight` ? { ...t, shape: [64, 128] } : t));
      out.push({ name: `${P}layers.35.mlp.up_proj.weight`, dtype: 'BF16', shape: [2, 2] });
      out.push({ name: 'model.vision_tower.timm_model.extra.weight', dtype: 'BF16', shape: [3] });
      out.push({ name: 'lm_head.weight', dtype: 'BF16', shape: [1024, 64] });
      return out;
    });
    const ck = inspect(d).checkpoint!;
    expect(ck.optionalPresent).toBe(0);
    expect(ck.missing).toEqual([`${P}layers.2.mlp.up_proj.weight`, `${P}layers.18.self_attn.k_proj.weight`]);
    expect(ck.wrongShape).toEqual([
      { name: `${P}layers.5.mlp.down_proj.weight`, expected: [64, 256], actual: [64, 128] },
    ]);
    expect(ck.unexpected).toEqual([`${P}layers.35.mlp.up_proj.weight`]);
    const text = formatReport(inspect(d));
    expect(text).toMatch(/missing \(2\):/);
    expect(text).toMatch(/layers\.5\.mlp\.down_proj\.weight: \[64, 128\], expected \[64, 256\]/);
  });

  test('a spec shows the submodel: renumbered layers, re-derived roles, its parameters', () => {
    const cfgPath = path.join(fx('e4b-config'), 'config.json');
    const src = resolveSource(cfgPath);
    const r = inspectConfig(loadConfig(cfgPath), src, {
      spec: { skip: [20, 21, 22, 23, 24], ffn: Array(30).fill(8192) },
    });
    expect(r.layers).toHaveLength(30);
    expect(r.layers[20]).toMatchObject({ index: 20, parentIndex: 25, kv: 'consumer', kvSource: 18 });
    expect(r.layers[24]).toMatchObject({ index: 24, parentIndex: 29, type: 'full_attention', kvSource: 19 });
    expect(r.text.numKvSharedLayers).toBe(10);
    expect(r.params.effective).toBe(1_905_495_648);
    expect(r.spec).toEqual({ skip: [20, 21, 22, 23, 24], ffn: Array(30).fill(8192) });
    expect(formatReport(r)).toMatch(/layer\s+parent\s+type/);
    expect(() => inspectConfig(loadConfig(cfgPath), src, { spec: { skip: [], ffn: [1, 2] } })).toThrow(
      /2 FFN widths for 35 kept layers/,
    );
  });

  test('paths that are neither a folder nor a config.json', () => {
    expect(() => inspect('/definitely/not/here')).toThrow(UserInputError);
    expect(() => inspect(path.join(fx('tiny-e4b'), 'generation_config.jsonx'))).toThrow(/no such file/);
    expect(() => inspect(path.join(fx('tiny-e4b'), 'model-00001-of-00008.safetensors'))).toThrow(
      /expected a checkpoint folder or a config\.json/,
    );
  });
});

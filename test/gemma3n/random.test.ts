import * as fs from 'fs';
import * as path from 'path';
import {
  planShards,
  parseByteSize,
  normalQuantile,
  Checkpoint,
  INDEX_FILE,
  SINGLE_FILE,
  tensorBytes,
  UserInputError,
} from '../../src/formats';
import {
  loadConfig,
  parseConfig,
  rawTextConfig,
  inspect,
  createRandomCheckpoint,
  planTensors,
  randomTensorChunks,
} from '../../src/gemma3n';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';

const tinyCfg = () => path.join(fixturesDir(), 'gemma3n/tiny-e4b/config.json');

function stats(x: Float32Array): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean) };
}

describe('random building blocks', () => {
  test('normalQuantile matches known quantiles', () => {
    expect(normalQuantile(0.5)).toBeCloseTo(0, 12);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 8);
    expect(normalQuantile(0.05)).toBeCloseTo(-1.6448536269514722, 8);
    expect(normalQuantile(1e-5)).toBeCloseTo(-4.264890793922825, 7);
  });

  test('byte sizes', () => {
    expect(parseByteSize('123')).toBe(123);
    expect(parseByteSize('5GB')).toBe(5e9);
    expect(parseByteSize('2 GiB')).toBe(2 ** 31);
    expect(parseByteSize('1.5mb')).toBe(1.5e6);
    expect(() => parseByteSize('0')).toThrow(UserInputError);
    expect(() => parseByteSize('lots')).toThrow(/--max-shard-size/);
  });

  test('shards split greedily; an oversized tensor gets its own', () => {
    const t = (name: string, n: number) => ({ name, dtype: 'U8' as const, shape: [n] });
    const shards = planShards([t('a', 4), t('b', 4), t('c', 10), t('d', 1), t('e', 1)], 8);
    expect(shards.map((s) => s.map((x) => x.name))).toEqual([['a', 'b'], ['c'], ['d', 'e']]);
  });

  test('values do not depend on the chunk size and follow the requested distribution', () => {
    const t = { name: 'w', dtype: 'BF16' as const, shape: [300, 101], init: { mean: 0, std: 0.25 } };
    // Chunks share one buffer: copy each before the next is generated.
    const collect = (chunks: Iterable<Uint8Array>) =>
      Buffer.concat(Array.from(chunks, (c) => Buffer.from(c)));
    const whole = collect(randomTensorChunks(7, t, 1 << 20));
    const pieces = collect(randomTensorChunks(7, t, 998));
    expect(whole.length).toBe(tensorBytes(t));
    expect(Buffer.compare(whole, pieces)).toBe(0);
    const other = collect(randomTensorChunks(8, t));
    expect(Buffer.compare(whole, other)).not.toBe(0);
    const u16 = new Uint16Array(whole.buffer, whole.byteOffset, whole.length / 2);
    const f = new Float32Array(new Uint32Array(Array.from(u16, (b) => b << 16)).buffer);
    const s = stats(f);
    expect(Math.abs(s.mean)).toBeLessThan(0.01);
    expect(s.std).toBeGreaterThan(0.24);
    expect(s.std).toBeLessThan(0.26);
  });
});

describeIfShared('create-random', () => {
  test('a sharded tiny-e4b: published layout, passes inspect, sane values', async () => {
    const out = path.join(tmpDir(), 'ckpt');
    const res = await createRandomCheckpoint({ config: tinyCfg(), out, seed: 3, maxShardBytes: 1_000_000 });
    expect(res.shards.length).toBeGreaterThan(3);
    const index = JSON.parse(fs.readFileSync(path.join(out, INDEX_FILE), 'utf8'));
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(res.shards));
    expect(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).toBe(fs.readFileSync(tinyCfg(), 'utf8'));
    expect(JSON.parse(fs.readFileSync(path.join(out, 'generation_config.json'), 'utf8'))).toMatchObject({
      bos_token_id: 2,
      pad_token_id: 0,
    });
    const rep = inspect(out);
    const ck = rep.checkpoint!;
    expect(ck.missing).toEqual([]);
    expect(ck.wrongShape).toEqual([]);
    expect(ck.unexpected).toEqual([]);
    expect(ck.optionalPresent).toBe(45); // consumer layers 20..34 keep k_proj, v_proj, k_norm
    expect(ck.dtypes).toEqual({ BF16: res.tensors });
    expect(index.metadata.total_size).toBe(res.totalSize);
    expect(rep.params.vision).toBe(128 * 2048 + 2 * 2048 + 64 * 2048);
    expect(rep.params.audio).toBe(128 * 32 + 2 * 32 + 64 * 32);
    // No temporary folders are left beside the output.
    expect(fs.readdirSync(path.dirname(out))).toEqual(['ckpt']);

    const ckpt = Checkpoint.open(out);
    try {
      expect(ckpt.dataBytes).toBe(res.totalSize);
      const p = 'model.language_model.';
      for (const s of ckpt.shards) expect(s.fileBytes).toBeLessThanOrEqual(1_000_000 + 200_000); // limit + header
      const norm = stats(ckpt.readFloat32(`${p}layers.3.input_layernorm.weight`));
      expect(norm.mean).toBeGreaterThan(0.95);
      expect(norm.mean).toBeLessThan(1.05);
      const gate = stats(ckpt.readFloat32(`${p}layers.3.mlp.gate_proj.weight`)); // [256, 64]: std 1/8
      expect(gate.std).toBeGreaterThan(0.11);
      expect(gate.std).toBeLessThan(0.14);
      const down = stats(ckpt.readFloat32(`${p}layers.3.mlp.down_proj.weight`)); // [64, 256]: std 1/16
      expect(down.std).toBeGreaterThan(0.055);
      expect(down.std).toBeLessThan(0.07);
      const coefs = ckpt.readFloat32(`${p}layers.3.altup.prediction_coefs.weight`);
      expect(Math.max(...coefs.map(Math.abs))).toBeLessThan(1);
      const emb = stats(ckpt.readFloat32(`${p}embed_tokens_per_layer.weight`));
      expect(emb.std).toBeGreaterThan(0.9);
      expect(emb.std).toBeLessThan(1.1);
    } finally {
      ckpt.close();
    }
  });

  test('same seed gives the same tensors whatever the sharding; another seed differs', async () => {
    const d = tmpDir();
    await createRandomCheckpoint({
      config: tinyCfg(),
      out: path.join(d, 'a'),
      seed: 11,
      maxShardBytes: 700_000,
    });
    await createRandomCheckpoint({ config: tinyCfg(), out: path.join(d, 'b'), seed: 11 });
    await createRandomCheckpoint({ config: tinyCfg(), out: path.join(d, 'c'), seed: 12 });
    expect(fs.existsSync(path.join(d, 'b', SINGLE_FILE))).toBe(true);
    expect(fs.existsSync(path.join(d, 'b', INDEX_FILE))).toBe(false);
    const [a, b, c] = ['a', 'b', 'c'].map((x) => Checkpoint.open(path.join(d, x)));
    try {
      let same = 0;
      for (const name of a!.tensors.keys()) {
        expect(Buffer.compare(Buffer.from(a!.readBytes(name)), Buffer.from(b!.readBytes(name)))).toBe(0);
        if (Buffer.compare(Buffer.from(a!.readBytes(name)), Buffer.from(c!.readBytes(name))) === 0) same++;
      }
      expect(same).toBe(0);
    } finally {
      for (const x of [a, b, c]) x!.close();
    }
  });

  test('--sparse writes the same layout with hole data', async () => {
    const d = tmpDir();
    const dense = await createRandomCheckpoint({
      config: tinyCfg(),
      out: path.join(d, 'dense'),
      maxShardBytes: 2e6,
    });
    const sparse = await createRandomCheckpoint({
      config: tinyCfg(),
      out: path.join(d, 'sparse'),
      maxShardBytes: 2e6,
      sparse: true,
    });
    expect(sparse.shards).toEqual(dense.shards);
    for (const f of dense.shards) {
      expect(fs.statSync(path.join(d, 'sparse', f)).size).toBe(fs.statSync(path.join(d, 'dense', f)).size);
    }
    const ck = Checkpoint.open(path.join(d, 'sparse'));
    try {
      expect(ck.readFloat32('model.language_model.layers.0.mlp.up_proj.weight').every((x) => x === 0)).toBe(
        true,
      );
    } finally {
      ck.close();
    }
  });

  test('refuses a non-empty --out unless forced; --force replaces it', async () => {
    const out = path.join(tmpDir(), 'busy');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'x');
    await expect(createRandomCheckpoint({ config: tinyCfg(), out })).rejects.toThrow(
      /already exists; pass --force/,
    );
    expect(fs.readdirSync(out)).toEqual(['keep.txt']);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['busy']);
    await createRandomCheckpoint({ config: tinyCfg(), out, force: true });
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', SINGLE_FILE]);
  });

  test('a bare text config gives model.* text tensors and no towers', async () => {
    const d = tmpDir();
    const cfgFile = path.join(d, 'bare.json');
    fs.writeFileSync(cfgFile, JSON.stringify(rawTextConfig(loadConfig(tinyCfg()))));
    const plan = planTensors(parseConfig(JSON.parse(fs.readFileSync(cfgFile, 'utf8'))));
    expect(
      plan.every((t) => t.name.startsWith('model.') && !t.name.startsWith('model.language_model.')),
    ).toBe(true);
    expect(plan.some((t) => t.name.includes('embed_vision'))).toBe(false);
    const out = path.join(d, 'ckpt');
    await createRandomCheckpoint({ config: cfgFile, out });
    const rep = inspect(out);
    expect(rep.checkpoint!.textPrefix).toBe('model.');
    expect(rep.checkpoint!.missing).toEqual([]);
    expect(rep.multimodal).toBe(false);
  });

  test('a full-size sparse E4B: 16 GB of holes in ~5 GB shards, validated by inspect', async () => {
    const out = path.join(tmpDir(), 'e4b');
    const res = await createRandomCheckpoint({
      config: path.join(fixturesDir(), 'gemma3n/e4b-config/config.json'),
      out,
      sparse: true,
    });
    expect(res.shards.length).toBe(4);
    const rep = inspect(out);
    expect(rep.params.effective).toBe(3_980_491_248);
    expect(rep.checkpoint!.missing).toEqual([]);
    expect(rep.checkpoint!.wrongShape).toEqual([]);
    expect(rep.checkpoint!.tensors).toBe(851 + 8);
    // 6.87 B text parameters + the two embedders, 2 bytes each.
    expect(res.totalSize).toBe(2 * rep.params.total!);
    expect(res.totalSize).toBeGreaterThan(13.7e9);
  });
});

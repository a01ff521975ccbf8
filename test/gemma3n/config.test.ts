import * as fs from 'fs';
import * as path from 'path';
import {
  ConfigError,
  deriveKvRoles,
  loadConfig,
  parseConfig,
  rawTextConfig,
  serializeConfig,
  withTextUpdates,
} from '../../src/gemma3n';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';

const fx = (name: string) => path.join(fixturesDir(), 'gemma3n', name);
const readJson = (p: string) => JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describeIfShared('config fixtures', () => {
  test('tiny-e4b: 4.53 style, multimodal, producers 18/19 and consumers 20..34', () => {
    const cfg = loadConfig(fx('tiny-e4b'));
    expect(cfg.style).toBe('4.53');
    expect(cfg.multimodal).toBe(true);
    expect(cfg.text.num_hidden_layers).toBe(35);
    expect(cfg.text.rope_theta).toBe(1e6);
    expect(cfg.text.rope_local_base_freq).toBe(1e4);
    expect(cfg.text.sliding_window).toBe(8);
    expect(cfg.firstSharedLayer).toBe(20);
    expect(cfg.layers.filter((l) => l.kv === 'producer').map((l) => l.index)).toEqual([18, 19]);
    expect(cfg.layers.filter((l) => l.kv === 'consumer').map((l) => l.index)).toEqual(range(20, 35));
    for (const l of cfg.layers.slice(20)) expect(l.kvSource).toBe(l.type === 'full_attention' ? 19 : 18);
    expect(cfg.layers.slice(0, 18).every((l) => l.kv === 'independent' && l.kvSource === null)).toBe(true);
    expect(cfg.layers.map((l) => l.sparsity)).toEqual([...Array(10).fill(0.95), ...Array(25).fill(0)]);
    expect(cfg.layers.filter((l) => l.type === 'full_attention').map((l) => l.index)).toEqual([
      4, 9, 14, 19, 24, 29, 34,
    ]);
    expect(cfg.layers[4]!.ropeTheta).toBe(1e6);
    expect(cfg.layers[3]!.ropeTheta).toBe(1e4);
  });

  test('E4B and E2B full-size configs: producers 18 and 19', () => {
    for (const [name, L, I] of [
      ['e4b-config', 35, 16384],
      ['e2b-config', 30, 8192],
    ] as const) {
      const cfg = loadConfig(path.join(fx(name), 'config.json'));
      expect(cfg.style).toBe('4.53');
      expect(cfg.text.num_hidden_layers).toBe(L);
      expect(cfg.text.intermediate_size).toEqual(Array(L).fill(I));
      expect(cfg.text.vocab_size).toBe(262400);
      expect(cfg.firstSharedLayer).toBe(20);
      expect(cfg.layers.filter((l) => l.kv === 'producer').map((l) => l.index)).toEqual([18, 19]);
    }
  });

  test('tiny-vocab: 5.x style (rope_parameters); its roles follow from L=10, S=4', () => {
    const cfg = loadConfig(fx('tiny-vocab'));
    expect(cfg.style).toBe('5.x');
    expect(cfg.text.rope_theta).toBe(1e6);
    expect(cfg.text.rope_local_base_freq).toBe(1e4);
    expect(cfg.text.vocab_size_per_layer_input).toBe(4096);
    // F = 10 - 4 = 6; full layers are 4 and 9, so sliding consumers 6-8 read layer 5 and full 9 reads 4.
    expect(cfg.firstSharedLayer).toBe(6);
    expect(cfg.layers.map((l) => l.kv)).toEqual([
      'independent',
      'independent',
      'independent',
      'independent',
      'producer',
      'producer',
      'consumer',
      'consumer',
      'consumer',
      'consumer',
    ]);
    expect(cfg.layers.map((l) => l.kvSource)).toEqual([null, null, null, null, null, null, 5, 5, 5, 4]);
  });

  test('a bare text config (no text_config) parses to the same text settings', () => {
    const multi = loadConfig(fx('tiny-e4b'));
    const bare = parseConfig(rawTextConfig(multi), 'bare.json');
    expect(bare.multimodal).toBe(false);
    expect(bare.style).toBe('4.53');
    expect(bare.text).toEqual(multi.text);
    expect(bare.layers).toEqual(multi.layers);
  });

  test.each(['tiny-e4b', 'tiny-vocab'])(
    '%s: serialising back keeps unknown keys, key order and style',
    (name) => {
      const file = path.join(fx(name), 'config.json');
      const raw = readJson(file);
      const cfg = loadConfig(file);
      const kept = [0, 1, 2, 3, 4, 5, 8, 9];
      const updates = {
        num_hidden_layers: kept.length,
        intermediate_size: kept.map(() => 32),
        layer_types: kept.map((i) => cfg.text.layer_types[i]),
        activation_sparsity_pattern: kept.map((i) => cfg.text.activation_sparsity_pattern[i]),
        num_kv_shared_layers: 2,
      };
      const text = serializeConfig(withTextUpdates(cfg, updates));
      const out = JSON.parse(text) as Record<string, unknown>;
      expect(Object.keys(out)).toEqual(Object.keys(raw));
      const t = out.text_config as Record<string, unknown>;
      const rt = raw.text_config as Record<string, unknown>;
      expect(Object.keys(t)).toEqual(Object.keys(rt));
      for (const k of Object.keys(rt)) if (!(k in updates)) expect(t[k]).toEqual(rt[k]);
      expect(out.vision_config).toEqual(raw.vision_config);
      expect(out.audio_config).toEqual(raw.audio_config);
      // The original object is untouched.
      expect((cfg.raw.text_config as Record<string, unknown>).num_hidden_layers).toBe(rt.num_hidden_layers);
      const back = parseConfig(out, 'sliced.json');
      expect(back.style).toBe(cfg.style);
      expect(back.text.num_hidden_layers).toBe(8);
      expect(back.text.intermediate_size).toEqual(Array(8).fill(32));
      if (cfg.style === '4.53') {
        expect('rope_parameters' in t).toBe(false);
        expect(t.query_pre_attn_scalar).toBe(256);
      } else {
        expect('rope_theta' in t).toBe(false);
      }
      // Written to disk and read again, it is the same config.
      const p = path.join(tmpDir(), 'config.json');
      fs.writeFileSync(p, text);
      expect(loadConfig(p).text).toEqual(back.text);
    },
  );
});

describe('config errors', () => {
  const base = () => ({
    model_type: 'gemma3n_text',
    num_hidden_layers: 4,
    num_kv_shared_layers: 2,
    intermediate_size: [8, 8, 8, 8],
    layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
    activation_sparsity_pattern: [0.95, 0, 0, 0],
    hidden_size: 8,
    head_dim: 4,
    num_attention_heads: 2,
    num_key_value_heads: 1,
  });

  test('a small valid bare config derives roles', () => {
    const cfg = parseConfig(base());
    expect(cfg.layers.map((l) => l.kv)).toEqual(['producer', 'producer', 'consumer', 'consumer']);
    expect(cfg.layers.map((l) => l.kvSource)).toEqual([null, null, 0, 1]);
  });

  test.each([
    ['intermediate_size', [8, 8, 8], /"intermediate_size" has 3 entries but num_hidden_layers is 4/],
    ['layer_types', ['sliding_attention'], /"layer_types" has 1 entries/],
    ['activation_sparsity_pattern', [0, 0, 0, 0, 0], /"activation_sparsity_pattern" has 5 entries/],
    ['layer_types', ['sliding_attention', 'x', 'y', 'z'], /"layer_types" must be a list/],
    ['intermediate_size', [8, -1, 8, 8], /positive integers/],
    ['num_hidden_layers', 0, /at least 1/],
    ['num_hidden_layers', 2.5, /integer/],
    ['num_hidden_layers', 2 ** 53, /at most 4096/],
    ['altup_num_inputs', 1000, /"altup_num_inputs" must be at most 64/],
    ['num_kv_shared_layers', 9, /between 0 and/],
    ['hidden_activation', 'relu', /not supported/],
    ['model_type', 'llama', /not Gemma 3n/],
    ['num_key_value_heads', 3, /multiple of/],
    ['hidden_size', 0, /hidden_size/],
    ['head_dim', -4, /head_dim/],
  ])('%s = %j is a ConfigError', (key, value, message) => {
    const c: Record<string, unknown> = { ...base(), [key]: value };
    expect(() => parseConfig(c, 'cfg.json')).toThrow(ConfigError);
    expect(() => parseConfig(c, 'cfg.json')).toThrow(message);
    expect(() => parseConfig(c, 'cfg.json')).toThrow(/^cfg\.json: /);
  });

  test('a consumer type with no earlier layer of that type is rejected', () => {
    const c = {
      ...base(),
      layer_types: ['sliding_attention', 'sliding_attention', 'sliding_attention', 'full_attention'],
    };
    expect(() => parseConfig(c)).toThrow(/has no earlier layer of its type/);
  });

  test('unsupported RoPE settings are rejected in both styles', () => {
    expect(() => parseConfig({ ...base(), rope_scaling: { type: 'linear', factor: 2 } })).toThrow(
      ConfigError,
    );
    expect(() =>
      parseConfig({ ...base(), rope_parameters: { full_attention: { rope_type: 'yarn', rope_theta: 1 } } }),
    ).toThrow(/rope_type "yarn"/);
  });

  test('deriveKvRoles with no shared layers gives no producers', () => {
    const r = deriveKvRoles(['sliding_attention', 'full_attention'], 0);
    expect(r.roles).toEqual(['independent', 'independent']);
    expect(r.firstShared).toBe(2);
  });

  test('a missing or unreadable config names the file', () => {
    const d = tmpDir();
    expect(() => loadConfig(d)).toThrow(new RegExp(`${d}/config\\.json: not found`));
    fs.writeFileSync(path.join(d, 'config.json'), '{ nope');
    expect(() => loadConfig(d)).toThrow(/config\.json: is not valid JSON/);
  });
});

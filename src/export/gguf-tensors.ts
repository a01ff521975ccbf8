// Gemma 3n's tensors in GGUF, as llama.cpp's converter (`Gemma3NModel`) names and shapes them: one row
// per Hugging Face tensor suffix, with the GGUF name and the transform. Norms are stored as they are
// (Gemma 3n's RMSNorm has no +1 shift), the two embedding tables are padded with zero rows to
// `vocab_size`, and the three AltUp (un)embedding projections are stacked into one 3-D tensor.

/** How a GGUF tensor is made from its Hugging Face source(s). */
export type GgufTransform =
  | 'copy'
  /** Zero rows appended up to vocab_size (the converter pads both embedding tables). */
  | 'pad-vocab'
  /** `altup_projections.{0,1,2}` stacked along a new first axis: dims [H, H, 3]. */
  | 'stack3';

export interface GgufTensorRow {
  /** Hugging Face suffix after the text prefix (`layers.{i}.` for per-layer rows). */
  readonly hf: string;
  readonly gguf: string;
  readonly transform: GgufTransform;
  /** Always stored as F32 whatever the export dtype (1-D tensors, norms, AltUp coefficient matrices). */
  readonly f32?: true;
}

export const GGUF_GLOBAL_TENSORS: readonly GgufTensorRow[] = [
  { hf: 'altup_projections.{k}.weight', gguf: 'altup_proj.weight', transform: 'stack3' },
  { hf: 'altup_unembed_projections.{k}.weight', gguf: 'altup_unembd_proj.weight', transform: 'stack3' },
  { hf: 'embed_tokens.weight', gguf: 'token_embd.weight', transform: 'pad-vocab' },
  { hf: 'embed_tokens_per_layer.weight', gguf: 'per_layer_token_embd.weight', transform: 'pad-vocab' },
  { hf: 'norm.weight', gguf: 'output_norm.weight', transform: 'copy', f32: true },
  { hf: 'per_layer_model_projection.weight', gguf: 'per_layer_model_proj.weight', transform: 'copy' },
  {
    hf: 'per_layer_projection_norm.weight',
    gguf: 'per_layer_proj_norm.weight',
    transform: 'copy',
    f32: true,
  },
];

export const GGUF_LAYER_TENSORS: readonly GgufTensorRow[] = [
  { hf: 'altup.correct_output_scale', gguf: 'altup_correct_scale.weight', transform: 'copy', f32: true },
  { hf: 'altup.correction_coefs.weight', gguf: 'altup_correct_coef.weight', transform: 'copy', f32: true },
  { hf: 'altup.modality_router.weight', gguf: 'altup_router.weight', transform: 'copy' },
  { hf: 'altup.prediction_coefs.weight', gguf: 'altup_predict_coef.weight', transform: 'copy', f32: true },
  { hf: 'altup.router_norm.weight', gguf: 'altup_router_norm.weight', transform: 'copy', f32: true },
  { hf: 'input_layernorm.weight', gguf: 'attn_norm.weight', transform: 'copy', f32: true },
  { hf: 'laurel.linear_left.weight', gguf: 'laurel_l.weight', transform: 'copy' },
  { hf: 'laurel.linear_right.weight', gguf: 'laurel_r.weight', transform: 'copy' },
  { hf: 'laurel.post_laurel_norm.weight', gguf: 'laurel_post_norm.weight', transform: 'copy', f32: true },
  { hf: 'mlp.down_proj.weight', gguf: 'ffn_down.weight', transform: 'copy' },
  { hf: 'mlp.gate_proj.weight', gguf: 'ffn_gate.weight', transform: 'copy' },
  { hf: 'mlp.up_proj.weight', gguf: 'ffn_up.weight', transform: 'copy' },
  { hf: 'per_layer_input_gate.weight', gguf: 'inp_gate.weight', transform: 'copy' },
  { hf: 'per_layer_projection.weight', gguf: 'proj.weight', transform: 'copy' },
  { hf: 'post_attention_layernorm.weight', gguf: 'post_attention_norm.weight', transform: 'copy', f32: true },
  { hf: 'post_feedforward_layernorm.weight', gguf: 'post_ffw_norm.weight', transform: 'copy', f32: true },
  { hf: 'post_per_layer_input_norm.weight', gguf: 'post_norm.weight', transform: 'copy', f32: true },
  { hf: 'pre_feedforward_layernorm.weight', gguf: 'ffn_norm.weight', transform: 'copy', f32: true },
  { hf: 'self_attn.k_norm.weight', gguf: 'attn_k_norm.weight', transform: 'copy', f32: true },
  { hf: 'self_attn.k_proj.weight', gguf: 'attn_k.weight', transform: 'copy' },
  { hf: 'self_attn.o_proj.weight', gguf: 'attn_output.weight', transform: 'copy' },
  { hf: 'self_attn.q_norm.weight', gguf: 'attn_q_norm.weight', transform: 'copy', f32: true },
  { hf: 'self_attn.q_proj.weight', gguf: 'attn_q.weight', transform: 'copy' },
  { hf: 'self_attn.v_proj.weight', gguf: 'attn_v.weight', transform: 'copy' },
];

// The engine's two precisions. 'exact': float32 math (bf16 weights decoded exactly). 'int8', the opt-in fast
// mode: the attention and FFN projections (q, k, v, o, gate, up, down) hold int8 weights per output channel
// and multiply int8 activations per token with int32 sums; everything else stays exact.
export type Precision = 'exact' | 'int8';

export const PRECISIONS: readonly Precision[] = ['exact', 'int8'];

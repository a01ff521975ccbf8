// Gemma 3n's tensors in GGUF: the rows of the one tensor table (../gemma3n) that carry a GGUF column,
// i.e. every text tensor llama.cpp's converter writes. Vision/audio tensors have no row here: they go to
// a separate mmproj GGUF, which this exporter does not write.
import { GLOBAL_TENSORS, GlobalFamily, GgufColumn, LAYER_TENSORS, LayerFamily } from '../gemma3n';

export type GgufFamily<F> = F & { readonly gguf: GgufColumn };

function withGguf<F extends { readonly gguf?: GgufColumn }>(fs: readonly F[]): GgufFamily<F>[] {
  return fs.filter((f): f is GgufFamily<F> => f.gguf !== undefined);
}

export const GGUF_GLOBAL_TENSORS: readonly GgufFamily<GlobalFamily>[] = withGguf(GLOBAL_TENSORS);
export const GGUF_LAYER_TENSORS: readonly GgufFamily<LayerFamily>[] = withGguf(LAYER_TENSORS);

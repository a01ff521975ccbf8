// Prompt lengths are checked before any weights load: a question whose prompt exceeds the model's
// max_position_embeddings is refused up front with one line, instead of an allocation of hundreds of GB later.
import { type MmluDataset, questionsOf } from './dataset';
import { EvalInputError } from './errors';
import { fewShotPrefix, formatQuestion } from './prompts';
import type { Subset } from './subset';
import type { TextTokenizer } from './tokenizer';

/**
 * Throws on the first question of `subset` whose whole prompt (few-shot prefix + question) has more than
 * `maxTokens` tokens. A prompt of n UTF-8 bytes has at most n + 1 tokens (<bos>, then at least one byte per
 * token), so only prompts longer than the limit in bytes are tokenized here.
 */
export function checkPromptLengths(
  tok: TextTokenizer,
  ds: MmluDataset,
  subset: Subset,
  shots: number,
  maxTokens: number,
): void {
  const prefixes = new Map<string, string>();
  for (const it of subset.items) {
    let prefix = prefixes.get(it.subject);
    if (prefix === undefined) {
      prefix = fewShotPrefix(ds, it.subject, shots);
      prefixes.set(it.subject, prefix);
    }
    const q = questionsOf(ds, subset.split, it.subject)[it.index];
    if (!q) continue; // evaluate reports a missing question
    const text = prefix + formatQuestion(q, false);
    if (Buffer.byteLength(text, 'utf8') + 1 <= maxTokens) continue;
    const n = tok.encode(text, true).length;
    if (n > maxTokens) {
      throw new EvalInputError(
        `${ds.source}: ${it.subject} ${subset.split} question #${it.index} has a ${n}-token ${shots}-shot prompt; ` +
          `the model takes at most ${maxTokens} (max_position_embeddings)`,
      );
    }
  }
}

// MMLU's ChoiceScorer on the engine: the shared prefix (few-shot examples) runs once into a KV cache; suffixes
// (questions) run in groups that all read that cache's K/V (batch stride 0, never copied per row), and only
// their last position goes through the restricted head (choice logits + full-vocabulary log-sum-exp, never
// [T, vocab]).
import type { TextModel } from './engine';

export interface ScorerOptions {
  /** Suffixes per forward (default 8): bounds the group's activations and own K/V (group × suffix). */
  groupSize?: number;
  /**
   * false: copy the prefix K/V into every row of a group (`KvCache.broadcast`, the path before shared-prefix
   * attention), kept to measure the two against each other on a GPU; default true (no copies).
   */
  sharePrefix?: boolean;
}

/** Structurally an evaluation `ChoiceScorer` (the engine does not depend on the evaluation stages). */
export class EngineScorer {
  private readonly groupSize: number;
  private readonly sharePrefix: boolean;

  constructor(
    readonly model: TextModel,
    opts: ScorerOptions = {},
  ) {
    this.groupSize = opts.groupSize ?? 8;
    this.sharePrefix = opts.sharePrefix ?? true;
    if (!Number.isInteger(this.groupSize) || this.groupSize < 1)
      throw new RangeError('groupSize must be a positive integer');
  }

  async scoreSuffixes(
    prefix: readonly number[],
    suffixes: readonly (readonly number[])[],
    choiceIds: readonly number[],
  ): Promise<number[][]> {
    if (prefix.length === 0) throw new RangeError('scoreSuffixes: the prefix must not be empty');
    if (suffixes.some((s) => s.length === 0))
      throw new RangeError('scoreSuffixes: suffixes must not be empty');
    if (suffixes.length === 0) return [];
    const prefixCache = this.model.newCache(1);
    try {
      await this.model.prefill([prefix], prefixCache);
      const out: number[][] = [];
      for (let g = 0; g < suffixes.length; g += this.groupSize) {
        const group = suffixes.slice(g, g + this.groupSize);
        const cache = this.sharePrefix
          ? prefixCache.share(group.length)
          : prefixCache.broadcast(group.length);
        try {
          const rows = await this.model.forward(group, { positions: 'last', vocabIds: choiceIds, cache });
          for (const [row] of rows) {
            if (!row) throw new Error('the forward returned no row for a suffix');
            out.push(Array.from(row.logits, (z) => z - row.logsumexp));
          }
        } finally {
          cache.dispose();
        }
      }
      return out;
    } finally {
      prefixCache.dispose();
    }
  }
}

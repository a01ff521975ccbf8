/**
 * The only thing evaluation needs from a model. The engine implements it with a prefix KV cache: run `prefix`
 * once, then each suffix on top of the cached prefix.
 */
export interface ChoiceScorer {
  /**
   * For each suffix: log-softmax over the FULL vocabulary, at the last position of prefix ++ suffix, read at
   * choiceIds. `prefix` is never empty (it starts with `<bos>`); suffixes are non-empty. Result: one row per
   * suffix, one number per choice id.
   */
  scoreSuffixes(
    prefix: readonly number[],
    suffixes: readonly (readonly number[])[],
    choiceIds: readonly number[],
  ): Promise<number[][]>;
}

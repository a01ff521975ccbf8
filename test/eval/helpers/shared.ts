import * as path from 'node:path';
import { describeIfPresent, sharedDir } from '../../helpers/shared';

/** The shared data/fixtures folder beside the repository (override with MATFORMER_SHARED). */
export const SHARED = sharedDir();
export const MMLU_DATA = process.env.MATFORMER_MMLU_DATA ?? path.join(SHARED, 'data/mmlu');
export const MMLU_DOC = path.join(SHARED, 'docs/mmlu-protocol.md');
export const MMLU_REFERENCE = path.join(SHARED, 'fixtures/gemma3n/tiny-vocab.mmlu-reference.json');

/** `describe` when every path exists, else one skipped test carrying the reason. */
export function describeWith(paths: readonly string[], name: string, fn: () => void): void {
  describeIfPresent(name, paths, fn);
}

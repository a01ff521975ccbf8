import { existsSync } from 'node:fs';
import * as path from 'node:path';

/** The shared data/fixtures folder beside the repository (override with MATFORMER_SHARED). */
export const SHARED = process.env.MATFORMER_SHARED ?? path.resolve(__dirname, '../../../../shared');
export const MMLU_DATA = process.env.MATFORMER_MMLU_DATA ?? path.join(SHARED, 'data/mmlu');
export const MMLU_DOC = path.join(SHARED, 'docs/mmlu-protocol.md');
export const MMLU_REFERENCE = path.join(SHARED, 'fixtures/gemma3n/tiny-vocab.mmlu-reference.json');

/** `describe` when every path exists, else `describe.skip` with the reason printed once. */
export function describeWith(paths: readonly string[], name: string, fn: () => void): void {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) return describe(name, fn);
  console.warn(
    `SKIPPED "${name}": missing ${missing.join(', ')} (set MATFORMER_SHARED to the shared folder)`,
  );
  describe.skip(name, fn);
}

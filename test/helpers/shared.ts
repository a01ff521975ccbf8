// Locates the shared fixtures/data folder (outside the repo, not shipped). Tests that need it skip with a
// printed reason when it is absent, so a bare clone still runs the rest of the suite.
import * as fs from 'fs';
import * as path from 'path';

/** The shared folder: $MATFORMER_SHARED, else `<repo>/../shared`. */
export function sharedDir(): string {
  const env = process.env.MATFORMER_SHARED;
  return path.resolve(env && env.length > 0 ? env : path.join(__dirname, '..', '..', '..', 'shared'));
}

/** `<shared>/fixtures`. */
export function fixturesDir(): string {
  return path.join(sharedDir(), 'fixtures');
}

const warned = new Set<string>();

/**
 * `describe` when every path in `paths` exists. Otherwise the reason is printed once and `fn` is never called
 * (describe.skip would still run it, and a body that reads fixtures while collecting tests would then fail):
 * one skipped test carries the reason.
 */
export function describeIfPresent(name: string, paths: readonly string[], fn: () => void): void {
  const missing = paths.filter((p) => !fs.existsSync(p));
  if (missing.length === 0) {
    describe(name, fn);
    return;
  }
  const reason = `skipping "${name}": shared data not found at ${missing.join(', ')} (set MATFORMER_SHARED)`;
  if (!warned.has(reason)) {
    warned.add(reason);
    console.warn(reason);
  }
  describe(name, () => {
    test.skip(reason, () => undefined);
  });
}

/** `describe` when the shared folder and every `required` path under it (relative to sharedDir()) exist. */
export function describeIfShared(name: string, fn: () => void, required: string[] = []): void {
  const root = sharedDir();
  describeIfPresent(name, [root, ...required.map((r) => path.join(root, r))], fn);
}

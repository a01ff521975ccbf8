import { existsSync } from 'fs';
import path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const tiers = require('../tiers.js') as { slow: string[]; heavy: string[] };
const root = path.resolve(__dirname, '..', '..');

describe('test tiers', () => {
  test('every suite named in a tier exists (a stale name would silently move nothing)', () => {
    for (const f of [...tiers.slow, ...tiers.heavy])
      expect({ f, exists: existsSync(path.join(root, f)) }).toEqual({ f, exists: true });
  });

  test('no suite is in two tiers', () => {
    const all = [...tiers.slow, ...tiers.heavy];
    expect(new Set(all).size).toBe(all.length);
  });
});

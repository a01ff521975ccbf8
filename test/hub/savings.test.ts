// The README's "bytes saved" figure for slicing E2B from the Hub is what a plan over the E4B inventory says.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatBytes } from '../../src/formats';
import { repoRoot } from '../helpers/cli';
import { describeIfShared, sharedDir } from '../helpers/shared';
import { e2bSavings } from './savings';

const INVENTORY = 'fixtures/gemma3n/e4b-inventory.json';

describeIfShared(
  'bytes read when slicing E2B from the Hub',
  () => {
    test('match the README', () => {
      const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
      const text = e2bSavings(path.join(sharedDir(), INVENTORY), true);
      const all = e2bSavings(path.join(sharedDir(), INVENTORY), false);
      expect(text.parentBytes).toBe(all.parentBytes);
      // Column slices read whole rows, so reads exceed the output, and --text-only reads less.
      expect(text.readBytes).toBeGreaterThan(text.outputBytes);
      expect(text.readBytes).toBeLessThan(all.readBytes);
      const pct = (s: typeof text) =>
        `${((100 * (s.parentBytes - s.readBytes)) / s.parentBytes).toFixed(1)}%`;
      const line =
        `reads ${formatBytes(text.readBytes)} of E4B's ${formatBytes(text.parentBytes)} with \`--text-only\` ` +
        `(saves ${formatBytes(text.parentBytes - text.readBytes)}, ${pct(text)}) and writes ` +
        `${formatBytes(text.outputBytes)}; without \`--text-only\` it reads ${formatBytes(all.readBytes)} ` +
        `(saves ${formatBytes(all.parentBytes - all.readBytes)}, ${pct(all)})`;
      expect(readme.replace(/\s+/g, ' ')).toContain(line);
    });
  },
  [INVENTORY],
);

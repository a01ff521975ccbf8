// The layering lint rule (eslint.config.mjs) really rejects wrong-way and deep imports, and lets right-way
// imports through: linted through ESLint's Node API on made-up files, the way `npm run lint` sees them.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');

// ESLint loads its flat config with a dynamic import, which jest's module sandbox does not allow: the cases
// are linted in one plain Node process through ESLint's Node API (`lintText` with a made-up file path).
const LINT = `
const { ESLint } = require('eslint');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const eslint = new ESLint({ cwd: process.cwd() });
Promise.all(cases.map(async ([file, code]) => {
  const [r] = await eslint.lintText(code, { filePath: require('path').resolve(file) });
  return r.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
})).then((out) => process.stdout.write(JSON.stringify(out)));
`;

function layeringErrors(cases: readonly (readonly [string, string])[]): string[][] {
  const r = spawnSync(process.execPath, ['-e', LINT], {
    cwd: root,
    input: JSON.stringify(cases),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`eslint failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[][];
}

const WRONG: readonly (readonly [string, string, RegExp])[] = [
  [
    'src/formats/wrong.ts',
    "import { loadConfig } from '../gemma3n';\nexport const f = loadConfig;\n",
    /src\/formats may import only nothing/,
  ],
  [
    'src/gemma3n/wrong.ts',
    "export { planSlice } from '../slicing';\n",
    /src\/gemma3n may import only formats, hub/,
  ],
  [
    'src/engine/wrong.ts',
    "import type { SlicePlan } from '../slicing';\nexport type P = SlicePlan;\n",
    /src\/engine may import only/,
  ],
  [
    'src/eval/wrong.ts',
    "import { Engine } from '../engine';\nexport const e = Engine;\n",
    /src\/eval may import only/,
  ],
  [
    'src/slicing/wrong.ts',
    "import { main } from '../cli/main';\nexport const m = main;\n",
    /src\/slicing may import only/,
  ],
  [
    'src/sweep/wrong.ts',
    "import { main } from '../cli';\nexport const m = main;\n",
    /src\/sweep may import only/,
  ],
  [
    'src/cli/commands/wrong.ts',
    "import { planSlice } from '../../slicing/plan';\nexport const p = planSlice;\n",
    /only through its index\.ts/,
  ],
];

const RIGHT: readonly (readonly [string, string])[] = [
  [
    'src/gemma3n/right.ts',
    "import { UserInputError } from '../formats';\nexport const e = UserInputError;\n",
  ],
  [
    'src/slicing/right.ts',
    "import { loadConfig } from '../gemma3n';\nimport { numel } from '../formats';\nexport const f = [loadConfig, numel];\n",
  ],
  [
    'src/engine/right.ts',
    "import { deriveSubmodel } from '../gemma3n';\nimport { KvCache } from './cache';\nexport const f = [deriveSubmodel, KvCache];\n",
  ],
  [
    'src/sweep/right.ts',
    "import { evaluate } from '../eval';\nimport { Engine } from '../engine';\nexport const f = [evaluate, Engine];\n",
  ],
  [
    'src/cli/commands/right.ts',
    "import { planSlice } from '../../slicing';\nimport { ProgressBar } from '../progress';\nexport const f = [planSlice, ProgressBar];\n",
  ],
];

describe('layering lint rule', () => {
  const results = layeringErrors([...WRONG.map(([f, c]) => [f, c] as const), ...RIGHT]);

  test.each(WRONG.map(([file, , message], i) => [file, message, i] as const))(
    '%s: a wrong-way or deep import fails',
    (_file, message, i) => {
      const errors = results[i] ?? [];
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.join('\n')).toMatch(message);
    },
  );

  test.each(RIGHT.map(([file], i) => [file, WRONG.length + i] as const))(
    '%s: a right-way import passes',
    (_file, i) => {
      expect(results[i]).toEqual([]);
    },
  );
});

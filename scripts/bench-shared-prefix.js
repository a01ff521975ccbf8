// MMLU-style scoring after a shared prefix, as one process: B suffixes of T tokens per group against a prefix
// of P tokens (random ids), as the engine's scorer runs them. Prints one JSON line: the scoring rate without
// the prefix's prefill, and the backend bytes a group holds after its forward (TF.js's count). Runs against any build of the library (dist/lib.js),
// so two commits can be timed the same way:
//   node scripts/bench-shared-prefix.js <model dir> --backend wasm --prefix 512 --batch 8 --tokens 16 --groups 2
const path = require('node:path');
const { engine } = require(path.resolve(process.argv[2] === '--lib' ? process.argv[3] : 'dist/lib.js'));

function flag(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
}

async function main() {
  const dir = process.argv.find(
    (a, i) => i >= 2 && !a.startsWith('--') && !process.argv[i - 1].startsWith('--'),
  );
  if (!dir)
    throw new Error('usage: bench-shared-prefix.js <model dir> [--backend B] [--prefix P] [--batch B]');
  const backend = flag('backend', 'wasm');
  const P = Number(flag('prefix', 512));
  const B = Number(flag('batch', 8));
  const T = Number(flag('tokens', 16));
  const groups = Number(flag('groups', 2));
  await engine.initBackend(backend);
  const e = await engine.Engine.load(dir, { backend });
  const tf = require('@tensorflow/tfjs-core');
  const V = Math.min(4000, e.config.text.vocab_size);
  let s = 1;
  const id = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), 3 + (s % (V - 3)));
  const prefix = Array.from({ length: P }, id);
  const suffixes = Array.from({ length: B * groups }, (_, i) => Array.from({ length: T - (i % 3) }, id));
  const model = e.view();
  const scorer = new engine.EngineScorer(model, { groupSize: B });
  const choices = [10, 11, 12, 13];
  await scorer.scoreSuffixes(prefix.slice(0, 8), suffixes.slice(0, B), choices); // warm-up: compile programs
  const c = model.newCache(1);
  let t0 = performance.now();
  await model.prefill([prefix], c);
  const prefillS = (performance.now() - t0) / 1000;
  // The scorer's group loop: each group against the prefix cache, shared where this build can (`share`), else
  // the per-row copy (`broadcast`) the scorer made before.
  const mode = typeof c.share === 'function' ? 'share' : 'broadcast';
  let scoringS = 0;
  let held = 0;
  for (let g = 0; g < groups; g++) {
    const group = suffixes.slice(g * B, (g + 1) * B);
    const before = tf.memory().numBytes;
    t0 = performance.now();
    const cache = c[mode](group.length);
    await model.forward(group, { positions: 'last', vocabIds: choices, cache });
    scoringS += (performance.now() - t0) / 1000;
    held = Math.max(held, tf.memory().numBytes - before);
    cache.dispose();
  }
  c.dispose();
  console.log(
    JSON.stringify({
      backend,
      mode,
      prefix: P,
      batch: B,
      tokens: T,
      questions: suffixes.length,
      prefill_s: prefillS,
      scoring_s: scoringS,
      questions_per_s: suffixes.length / scoringS,
      group_held_bytes: held,
    }),
  );
  e.dispose();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

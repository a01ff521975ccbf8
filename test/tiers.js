// Which suites run in which tier (one table; jest.config.js reads it).
//   npm test            everything except `slow` (a few minutes on 2 cores)
//   npm run test:slow   only `slow` (the CLI end-to-end batteries: each spawns the CLI tens of times)
//   npm run test:all    both (what CI runs; also plain `npx jest`)
//   npm run test:fast   everything except `slow` and `heavy` (unit tests, under a minute)
// Times are seconds of one suite on the 2-core development machine (2026-12-02), for orientation.
module.exports = {
  slow: [
    'test/cli/eval.test.ts', // ~150 s: eval, resume, journals through the CLI
    'test/engine/batch-cache.test.ts', // ~50 s
    'test/cli/report.test.ts', // ~45 s
    'test/engine/cli.test.ts', // ~45 s
    'test/cli/hardening.test.ts', // ~40-100 s: the fault battery
    'test/engine/leaks.test.ts', // ~35 s
    'test/sweep/cli.test.ts', // ~35-70 s: sweeps, kill -9 resume
    'test/sweep/fast-rungs.test.ts', // ~80 s: a sweep with an int8 rung, kill -9 resume
    'test/cli/eval-int8.test.ts', // ~45 s: eval --precision int8, agreement, kill and resume
    'test/cli/bad-input.test.ts', // ~30 s
    'test/engine/scorer.test.ts', // ~20 s
    'test/hub/slice.test.ts', // ~60 s: slice/inspect hf:// against the local fake Hub
    'test/hub/download.test.ts', // ~40 s: downloads, resume, kill and resume through the CLI
    'test/distributed/workers.test.ts', // 77 s of CPU (5 min wall with the machine shared): a PostgreSQL server, 3 workers
    'test/export/export-best.test.ts', // ~60 s CPU: two sweeps, export-best and export through the CLI
  ],
  heavy: [
    'test/engine/parity.test.ts',
    'test/engine/parity-webgpu.test.ts',
    'test/eval/tokenizer.test.ts',
    'test/gemma3n/random.test.ts',
    'test/formats/safetensors.test.ts',
    'test/notebooks/notebook.test.ts',
    'test/export/llama-cpp.test.ts',
    'test/slicing/slice-cli.test.ts',
    'test/engine/units.test.ts',
    'test/sweep/shared-eval.test.ts',
    'test/cli/inspect.test.ts',
    'test/engine/kernels.test.ts',
    'test/engine/shared-prefix.test.ts', // ~40 s: cpu, wasm and webgpu engines, memory profiles
    'test/engine/int8-engine.test.ts', // ~200 s: int8 against exact on both fixtures, cpu and webgpu
  ],
};

// The engine's side of the GPU-machine benchmark (scripts/device/h200-bench.sh runs it part by part):
//   node dist/h200-bench.js speed <ckpt> <out.json> [backend]
//   node dist/h200-bench.js mmlu  <ckpt> <mmlu-dir> <per-subject> <out.json> <prompts.json> [backend]
//   node dist/h200-bench.js sweep <ckpt> <mmlu-dir> <per-subject> <out.json> <prompts.json> [backend] [A B]
//                                    (published configs A..B-1, default all 16)
//   node dist/h200-bench.js prompts <ckpt> <mmlu-dir> <per-subject> <prompts.json>
//   node dist/h200-bench.js merge <part.json>...      (prints the one JSON object)
//   node dist/h200-bench.js kernels <ckpt> <out.json> [table;table;...]
//                                    (prefill 8x512 and decode b1 per matmul table, one load; see h200-kernels.sh)
// BENCH_TOKENS (default 512) shortens the sequences for a dry run on a small model.
// `prompts.json` receives the token ids of every scored prompt and the choice ids, so transformers scores
// exactly the same inputs without a tokenizer of its own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  EngineScorer,
  type OpenedModel,
  benchPrompts,
  matMulTable,
  openModel,
  profilePhase,
  runBench,
  setGateUpFusion,
  setMatMulTable,
} from '../../src/engine';
import {
  LETTERS,
  type MmluDataset,
  type Subset,
  choiceTokenIds,
  evaluate,
  loadMmlu,
  loadTokenizer,
  questionsOf,
  selectSubset,
  tokenizeSubject,
  type TextTokenizer,
} from '../../src/eval';
import { loadConfig, loadPublishedConfigs, parseSpecFlags } from '../../src/gemma3n';

type Json = Record<string, unknown>;

function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  fs.renameSync(tmp, file);
}

/** WebGPU buffers allocated by TF.js (its pool never shrinks by itself): the GPU memory we hold. */
function gpuBytes(): number {
  const be = tf.backend() as unknown as { bufferManager?: { numBytesAllocated?: number } };
  return be.bufferManager?.numBytesAllocated ?? tf.memory().numBytes;
}

const TOKENS = Number(process.env.BENCH_TOKENS ?? 512);

async function speed(dir: string, out: string, backend: string): Promise<void> {
  const opened = await openModel(dir, { backend });
  let peak = gpuBytes();
  const res: Json = {
    adapter: opened.engine.backend.detail,
    backend: opened.engine.backend.name,
    load_s: opened.loadSeconds,
    weights_gpu_bytes: opened.engine.weights.bytes,
  };
  for (const [batch, steps] of [
    [1, 16],
    [8, 8],
  ] as const) {
    // The batch-8 run also profiles prefill, decode and an MMLU-shaped batch, op by op.
    const r = await runBench(opened, {
      batch,
      tokens: TOKENS,
      decodeSteps: steps,
      seed: 1,
      profile: batch === 8,
    });
    if (r.profile) res.profile_8x512 = r.profile;
    peak = Math.max(peak, gpuBytes());
    res[`prefill_${batch}x512`] = r.prefill.tokens_per_second;
    res[`decode_b${batch}`] = r.decode.tokens_per_second;
    res[`decode_b${batch}_s_per_step`] = r.decode.seconds_per_step;
    process.stderr.write(`${JSON.stringify({ batch, prefill: r.prefill, decode: r.decode })}\n`);
  }
  res.peak_gpu_bytes = Math.max(peak, gpuBytes());
  opened.engine.dispose();
  writeJson(out, res);
}

/** Whole prompts (ids) and golds of a subset, as the evaluation tokenises them. */
function dumpPrompts(tok: TextTokenizer, ds: MmluDataset, subset: Subset, file: string): void {
  const bySubject = new Map<string, number[]>();
  for (const it of subset.items) bySubject.set(it.subject, [...(bySubject.get(it.subject) ?? []), it.index]);
  const prompts: { subject: string; index: number; gold: string; ids: number[] }[] = [];
  for (const [subject, indices] of bySubject) {
    const all = questionsOf(ds, subset.split, subject);
    const qs = indices.map((i) => all[i]!);
    tokenizeSubject(tok, ds, qs, 5).forEach((p, j) =>
      prompts.push({
        subject,
        index: indices[j]!,
        gold: LETTERS[p.question.answer]!,
        ids: [...p.prefix, ...p.suffix],
      }),
    );
  }
  writeJson(file, { choice_ids: choiceTokenIds(tok), prompts });
}

/** What the mmlu and sweep parts share: checkpoint, data, subset size, output, prompt dump, backend. */
interface EvalJob {
  dir: string;
  data: string;
  perSubject: number;
  out: string;
  dump: string;
  backend: string;
}

/** Loads the data and tokenizer, selects the subset and writes its prompt ids for transformers. */
async function prepareEval(job: EvalJob) {
  const dataset = await loadMmlu(job.data);
  const tokenizer = await loadTokenizer(job.dir);
  const subset = selectSubset(dataset, { limitPerSubject: job.perSubject });
  dumpPrompts(tokenizer, dataset, subset, job.dump);
  return { dataset, tokenizer, subset };
}

async function mmlu(job: EvalJob) {
  const { dir, out, backend } = job;
  const { dataset, tokenizer, subset } = await prepareEval(job);
  const opened = await openModel(dir, { backend });
  const scorer = new EngineScorer(opened.model, { groupSize: 8 });
  // Warm-up on one subject's first questions (shader compilation), not timed.
  const warm = selectSubset(dataset, { subjects: [subset.items[0]!.subject], limitPerSubject: 2 });
  await evaluate({ scorer, tokenizer, dataset, subset: warm, shots: 5 });
  const { results, predictions } = await evaluate({ scorer, tokenizer, dataset, subset, shots: 5 });
  writeJson(out, {
    mmlu_questions: results.overall.n,
    mmlu_seconds: results.timing.seconds,
    mmlu_questions_per_s: results.timing.questions_per_s,
    mmlu_acc: results.overall.acc,
    mmlu_tokens_processed: results.timing.tokens_processed,
    mmlu_tokens_naive: results.timing.tokens_naive,
    mmlu_peak_gpu_bytes: gpuBytes(),
    predictions: predictions.map((p) => [p.subject, p.index, p.pred, ...p.logprobs]),
  });
  opened.engine.dispose();
}

async function sweep(job: EvalJob, range: [number, number]) {
  const { dir, out, backend } = job;
  const { dataset, tokenizer, subset } = await prepareEval(job);
  const config = loadConfig(dir);
  const opened = await openModel(dir, { backend });
  const weights = opened.engine.weights.bytes;
  const t0 = performance.now();
  const configs: Json[] = [];
  let extraMax = 0;
  for (const c of loadPublishedConfigs().slice(...range)) {
    const spec = parseSpecFlags({ preset: c.name }, config);
    const t = performance.now();
    const model = opened.engine.view(spec);
    try {
      extraMax = Math.max(extraMax, model.extraBytes);
      const scorer = new EngineScorer(model, { groupSize: 8 });
      const { results } = await evaluate({ scorer, tokenizer, dataset, subset, shots: 5 });
      configs.push({ name: c.name, acc: results.overall.acc, seconds: (performance.now() - t) / 1000 });
      process.stderr.write(`${JSON.stringify(configs[configs.length - 1])}\n`);
    } finally {
      model.dispose();
    }
  }
  writeJson(out, {
    sweep_questions: subset.items.length,
    sweep_configs: configs.length,
    sweep_seconds: (performance.now() - t0) / 1000,
    sweep_load_s: opened.loadSeconds,
    sweep_view_extra_bytes_max: extraMax,
    sweep_weights_bytes: weights,
    sweep: configs,
  });
  opened.engine.dispose();
}

/** int8 agreement with exact mode from two mmlu parts' predictions (null when either is missing). */
function agreement(exact: unknown, fast: unknown): Json | null {
  if (!Array.isArray(exact) || !Array.isArray(fast)) return null;
  const key = (p: unknown[]) => `${p[0]}#${p[1]}`;
  const f = new Map(fast.map((p: unknown[]) => [key(p), p]));
  let same = 0;
  let maxd = 0;
  for (const p of exact as unknown[][]) {
    const q = f.get(key(p));
    if (!q) continue;
    if (q[2] === p[2]) same++;
    for (let i = 3; i < 7; i++) maxd = Math.max(maxd, Math.abs(Number(q[i]) - Number(p[i])));
  }
  return { predictions: same / exact.length, max_dlogprob: maxd };
}

function merge(files: string[]): void {
  const part: Record<string, Json> = {};
  for (const f of files) part[path.basename(f, '.json')] = JSON.parse(fs.readFileSync(f, 'utf8')) as Json;
  const get = (p: string, k: string): unknown => part[p]?.[k] ?? null;
  const notebookParts = Object.keys(part).filter((k) => k.startsWith('notebook'));
  const notebookSeconds =
    notebookParts.length > 0
      ? notebookParts.reduce((n, k) => n + Number(part[k]!.notebook_seconds), 0)
      : null;
  const notebookConfigs = notebookParts.reduce((n, k) => n + Number(part[k]!.notebook_configs), 0);
  // Ours as one sweep: one load, then every view (run in two processes only to fit the time per call).
  const sweepParts = Object.keys(part).filter((k) => k.startsWith('sweep'));
  const sweepSeconds =
    sweepParts.length > 0
      ? Number(part[sweepParts[0]!]!.sweep_load_s) +
        sweepParts.reduce((n, k) => n + Number(part[k]!.sweep_seconds), 0)
      : null;
  const sweepConfigs = sweepParts.reduce((n, k) => n + Number(part[k]!.sweep_configs), 0);
  const viewExtra = Math.max(0, ...sweepParts.map((k) => Number(part[k]!.sweep_view_extra_bytes_max)));
  const torch = (k: string) => get('torch', k);
  const out = {
    date: new Date().toISOString(),
    commit: get('meta', 'commit'),
    adapter: get('speed', 'adapter'),
    gpu: get('torch', 'gpu'),
    tokens: get('meta', 'tokens'),
    prefill_1x512: {
      ours_exact: get('speed', 'prefill_1x512'),
      ours_int8: get('speed_int8', 'prefill_1x512'),
      torch_f32: torch('f32_prefill_1x512'),
      torch_bf16: torch('bf16_prefill_1x512'),
    },
    prefill_8x512: {
      ours_exact: get('speed', 'prefill_8x512'),
      ours_int8: get('speed_int8', 'prefill_8x512'),
      torch_f32: torch('f32_prefill_8x512'),
      torch_bf16: torch('bf16_prefill_8x512'),
    },
    decode_b1: {
      ours_exact: get('speed', 'decode_b1'),
      ours_int8: get('speed_int8', 'decode_b1'),
      torch_bf16: torch('bf16_decode_b1'),
      torch_f32: torch('f32_decode_b1'),
    },
    decode_b8: {
      ours_exact: get('speed', 'decode_b8'),
      ours_int8: get('speed_int8', 'decode_b8'),
      torch_bf16: torch('bf16_decode_b8'),
      torch_f32: torch('f32_decode_b8'),
    },
    mmlu_5shot: {
      questions: get('mmlu', 'mmlu_questions'),
      ours_exact: get('mmlu', 'mmlu_questions_per_s'),
      ours_int8: get('mmlu_int8', 'mmlu_questions_per_s'),
      torch_bf16_loop: torch('bf16_mmlu_questions_per_s'),
      ours_acc: get('mmlu', 'mmlu_acc'),
      torch_bf16_acc: torch('bf16_mmlu_acc'),
      ours_tokens_processed: get('mmlu', 'mmlu_tokens_processed'),
      tokens_naive: get('mmlu', 'mmlu_tokens_naive'),
    },
    int8_agreement: agreement(get('mmlu', 'predictions'), get('mmlu_int8', 'predictions')),
    published_sweep: {
      questions: get('sweep_a', 'sweep_questions'),
      configs: sweepConfigs,
      ours_s: sweepSeconds,
      notebook_way_s: notebookSeconds,
      notebook_configs: notebookConfigs,
      view_extra_bytes_max: viewExtra,
    },
    weights_gpu_bytes: {
      exact: get('speed', 'weights_gpu_bytes'),
      int8: get('speed_int8', 'weights_gpu_bytes'),
    },
    peak_gpu_bytes: {
      ours_exact: get('speed', 'peak_gpu_bytes'),
      torch_f32: torch('f32_peak_bytes'),
      torch_bf16: torch('bf16_peak_bytes'),
    },
    parts: Object.fromEntries(Object.entries(part).map(([k, v]) => [k, { ...v, predictions: undefined }])),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

/**
 * The matmul tables to compare, best guess first (a timeout keeps what was measured): `name=table`, with
 * `+nofuse` after the name for gate and up as two products. MATFORMER_BENCH_TABLES replaces the list.
 */
const KERNEL_VARIANTS = [
  'new=default',
  'legacy+nofuse=legacy',
  'gemv8x32=m<=8:gemv-8x32,m<=1024:tiled-16x16-4x4-k16,n<=256:tiled-16x16-4x4-k16,*:tiled-16x16-8x8-k8',
  'gemv32x8=m<=8:gemv-32x8,m<=1024:tiled-16x16-4x4-k16,n<=256:tiled-16x16-4x4-k16,*:tiled-16x16-8x8-k8',
  't128k16=m<=8:gemv-16x16,m<=1024:tiled-16x16-4x4-k16,n<=256:tiled-16x16-4x4-k16,*:tiled-16x16-8x8-k16',
  't64x128=m<=8:gemv-16x16,m<=1024:tiled-16x16-4x4-k16,n<=256:tiled-16x16-4x4-k16,*:tiled-16x8-8x8-k8',
  't64all=m<=8:gemv-16x16,*:tiled-16x16-4x4-k16',
  'new+nofuse=default',
  'new+submit128=default',
];

/** Seconds of the fastest of `n` runs of `f` (each awaited to completion: results are read back). */
async function fastest(n: number, f: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** Prefill 8×TOKENS (tokens/s) and greedy decode at batch 1 after a TOKENS prompt (tokens/s). */
async function kernelFigures(opened: OpenedModel, decodeSteps: number) {
  const { model, engine } = opened;
  const prompts = benchPrompts(8, TOKENS, engine.maxTextId, 1);
  const prefillOnce = async () => {
    const cache = model.newCache(8);
    try {
      await model.nextTokens(prompts, cache);
    } finally {
      cache.dispose();
    }
  };
  await prefillOnce(); // shader compilation
  const prefill = await fastest(2, prefillOnce);
  const cache = model.newCache(1);
  try {
    let next = await model.nextTokens([prompts[0]!], cache);
    const step = async () => (next = await model.nextTokens([[next[0]!]], cache));
    await step();
    await step();
    const t0 = performance.now();
    for (let i = 0; i < decodeSteps; i++) await step();
    const perStep = (performance.now() - t0) / 1000 / decodeSteps;
    return {
      prefill_8x512: (8 * TOKENS) / prefill,
      prefill_8x512_s: prefill,
      decode_b1: 1 / perStep,
      decode_b1_s_per_step: perStep,
    };
  } finally {
    cache.dispose();
  }
}

/** One decode step at batch 1 and one 8×TOKENS prefill under the profiler (table now in use). */
async function kernelProfiles(opened: OpenedModel) {
  const { model, engine } = opened;
  const prompts = benchPrompts(8, TOKENS, engine.maxTextId, 1);
  const cache = model.newCache(1);
  const out = [];
  try {
    let next = await model.nextTokens([prompts[0]!], cache);
    out.push(
      await profilePhase('decode_b1_4_steps', async () => {
        for (let i = 0; i < 4; i++) next = await model.nextTokens([[next[0]!]], cache);
      }),
    );
  } finally {
    cache.dispose();
  }
  const big = model.newCache(8);
  try {
    out.push(await profilePhase('prefill_8x512', () => model.nextTokens(prompts, big)));
  } finally {
    big.dispose();
  }
  return out;
}

async function kernels(dir: string, out: string, variants: string[]): Promise<void> {
  const t0 = performance.now();
  const opened = await openModel(dir, { backend: 'webgpu' });
  const meta = (file: string): Json =>
    fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Json) : {};
  // transformers on the same card and shapes (the last full run), for the ratios the goals are stated in.
  const last = meta('bench/results/2026-12-02-h200.json') as { prefill_8x512?: Json; decode_b1?: Json };
  const torchF32Prefill = Number(last.prefill_8x512?.torch_f32 ?? NaN);
  const res: Json = {
    date: new Date().toISOString(),
    commit: meta('.fixtures/bench-meta.json').commit ?? null,
    adapter: opened.engine.backend.detail,
    reference: {
      source: 'bench/results/2026-12-02-h200.json',
      torch_f32_prefill_8x512: torchF32Prefill,
      torch_bf16_decode_b1: last.decode_b1?.torch_bf16 ?? null,
      goals: { prefill_8x512_vs_torch_f32: 0.6, decode_b1_tokens_per_s: 30 },
    },
    load_s: opened.loadSeconds,
    weights_gpu_bytes: opened.engine.weights.bytes,
    tokens: TOKENS,
    variants: [] as Json[],
  };
  const rows = res.variants as Json[];
  const submitDefault = tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');
  writeJson(out, res);
  const budget = Number(process.env.BENCH_BUDGET_S ?? 240);
  for (const v of variants) {
    const eq = v.indexOf('=');
    const label = v.slice(0, eq);
    const table = v.slice(eq + 1);
    if ((performance.now() - t0) / 1000 > budget) {
      rows.push({ name: label, skipped: 'time budget (BENCH_BUDGET_S) spent' });
      continue;
    }
    setMatMulTable(table, 'MATFORMER_BENCH_TABLES');
    setGateUpFusion(!label.includes('+nofuse'));
    // `+submitN`: TF.js submits a command buffer every N dispatches (default 15).
    const submit = /\+submit(\d+)/.exec(label);
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', submit ? Number(submit[1]) : submitDefault);
    const legacy = label.startsWith('legacy');
    try {
      const f = await kernelFigures(opened, legacy ? 3 : 16);
      rows.push({
        name: label,
        table: matMulTable(),
        fused_gate_up: !label.includes('+nofuse'),
        submit_batch: tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE'),
        ...f,
        prefill_vs_torch_f32: f.prefill_8x512 / torchF32Prefill,
      });
    } catch (e) {
      rows.push({ name: label, table, error: e instanceof Error ? e.message : String(e) });
    }
    process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
    writeJson(out, res);
  }
  // Profiles with the first (best-guess) table: where the time goes now.
  const first = variants[0] ?? 'new=default';
  setMatMulTable(first.slice(first.indexOf('=') + 1), 'MATFORMER_BENCH_TABLES');
  setGateUpFusion(!first.includes('+nofuse'));
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', submitDefault);
  res.profile = await kernelProfiles(opened);
  res.total_s = (performance.now() - t0) / 1000;
  writeJson(out, res);
  opened.engine.dispose();
}

async function main(): Promise<void> {
  const [cmd, ...a] = process.argv.slice(2);
  if (cmd === 'speed' && a.length >= 2) return speed(a[0]!, a[1]!, a[2] ?? 'webgpu');
  if ((cmd === 'mmlu' || cmd === 'sweep') && a.length >= 5) {
    const n = Number(a[2]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`per-subject: ${a[2]} is not a positive integer`);
    const job = {
      dir: a[0]!,
      data: a[1]!,
      perSubject: n,
      out: a[3]!,
      dump: a[4]!,
      backend: a[5] ?? 'webgpu',
    };
    if (cmd === 'mmlu') return mmlu(job);
    return sweep(job, [Number(a[6] ?? 0), Number(a[7] ?? 16)]);
  }
  if (cmd === 'prompts' && a.length >= 4) {
    const dataset = await loadMmlu(a[1]!);
    const subset = selectSubset(dataset, { limitPerSubject: Number(a[2]) });
    return dumpPrompts(await loadTokenizer(a[0]!), dataset, subset, a[3]!);
  }
  if (cmd === 'merge' && a.length > 0) return merge(a);
  if (cmd === 'kernels' && a.length >= 2) {
    const list = a[2] ?? process.env.MATFORMER_BENCH_TABLES;
    return kernels(a[0]!, a[1]!, list ? list.split(';') : KERNEL_VARIANTS);
  }
  process.stderr.write('usage: see the head of scripts/device/h200-bench.ts\n');
  process.exit(2);
}

main().catch((e: unknown) => {
  process.stderr.write(`h200-bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

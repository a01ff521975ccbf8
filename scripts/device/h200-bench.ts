// The engine's side of the GPU-machine benchmark (scripts/device/h200-bench.sh runs it in two calls):
//   node dist/h200-bench.js ours <ckpt> <out.json> [--precision exact|int8] [--backend B] [--mmlu DIR]
//        [--per-subject N] [--end EPOCH_S] [--reserve-s S] [--later-weight W] [--int8-json F
//        --int8-reserve-s S --int8-weight W] [--ids64 FILE] [--ref64 FILE] [--go FILE]
//        [--subjects-from exact.json] [--profile]
//      load once; prefill 8x512 / 1x512, decode b8 / b1; logits of a 64-token sequence against transformers
//      f32's (relative RMS, argmax); MMLU 5-shot subject by subject until its share of the time is spent;
//      a profile if time is left. The JSON is rewritten after every step, so a stop keeps what was measured.
//   node dist/h200-bench.js sweep <ckpt> <mmlu-dir> <per-subject> <out.json> [--backend B] [--end EPOCH_S]
//        [--notebook-est-s S]
//      the 16 published configs as elastic views of one load, in PUBLISHED_ORDER, while the notebook's way
//      can still be timed on as many configs in the time left
//   node dist/h200-bench.js prompts <ckpt> <mmlu-dir> <per-subject> <prompts.json>
//   node dist/h200-bench.js ids64 <ckpt>              (the 64 token ids whose logits are compared)
//   node dist/h200-bench.js merge <dir or part.json>...  (prints the one JSON object with the goals)
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
  type Precision,
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
  type QuestionPrediction,
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
import { SafetensorsFile, UserInputError } from '../../src/formats';
import { loadConfig, loadPublishedConfigs, parseSpecFlags, textVocabLimit } from '../../src/gemma3n';

type Json = Record<string, unknown>;

function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  fs.renameSync(tmp, file);
}

function readJson(file: string): Json | null {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Json) : null;
}

/** WebGPU buffers allocated by TF.js (its pool never shrinks by itself): the GPU memory we hold. */
function gpuBytes(): number {
  const be = tf.backend() as unknown as { bufferManager?: { numBytesAllocated?: number } };
  return be.bufferManager?.numBytesAllocated ?? tf.memory().numBytes;
}

const TOKENS = Number(process.env.BENCH_TOKENS ?? 512);
const now = () => Date.now() / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `file` exists or `until` (epoch seconds) passes; returns the seconds waited. */
async function waitFor(file: string, until: number): Promise<number> {
  const t0 = now();
  while (!fs.existsSync(file) && now() < until) await sleep(250);
  return now() - t0;
}

/** `--key value` and bare `--flag` arguments after the positional ones. */
function flags(args: readonly string[]): { pos: string[]; opt: Map<string, string> } {
  const pos: string[] = [];
  const opt = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) pos.push(a);
    else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) opt.set(a.slice(2), args[++i]!);
    else opt.set(a.slice(2), 'true');
  }
  return { pos, opt };
}

function numberFlag(opt: Map<string, string>, key: string, fallback: number): number {
  const v = opt.get(key);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UserInputError(`--${key}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

/** The sequence whose logits are compared with transformers float32: fixed, text ids only, `<bos>` first. */
function ids64(dir: string): number[] {
  return benchPrompts(1, 64, textVocabLimit(loadConfig(dir)), 7)[0]!;
}

/** Relative RMS error, argmax agreement and max |Δ| of our logits [len, V] against a reference file's. */
function compareLogits(ours: Float32Array, refFile: string, len: number): Json {
  const bytes = SafetensorsFile.open(refFile).readBytes('logits.0');
  const ref = new Float32Array(bytes.slice().buffer);
  if (ref.length !== ours.length) {
    return { error: `reference has ${ref.length / len} columns per position, ours ${ours.length / len}` };
  }
  const v = ref.length / len;
  let d2 = 0;
  let r2 = 0;
  let maxAbs = 0;
  let agree = 0;
  for (let p = 0; p < len; p++) {
    let ai = 0;
    let bi = 0;
    for (let j = 0; j < v; j++) {
      const a = ours[p * v + j]!;
      const b = ref[p * v + j]!;
      d2 += (a - b) * (a - b);
      r2 += b * b;
      maxAbs = Math.max(maxAbs, Math.abs(a - b));
      if (a > ours[p * v + ai]!) ai = j;
      if (b > ref[p * v + bi]!) bi = j;
    }
    if (ai === bi) agree++;
  }
  return { tokens: len, rel_rms: Math.sqrt(d2 / r2), argmax: agree / len, max_abs: maxAbs };
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

/** Subjects of a subset in its canonical order. */
function subjectsOf(subset: Subset): string[] {
  return [...new Set(subset.items.map((it) => it.subject))];
}

interface OursJob {
  dir: string;
  out: string;
  backend: string;
  precision: Precision;
  mmlu: string | null;
  perSubject: number;
  /** Epoch seconds by which everything must be written. */
  end: number;
  /** Seconds the stages after this process need besides their MMLU loops (MMLU stops early enough). */
  reserveS: number;
  /** Their MMLU loops' time relative to ours (ours takes 1/(1+weight) of what is left for MMLU). */
  laterWeight: number;
  /** The int8 stage's output: while it does not say `available: false`, its reserve and weight count too. */
  int8Json: string | null;
  int8ReserveS: number;
  int8Weight: number;
  ids64: string | null;
  ref64: string | null;
  go: string | null;
  subjectsFrom: string | null;
  profile: boolean;
}

/**
 * One load of the engine in one precision, then the figures in order of importance, each guarded by the time
 * left: prefill 8×512 and decode b1 first (the goals), then 1×512 and b8, the logits check, MMLU, a profile.
 */
async function ours(job: OursJob): Promise<void> {
  const res: Json = { precision: job.precision, started_at: new Date().toISOString() };
  const save = () => writeJson(job.out, res);
  const left = () => job.end - now();
  const t0 = now();
  let opened: OpenedModel;
  try {
    opened = await openModel(job.dir, { backend: job.backend, precision: job.precision });
  } catch (e) {
    if (!(e instanceof UserInputError)) throw e;
    // A precision this build does not have yet: recorded, not fatal, so the other stages still run.
    Object.assign(res, { available: false, note: e.message });
    save();
    return;
  }
  const { engine, model } = opened;
  let peak = gpuBytes();
  const sample = () => (peak = Math.max(peak, gpuBytes()));
  Object.assign(res, {
    available: true,
    adapter: engine.backend.detail,
    backend: engine.backend.name,
    load_s: opened.loadSeconds,
    weights_gpu_bytes: engine.weights.bytes,
  });
  save();
  try {
    // Another process may be using the GPU (transformers' reference, or the exact stage before this one).
    if (job.go) res.waited_for_go_s = await waitFor(job.go, job.end);
    if (job.ref64) res.waited_for_ref64_s = await waitFor(`${job.ref64}.done`, Math.min(job.end, t0 + 150));
    for (const [batch, steps] of [
      [8, 8],
      [1, 16],
    ] as const) {
      if (left() < 30) break;
      const r = await runBench(opened, { batch, tokens: TOKENS, decodeSteps: steps, seed: 1 });
      sample();
      res[`prefill_${batch}x512`] = r.prefill.tokens_per_second;
      res[`decode_b${batch}`] = r.decode.tokens_per_second;
      res[`decode_b${batch}_s_per_step`] = r.decode.seconds_per_step;
      res.kv_cache_bytes_b8 ??= r.memory.kv_cache_bytes;
      res.peak_gpu_bytes = peak;
      process.stderr.write(
        `${JSON.stringify({ precision: job.precision, batch, ...r.prefill, ...r.decode })}\n`,
      );
      save();
    }
    if (job.ids64 && job.ref64 && left() > 20) {
      const ids = fs.readFileSync(job.ids64, 'utf8').trim().split(',').map(Number);
      const [logits] = await model.logits([ids]);
      sample();
      await waitFor(`${job.ref64}.done`, Math.min(job.end - 10, now() + 60));
      const source = job.ref64.replace(/\.safetensors$/, '.source');
      res.logits_parity = fs.existsSync(job.ref64)
        ? {
            ...compareLogits(logits!, job.ref64, ids.length),
            reference: fs.existsSync(source) ? fs.readFileSync(source, 'utf8').trim() : null,
          }
        : { error: `no reference logits (${job.ref64}) in time` };
      save();
    }
    if (job.mmlu && left() > 20) await oursMmlu(job, opened, res, save, sample);
    if (job.profile && left() > 40) {
      res.profile = await kernelProfiles(opened);
      save();
    }
  } finally {
    res.peak_gpu_bytes = Math.max(peak, gpuBytes());
    res.total_s = now() - t0;
    save();
    engine.dispose();
  }
}

/**
 * MMLU 5-shot subject by subject (the few-shot prefix once per subject), `perSubject` questions each, until
 * this stage's share of the time is spent; the int8 stage scores the exact stage's subjects in its order.
 */
async function oursMmlu(
  job: OursJob,
  opened: OpenedModel,
  res: Json,
  save: () => void,
  sample: () => void,
): Promise<void> {
  const dataset = await loadMmlu(job.mmlu!);
  const tokenizer = await loadTokenizer(job.dir);
  const scorer = new EngineScorer(opened.model, { groupSize: 8 });
  let subjects = subjectsOf(selectSubset(dataset, { limitPerSubject: job.perSubject }));
  const exact = job.subjectsFrom ? readJson(job.subjectsFrom) : null;
  const listed = exact?.mmlu_subjects;
  if (Array.isArray(listed)) subjects = listed as string[];
  // Shader compilation for the scorer's shapes, not timed.
  const warm = selectSubset(dataset, { subjects: [subjects[0]!], limitPerSubject: 2 });
  await evaluate({ scorer, tokenizer, dataset, subset: warm, shots: 5 });
  const int8Later = job.int8Json !== null && readJson(job.int8Json)?.available !== false;
  const reserve = job.reserveS + (int8Later ? job.int8ReserveS : 0);
  const weight = job.laterWeight + (int8Later ? job.int8Weight : 0);
  const start = now();
  const stop = start + Math.max(0, job.end - reserve - start) / (1 + weight);
  res.mmlu_budget_s = stop - start;
  const done: string[] = [];
  const predictions: QuestionPrediction[] = [];
  let seconds = 0;
  let tokens = 0;
  let naive = 0;
  for (const subject of subjects) {
    if (now() > stop) break;
    const subset = selectSubset(dataset, { subjects: [subject], limitPerSubject: job.perSubject });
    const { results, predictions: p } = await evaluate({ scorer, tokenizer, dataset, subset, shots: 5 });
    sample();
    done.push(subject);
    predictions.push(...p);
    seconds += results.timing.seconds;
    tokens += results.timing.tokens_processed;
    naive += results.timing.tokens_naive;
    Object.assign(res, {
      mmlu_per_subject: job.perSubject,
      mmlu_subjects: done,
      mmlu_questions: predictions.length,
      mmlu_seconds: seconds,
      mmlu_questions_per_s: predictions.length / seconds,
      mmlu_acc: predictions.filter((q) => q.pred === q.gold).length / predictions.length,
      mmlu_tokens_processed: tokens,
      mmlu_tokens_naive: naive,
      predictions: predictions.map((q) => [q.subject, q.index, q.pred, ...q.logprobs]),
    });
    save();
  }
  // The first subject again with the prefix K/V copied per row (the path before shared-prefix attention), and
  // shared once more right after it, so the two are timed back to back on the same questions.
  if (done.length > 0 && now() + 2 * (seconds / done.length) + 5 < job.end - reserve) {
    const subset = selectSubset(dataset, { subjects: [done[0]!], limitPerSubject: job.perSubject });
    const copying = new EngineScorer(opened.model, { groupSize: 8, sharePrefix: false });
    const c = await evaluate({ scorer: copying, tokenizer, dataset, subset, shots: 5 });
    const s = await evaluate({ scorer, tokenizer, dataset, subset, shots: 5 });
    const same = c.predictions.every((q, i) => q.pred === s.predictions[i]?.pred);
    Object.assign(res, {
      mmlu_prefix_check: {
        subject: done[0],
        questions: s.predictions.length,
        shared_questions_per_s: s.predictions.length / s.results.timing.seconds,
        copied_questions_per_s: c.predictions.length / c.results.timing.seconds,
        same_predictions: same,
      },
    });
    save();
  }
}

/**
 * Ours as one sweep: one load, then each published config as an elastic view on the same questions, in
 * `order` (indices into configs/gemma3n-e4b-published.csv; h200-bench.sh spreads them so that any prefix spans
 * the sizes and both kinds). It stops
 * before a config when the notebook's way (timed after it, `notebookEstS` per config) could no longer run on
 * as many configs before `end`.
 */
async function sweep(
  dir: string,
  data: string,
  perSubject: number,
  out: string,
  backend: string,
  end: number,
  notebookEstS: number,
  order: readonly number[],
): Promise<void> {
  const dataset = await loadMmlu(data);
  const tokenizer = await loadTokenizer(dir);
  const subset = selectSubset(dataset, { limitPerSubject: perSubject });
  const config = loadConfig(dir);
  const published = loadPublishedConfigs();
  for (const i of order) {
    if (!published[i])
      throw new UserInputError(`--order: ${i} is not a published config (0..${published.length - 1})`);
  }
  const t0 = now();
  const opened = await openModel(dir, { backend });
  const res: Json = {
    adapter: opened.engine.backend.detail,
    sweep_questions: subset.items.length,
    sweep_load_s: opened.loadSeconds,
    sweep_weights_bytes: opened.engine.weights.bytes,
    sweep_order: order.map((i) => published[i]!.name),
  };
  const configs: Json[] = [];
  let extraMax = 0;
  const save = () => {
    Object.assign(res, {
      sweep_configs: configs.length,
      sweep_seconds: now() - t0,
      sweep_view_extra_bytes_max: extraMax,
      sweep: configs,
    });
    writeJson(out, res);
  };
  save();
  try {
    for (const i of order) {
      const last = configs.length > 0 ? Number(configs[configs.length - 1]!.seconds) : 0;
      if (now() + last + (configs.length + 1) * notebookEstS > end) break;
      const c = published[i]!;
      const spec = parseSpecFlags({ preset: c.name }, config);
      const t = now();
      const model = opened.engine.view(spec);
      try {
        extraMax = Math.max(extraMax, model.extraBytes);
        const scorer = new EngineScorer(model, { groupSize: 8 });
        const { results } = await evaluate({ scorer, tokenizer, dataset, subset, shots: 5 });
        configs.push({ name: c.name, acc: results.overall.acc, seconds: now() - t });
        process.stderr.write(`${JSON.stringify(configs[configs.length - 1])}\n`);
      } finally {
        model.dispose();
      }
      save();
    }
  } finally {
    save();
    opened.engine.dispose();
  }
}

/** int8 agreement with exact mode on the questions both scored (null when either is missing). */
function agreement(exact: unknown, fast: unknown): Json | null {
  if (!Array.isArray(exact) || !Array.isArray(fast)) return null;
  const key = (p: unknown[]) => `${String(p[0])}#${String(p[1])}`;
  const f = new Map((fast as unknown[][]).map((p) => [key(p), p]));
  let both = 0;
  let same = 0;
  let maxd = 0;
  for (const p of exact as unknown[][]) {
    const q = f.get(key(p));
    if (!q) continue;
    both++;
    if (q[2] === p[2]) same++;
    for (let i = 3; i < 7; i++) maxd = Math.max(maxd, Math.abs(Number(q[i]) - Number(p[i])));
  }
  return both > 0 ? { questions: both, predictions: same / both, max_dlogprob: maxd } : null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const ratio = (a: unknown, b: unknown): number | null => {
  const x = num(a);
  const y = num(b);
  return x !== null && y !== null && y > 0 ? x / y : null;
};
const atLeast = (v: number | null, goal: number): boolean | null => (v === null ? null : v >= goal);

/**
 * Ours as one sweep against the notebook's way: measured on the configs both ran (one load plus those views,
 * against slicing and evaluating each), and for all 16 extrapolated from the mean per config when fewer ran.
 */
function publishedSweep(sw: Json | undefined, nb: Json | undefined): Json {
  const ours = (Array.isArray(sw?.sweep) ? sw?.sweep : []) as Json[];
  const theirs = (Array.isArray(nb?.notebook) ? nb?.notebook : []) as Json[];
  const sum = (rows: Json[]) => rows.reduce((n, r) => n + Number(r.seconds), 0);
  const load = num(sw?.sweep_load_s) ?? 0;
  const all = 16;
  const common = Math.min(ours.length, theirs.length);
  const oursAll =
    ours.length === all
      ? num(sw?.sweep_seconds)
      : ours.length > 0
        ? load + (all * sum(ours)) / ours.length
        : null;
  const theirsAll = theirs.length > 0 ? (all * sum(theirs)) / theirs.length : null;
  return {
    questions: sw?.sweep_questions ?? null,
    ours_s: oursAll,
    notebook_way_s: theirsAll,
    extrapolated: ours.length < all || theirs.length < all,
    configs_ours: ours.length,
    configs_notebook: theirs.length,
    measured_same_configs:
      common > 0
        ? {
            configs: common,
            ours_s: load + sum(ours.slice(0, common)),
            notebook_way_s: sum(theirs.slice(0, common)),
          }
        : null,
    ours_load_s: sw?.sweep_load_s ?? null,
    view_extra_bytes_max: sw?.sweep_view_extra_bytes_max ?? null,
    ours: ours,
    notebook_way: theirs,
  };
}

/** Reads every part (a .json file, or a folder of them) into one object keyed by the part's name. */
function readParts(args: readonly string[]): Record<string, Json> {
  const part: Record<string, Json> = {};
  for (const a of args) {
    const files = fs.statSync(a).isDirectory()
      ? fs
          .readdirSync(a)
          .filter((f) => f.endsWith('.json'))
          .map((f) => path.join(a, f))
      : [a];
    for (const f of files) {
      const name = path.basename(f, '.json');
      if (name === 'h200-bench' || name.endsWith('.prompts')) continue;
      part[name] = JSON.parse(fs.readFileSync(f, 'utf8')) as Json;
    }
  }
  return part;
}

function merge(args: readonly string[]): void {
  const part = readParts(args);
  const { meta, exact, int8, torch } = part;
  const fast = int8?.available === true ? int8 : undefined;
  const get = (p: Json | undefined, k: string): unknown => p?.[k] ?? null;
  const sweep = publishedSweep(part.sweep, part.notebook);
  const agree = agreement(exact?.predictions, fast?.predictions);
  const figures = {
    prefill_1x512: {
      ours_exact: get(exact, 'prefill_1x512'),
      ours_int8: get(fast, 'prefill_1x512'),
      torch_f32: get(torch, 'f32_prefill_1x512'),
      torch_bf16: get(torch, 'bf16_prefill_1x512'),
    },
    prefill_8x512: {
      ours_exact: get(exact, 'prefill_8x512'),
      ours_int8: get(fast, 'prefill_8x512'),
      torch_f32: get(torch, 'f32_prefill_8x512'),
      torch_bf16: get(torch, 'bf16_prefill_8x512'),
    },
    decode_b1: {
      ours_exact: get(exact, 'decode_b1'),
      ours_int8: get(fast, 'decode_b1'),
      torch_bf16: get(torch, 'bf16_decode_b1'),
      torch_f32: get(torch, 'f32_decode_b1'),
    },
    decode_b8: {
      ours_exact: get(exact, 'decode_b8'),
      ours_int8: get(fast, 'decode_b8'),
      torch_bf16: get(torch, 'bf16_decode_b8'),
      torch_f32: get(torch, 'f32_decode_b8'),
    },
    mmlu_5shot: {
      questions: get(exact, 'mmlu_questions'),
      ours_exact: get(exact, 'mmlu_questions_per_s'),
      ours_int8: get(fast, 'mmlu_questions_per_s'),
      torch_bf16_loop: get(torch, 'bf16_mmlu_questions_per_s'),
      questions_int8: get(fast, 'mmlu_questions'),
      questions_torch_bf16: get(torch, 'bf16_mmlu_questions'),
      per_subject: get(exact, 'mmlu_per_subject'),
      ours_acc: get(exact, 'mmlu_acc'),
      ours_int8_acc: get(fast, 'mmlu_acc'),
      torch_bf16_acc: get(torch, 'bf16_mmlu_acc'),
      ours_tokens_processed: get(exact, 'mmlu_tokens_processed'),
      tokens_naive: get(exact, 'mmlu_tokens_naive'),
    },
    int8_agreement: agree,
    logits_parity: exact?.logits_parity
      ? { ...(exact.logits_parity as Json), int8: fast?.logits_parity ?? null }
      : null,
    published_sweep: sweep,
    weights_gpu_bytes: {
      exact: get(exact, 'weights_gpu_bytes') ?? get(part.sweep, 'sweep_weights_bytes'),
      int8: get(fast, 'weights_gpu_bytes'),
    },
    peak_gpu_bytes: {
      ours_exact: get(exact, 'peak_gpu_bytes'),
      ours_int8: get(fast, 'peak_gpu_bytes'),
      torch_f32: get(torch, 'f32_peak_bytes'),
      torch_bf16: get(torch, 'bf16_peak_bytes'),
    },
    load_s: {
      ours_exact: get(exact, 'load_s'),
      ours_int8: get(fast, 'load_s'),
      ours_sweep: get(part.sweep, 'sweep_load_s'),
      torch_f32: get(torch, 'f32_load_s'),
      torch_bf16: get(torch, 'bf16_load_s'),
    },
  };
  const mmlu8 = ratio(figures.mmlu_5shot.ours_int8, figures.mmlu_5shot.torch_bf16_loop);
  const weights = num(figures.weights_gpu_bytes.exact);
  const viewExtra = num(sweep.view_extra_bytes_max);
  const sweepRatio = ratio(sweep.notebook_way_s, sweep.ours_s);
  const prefillRatio = ratio(figures.prefill_8x512.ours_exact, figures.prefill_8x512.torch_f32);
  const mmluRatio = ratio(figures.mmlu_5shot.ours_exact, figures.mmlu_5shot.torch_bf16_loop);
  const decode = num(figures.decode_b1.ours_exact);
  const goals = {
    prefill_8x512_exact_vs_torch_f32: {
      goal: '>= 0.6',
      ratio: prefillRatio,
      met: atLeast(prefillRatio, 0.6),
    },
    mmlu_exact_vs_torch_bf16_loop: { goal: '>= 1', ratio: mmluRatio, met: atLeast(mmluRatio, 1) },
    mmlu_int8_vs_torch_bf16_loop: {
      goal: '>= 2 with >= 99% prediction agreement with exact',
      ratio: mmlu8,
      agreement: agree?.predictions ?? null,
      met: mmlu8 === null || !agree ? null : mmlu8 >= 2 && Number(agree.predictions) >= 0.99,
    },
    published_sweep_vs_notebook_way: {
      goal: '>= 2',
      ratio: sweepRatio,
      extrapolated: sweep.extrapolated,
      met: atLeast(sweepRatio, 2),
    },
    decode_b1_tokens_per_s: { goal: '>= 30', value: decode, met: atLeast(decode, 30) },
    weights_gpu_bytes_exact: {
      goal: '<= 10 GB, elastic views add none',
      value: weights,
      view_extra_bytes_max: viewExtra,
      met: weights === null ? null : weights <= 10e9 && (viewExtra === null || viewExtra === 0),
    },
  };
  const notes: string[] = [];
  if (int8 && int8.available !== true) notes.push(`int8: ${String(int8.note)}`);
  if (!int8) notes.push('int8: not run');
  if (sweep.extrapolated && (sweep.configs_ours as number) > 0) {
    notes.push(
      `published sweep: ours ran ${String(sweep.configs_ours)} and the notebook's way ${String(
        sweep.configs_notebook,
      )} of 16 configs in the time; ours_s and notebook_way_s are extrapolated to 16 from the mean per config` +
        ' (measured_same_configs holds the measured figures)',
    );
  }
  for (const [k, v] of Object.entries(part))
    if (k !== 'int8' && typeof v.note === 'string') notes.push(`${k}: ${v.note}`);
  const out = {
    date: get(meta, 'date') ?? new Date().toISOString(),
    commit: get(meta, 'commit') ?? get(part.meta_b, 'commit'),
    adapter: get(exact, 'adapter') ?? get(part.sweep, 'adapter'),
    gpu: get(torch, 'gpu') ?? get(part.notebook, 'gpu'),
    tokens: get(meta, 'tokens') ?? get(part.meta_b, 'tokens'),
    ...figures,
    profile: get(exact, 'profile'),
    goals,
    notes,
    parts: Object.fromEntries(
      Object.entries(part).map(([k, v]) => [k, { ...v, predictions: undefined, profile: undefined }]),
    ),
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

const PRECISION_CHOICES: readonly string[] = ['exact', 'int8'];

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  const { pos, opt } = flags(rest);
  const backend = opt.get('backend') ?? 'webgpu';
  const end = numberFlag(opt, 'end', now() + 3600);
  if (cmd === 'ours' && pos.length >= 2) {
    const precision = opt.get('precision') ?? 'exact';
    if (!PRECISION_CHOICES.includes(precision))
      throw new UserInputError(`--precision: expected exact or int8, got ${precision}`);
    return ours({
      dir: pos[0]!,
      out: pos[1]!,
      backend,
      precision: precision as Precision,
      mmlu: opt.get('mmlu') ?? null,
      perSubject: numberFlag(opt, 'per-subject', 10),
      end,
      reserveS: numberFlag(opt, 'reserve-s', 0),
      laterWeight: numberFlag(opt, 'later-weight', 0),
      int8Json: opt.get('int8-json') ?? null,
      int8ReserveS: numberFlag(opt, 'int8-reserve-s', 0),
      int8Weight: numberFlag(opt, 'int8-weight', 0),
      ids64: opt.get('ids64') ?? null,
      ref64: opt.get('ref64') ?? null,
      go: opt.get('go') ?? null,
      subjectsFrom: opt.get('subjects-from') ?? null,
      profile: opt.has('profile'),
    });
  }
  if (cmd === 'sweep' && pos.length >= 4) {
    const n = Number(pos[2]);
    if (!Number.isInteger(n) || n < 1)
      throw new UserInputError(`per-subject: ${pos[2]} is not a positive integer`);
    const order = (opt.get('order') ?? Array.from({ length: 16 }, (_, i) => i).join(','))
      .split(',')
      .map(Number);
    return sweep(pos[0]!, pos[1]!, n, pos[3]!, backend, end, numberFlag(opt, 'notebook-est-s', 0), order);
  }
  if (cmd === 'prompts' && pos.length >= 4) {
    const dataset = await loadMmlu(pos[1]!);
    const subset = selectSubset(dataset, { limitPerSubject: Number(pos[2]) });
    return dumpPrompts(await loadTokenizer(pos[0]!), dataset, subset, pos[3]!);
  }
  if (cmd === 'ids64' && pos.length >= 1) {
    process.stdout.write(ids64(pos[0]!).join(',') + '\n');
    return;
  }
  if (cmd === 'merge' && pos.length > 0) return merge(pos);
  if (cmd === 'kernels' && pos.length >= 2) {
    const list = pos[2] ?? process.env.MATFORMER_BENCH_TABLES;
    return kernels(pos[0]!, pos[1]!, list ? list.split(';') : KERNEL_VARIANTS);
  }
  process.stderr.write('usage: see the head of scripts/device/h200-bench.ts\n');
  process.exit(2);
}

main().catch((e: unknown) => {
  if (e instanceof UserInputError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`h200-bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

// Throughput measurement: one warm-up pass (shader compilation, JIT), then a timed prefill of B×T random
// tokens and timed greedy decode steps on its KV cache.
import * as tf from '@tensorflow/tfjs-core';
import { type PhaseProfile, profilePhase } from './profile';
import { EngineScorer } from './scorer';
import type { OpenedModel } from './session';

export interface BenchOptions {
  batch: number;
  tokens: number;
  decodeSteps: number;
  seed: number;
  /** Also profile one prefill, the decode steps and one MMLU-shaped batch, op by op. */
  profile?: boolean;
}

export interface BenchResult {
  backend: string;
  backend_detail: string;
  layers: number;
  batch: number;
  tokens: number;
  load_seconds: number;
  prefill: { seconds: number; tokens_per_second: number };
  decode: { steps: number; seconds_per_step: number; tokens_per_second: number };
  memory: {
    weight_bytes: number;
    kv_cache_bytes: number;
    backend_bytes: number;
    tensors: number;
    peak_rss_bytes: number;
  };
  /** With `profile`: prefill, decode and mmlu_batch, per op kind. */
  profile?: PhaseProfile[];
}

/** Deterministic prompt ids in [3, maxId) (skips pad/eos/bos), from a small LCG. */
export function benchPrompts(batch: number, tokens: number, maxId: number, seed: number): number[][] {
  let s = seed >>> 0 || 1;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  return Array.from({ length: batch }, () => [
    2,
    ...Array.from({ length: tokens - 1 }, () => 3 + (next() % (maxId - 3))),
  ]);
}

export async function runBench(opened: OpenedModel, opts: BenchOptions): Promise<BenchResult> {
  const { engine, model } = opened;
  const prompts = benchPrompts(opts.batch, opts.tokens, engine.maxTextId, opts.seed);
  let peakRss = process.memoryUsage().rss;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));

  const pass = async (steps: number) => {
    const cache = model.newCache(opts.batch);
    try {
      const t0 = performance.now();
      let next = await model.nextTokens(prompts, cache);
      const prefill = (performance.now() - t0) / 1000;
      sample();
      const t1 = performance.now();
      for (let i = 0; i < steps; i++)
        next = await model.nextTokens(
          next.map((t) => [t]),
          cache,
        );
      const decode = (performance.now() - t1) / 1000;
      sample();
      return {
        prefill,
        decode,
        kvBytes: cache.bytes,
        backendBytes: tf.memory().numBytes,
        tensors: tf.memory().numTensors,
      };
    } finally {
      cache.dispose();
    }
  };
  await pass(Math.min(2, opts.decodeSteps));
  const r = await pass(opts.decodeSteps);
  const steps = opts.decodeSteps;
  const profile = opts.profile ? await profileAll(opened, prompts, opts) : undefined;
  return {
    backend: engine.backend.name,
    backend_detail: engine.backend.detail,
    layers: model.cfg.layers.length,
    batch: opts.batch,
    tokens: opts.tokens,
    load_seconds: opened.loadSeconds,
    prefill: { seconds: r.prefill, tokens_per_second: (opts.batch * opts.tokens) / r.prefill },
    decode: {
      steps,
      seconds_per_step: steps > 0 ? r.decode / steps : 0,
      tokens_per_second: steps > 0 ? (opts.batch * steps) / r.decode : 0,
    },
    memory: {
      weight_bytes: engine.weights.bytes + model.extraBytes,
      kv_cache_bytes: r.kvBytes,
      backend_bytes: r.backendBytes,
      tensors: r.tensors,
      peak_rss_bytes: peakRss,
    },
    ...(profile ? { profile } : {}),
  };
}

/**
 * The three shapes that matter: a prefill of the bench batch, its decode steps, and an MMLU batch (the first
 * prompt as a shared few-shot prefix, then `batch` suffixes of a quarter of its length scored against it).
 * Each runs once unprofiled first so shader compilation is not profiled.
 */
async function profileAll(
  opened: OpenedModel,
  prompts: number[][],
  opts: BenchOptions,
): Promise<PhaseProfile[]> {
  const { model } = opened;
  const out: PhaseProfile[] = [];
  const cache = model.newCache(opts.batch);
  try {
    let next: number[] = [];
    out.push(await profilePhase('prefill', async () => (next = await model.nextTokens(prompts, cache))));
    if (opts.decodeSteps > 0) {
      out.push(
        await profilePhase('decode', async () => {
          for (let i = 0; i < opts.decodeSteps; i++)
            next = await model.nextTokens(
              next.map((t) => [t]),
              cache,
            );
        }),
      );
    }
  } finally {
    cache.dispose();
  }
  const suffixLength = Math.max(1, Math.floor(opts.tokens / 4));
  const suffixes = benchPrompts(opts.batch, suffixLength + 1, opened.engine.maxTextId, opts.seed + 1).map(
    (s) => s.slice(1),
  );
  const choices = [3, 4, 5, 6];
  const scorer = new EngineScorer(model, { groupSize: opts.batch });
  await scorer.scoreSuffixes(prompts[0]!, suffixes, choices);
  out.push(await profilePhase('mmlu_batch', () => scorer.scoreSuffixes(prompts[0]!, suffixes, choices)));
  return out;
}

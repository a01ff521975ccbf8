// Throughput measurement: one warm-up pass (shader compilation, JIT), then a timed prefill of B×T random
// tokens and timed greedy decode steps on its KV cache.
import * as tf from '@tensorflow/tfjs-core';
import type { OpenedModel } from './session';

export interface BenchOptions {
  batch: number;
  tokens: number;
  decodeSteps: number;
  seed: number;
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
  };
}

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
  backendDetail: string;
  layers: number;
  batch: number;
  tokens: number;
  loadSeconds: number;
  prefill: { seconds: number; tokensPerSecond: number };
  decode: { steps: number; secondsPerStep: number; tokensPerSecond: number };
  memory: {
    weightBytes: number;
    kvCacheBytes: number;
    backendBytes: number;
    tensors: number;
    peakRssBytes: number;
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
    backendDetail: engine.backend.detail,
    layers: model.cfg.layers.length,
    batch: opts.batch,
    tokens: opts.tokens,
    loadSeconds: opened.loadSeconds,
    prefill: { seconds: r.prefill, tokensPerSecond: (opts.batch * opts.tokens) / r.prefill },
    decode: {
      steps,
      secondsPerStep: steps > 0 ? r.decode / steps : 0,
      tokensPerSecond: steps > 0 ? (opts.batch * steps) / r.decode : 0,
    },
    memory: {
      weightBytes: engine.weights.bytes + model.extraBytes,
      kvCacheBytes: r.kvBytes,
      backendBytes: r.backendBytes,
      tensors: r.tensors,
      peakRssBytes: peakRss,
    },
  };
}

// Where a forward's time goes: per TF.js op kind, calls, GPU dispatches, device time and host time. Runs the
// work under tf.profile with the engine's kernel profiler swapped for one that also counts the dispatches
// each op issues (webgpu) and keeps host time (JavaScript inside the op: encoding, uploads, cpu math)
// apart from device time (webgpu: timestamp queries, one compute pass per program, when the adapter offers
// them; otherwise, and on cpu/wasm, the op's wall time).
import * as tf from '@tensorflow/tfjs-core';

export interface OpProfile {
  readonly op: string;
  readonly calls: number;
  readonly dispatches: number;
  readonly device_ms: number;
  readonly host_ms: number;
}

export interface PhaseProfile {
  readonly phase: string;
  readonly wall_ms: number;
  /** 'timestamp-query' (webgpu with the feature) or 'wall' (op wall time: cpu, wasm, webgpu without it). */
  readonly device_timing: 'timestamp-query' | 'wall';
  readonly calls: number;
  readonly dispatches: number;
  readonly device_ms: number;
  readonly host_ms: number;
  /** Op kinds, most device time first. */
  readonly ops: readonly OpProfile[];
}

interface KernelProfileLike {
  kernelName: string;
  outputs: tf.TensorInfo[];
  inputs: unknown;
  timeMs: Promise<number>;
  extraInfo: Promise<string>;
}

interface ProfilerLike {
  profileKernel(name: string, inputs: unknown, f: () => tf.TensorInfo[]): KernelProfileLike;
  logKernelProfile(p: KernelProfileLike): void;
}

interface TimedBackend {
  supportTimestampQuery?: boolean;
  time(f: () => void): Promise<{ kernelMs: number | { error: string } }>;
  runWebGPUProgram?: (...args: unknown[]) => unknown;
}

interface Record_ {
  op: string;
  host: number;
  dispatches: number;
  device: Promise<number>;
}

let dispatches = 0;

/** Dispatches issued on the webgpu backend while `run` ran (0 on other backends). */
export async function countDispatches(run: () => Promise<unknown>): Promise<number> {
  const be = tf.backend() as unknown as TimedBackend;
  const original = be.runWebGPUProgram;
  if (!original) {
    await run();
    return 0;
  }
  const before = dispatches;
  be.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
    dispatches++;
    return original.apply(this, args);
  };
  try {
    await run();
  } finally {
    be.runWebGPUProgram = original;
  }
  return dispatches - before;
}

/** Runs `run` once under the profiler and aggregates its ops. */
export async function profilePhase(phase: string, run: () => Promise<unknown>): Promise<PhaseProfile> {
  const engine = tf.engine() as unknown as { profiler: ProfilerLike };
  const be = tf.backend() as unknown as TimedBackend;
  const stamps = tf.getBackend() === 'webgpu' && be.supportTimestampQuery === true;
  const records: Record_[] = [];
  let depth = 0;
  const profiler: ProfilerLike = {
    profileKernel(name, inputs, f) {
      // Ops that run other ops count once, at the top (their inner dispatches are theirs).
      const top = depth === 0;
      depth++;
      let outputs: tf.TensorInfo[] = [];
      const d0 = dispatches;
      const t0 = performance.now();
      let device: Promise<number>;
      try {
        if (stamps && top) {
          device = be
            .time(() => {
              outputs = f();
            })
            .then((r) => (typeof r.kernelMs === 'number' ? r.kernelMs : 0));
        } else {
          outputs = f();
          device = Promise.resolve(performance.now() - t0);
        }
      } finally {
        depth--;
      }
      const host = performance.now() - t0;
      if (top) records.push({ op: name, host, dispatches: dispatches - d0, device });
      return { kernelName: name, outputs, inputs, timeMs: device, extraInfo: Promise.resolve('') };
    },
    logKernelProfile() {},
  };
  const saved = engine.profiler;
  engine.profiler = profiler;
  const t0 = performance.now();
  try {
    await countDispatches(() =>
      tf.profile(async () => {
        await run();
        return [];
      }),
    );
  } finally {
    engine.profiler = saved;
  }
  const wall = performance.now() - t0;
  const byOp = new Map<string, { calls: number; dispatches: number; device: number; host: number }>();
  for (const r of records) {
    const e = byOp.get(r.op) ?? { calls: 0, dispatches: 0, device: 0, host: 0 };
    e.calls++;
    e.dispatches += r.dispatches;
    e.device += await r.device;
    e.host += r.host;
    byOp.set(r.op, e);
  }
  const ops = [...byOp.entries()]
    .map(([op, e]) => ({
      op,
      calls: e.calls,
      dispatches: e.dispatches,
      device_ms: e.device,
      host_ms: e.host,
    }))
    .sort((a, b) => b.device_ms - a.device_ms);
  const sum = (f: (o: OpProfile) => number) => ops.reduce((n, o) => n + f(o), 0);
  return {
    phase,
    wall_ms: wall,
    device_timing: stamps ? 'timestamp-query' : 'wall',
    calls: sum((o) => o.calls),
    dispatches: sum((o) => o.dispatches),
    device_ms: sum((o) => o.device_ms),
    host_ms: sum((o) => o.host_ms),
    ops,
  };
}

/** A fixed-width table of a phase's op kinds (the top `limit` by device time, the rest summed). */
export function renderProfile(p: PhaseProfile, limit = 12): string {
  const head = `${p.phase}: wall ${p.wall_ms.toFixed(1)} ms, ${p.calls} ops, ${p.dispatches} dispatches, device ${p.device_ms.toFixed(1)} ms (${p.device_timing}), host ${p.host_ms.toFixed(1)} ms`;
  const row = (op: string, calls: number, disp: number, dev: number, host: number) =>
    `  ${op.padEnd(22)} ${String(calls).padStart(7)} ${String(disp).padStart(10)} ${dev.toFixed(1).padStart(11)} ${host.toFixed(1).padStart(10)}`;
  const lines = [
    head,
    `  ${'op'.padEnd(22)} ${'calls'.padStart(7)} ${'dispatches'.padStart(10)} ${'device ms'.padStart(11)} ${'host ms'.padStart(10)}`,
  ];
  for (const o of p.ops.slice(0, limit)) lines.push(row(o.op, o.calls, o.dispatches, o.device_ms, o.host_ms));
  const rest = p.ops.slice(limit);
  if (rest.length > 0) {
    const s = (f: (o: OpProfile) => number) => rest.reduce((n, o) => n + f(o), 0);
    lines.push(
      row(
        `(${rest.length} more)`,
        s((o) => o.calls),
        s((o) => o.dispatches),
        s((o) => o.device_ms),
        s((o) => o.host_ms),
      ),
    );
  }
  return lines.join('\n');
}

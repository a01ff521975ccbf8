// Host cost of recording a dispatch on TF.js's webgpu backend (4.22). A decode step records ~1,100
// dispatches, so every microsecond per dispatch is ~1 ms per token. Two exact savings, installed once on the
// backend instance:
//  - uniforms by content: TF.js takes a fresh uniform buffer from its pool for every dispatch, writes it with
//    queue.writeBuffer and returns it to the pool at the next submit. The same few hundred contents recur
//    every decode step (shapes, widths, eps), so one immutable buffer per distinct content is written once
//    and bound again: no pool traffic and no write per dispatch.
//  - the pipeline's bind group layout: `getBindGroupLayout(0)` is a native call per dispatch returning a new
//    wrapper of the same layout; it is asked once per pipeline.
// Both change only which equal buffer or wrapper is used, never a value a program reads.

interface GpuBufferLike {
  readonly size: number;
}

interface UniformField {
  type: string;
  data: number[];
}

interface UniformBinding {
  offset: number;
  size: number;
  buffer: GpuBufferLike;
}

interface RecordingBackend {
  makeUniforms(fields: UniformField[]): UniformBinding;
  uniformPendingDisposal: GpuBufferLike[];
  pipelineCache: Record<string, unknown>;
  device: unknown;
}

interface PipelineLike {
  getBindGroupLayout(index: number): unknown;
}

/** Distinct uniform contents kept at most; past it they go back to TF.js's pool and the cache starts over. */
const MAX_UNIFORM_CONTENTS = 4096;

const installed = new WeakSet<object>();

/** A key that tells apart every content TF.js would write (-0 and 0 differ as float32 bits). */
function uniformKey(fields: readonly UniformField[]): string {
  let key = '';
  for (const f of fields) {
    key += f.type === 'float32' ? 'f' : f.type === 'int32' ? 'i' : 'u';
    for (const v of f.data) key += Object.is(v, -0) ? '-0,' : `${v},`;
    key += ';';
  }
  return key;
}

/** Installs the savings above on the active TF.js webgpu backend (idempotent; other backends untouched). */
export function installRecordingFastPaths(backend: unknown): boolean {
  const be = backend as Partial<RecordingBackend>;
  if (typeof be.pipelineCache !== 'object' || !cacheUniformsByContent(be)) return false;
  memoizeBindGroupLayouts(be as RecordingBackend);
  return true;
}

/**
 * Replaces the backend's `makeUniforms` by one that keeps one buffer per distinct content (at most
 * `maxContents`, then they are handed back to TF.js's pool and the cache starts over). False when `backend`
 * has no such method or already has the cache.
 */
export function cacheUniformsByContent(backend: unknown, maxContents = MAX_UNIFORM_CONTENTS): boolean {
  const be = backend as Partial<RecordingBackend>;
  if (typeof be.makeUniforms !== 'function' || !Array.isArray(be.uniformPendingDisposal) || installed.has(be))
    return false;
  installed.add(be);
  const original = be.makeUniforms;
  const byContent = new Map<string, UniformBinding>();
  be.makeUniforms = function (this: RecordingBackend, fields: UniformField[]): UniformBinding {
    const key = uniformKey(fields);
    const kept = byContent.get(key);
    if (kept) return kept;
    if (byContent.size >= maxContents) {
      // Released at the next submit, after any dispatch already recorded with them (TF.js's own rule).
      for (const u of byContent.values()) this.uniformPendingDisposal.push(u.buffer);
      byContent.clear();
    }
    const made = original.call(this, fields);
    // TF.js queued it for release at the next submit; keep it instead (never written again).
    const i = this.uniformPendingDisposal.lastIndexOf(made.buffer);
    if (i >= 0) this.uniformPendingDisposal.splice(i, 1);
    byContent.set(key, made);
    return made;
  };
  return true;
}

const layouts = new WeakMap<object, unknown[]>();
let patchedPrototype: object | null = null;

/**
 * Pipelines are created by TF.js as it compiles programs, so the memo goes on their prototype (Dawn's
 * GPUComputePipeline), found from a pipeline made here once.
 */
function memoizeBindGroupLayouts(be: RecordingBackend): void {
  const device = be.device as {
    createShaderModule(d: { code: string }): unknown;
    createComputePipeline(d: unknown): PipelineLike;
  };
  const probe = device.createComputePipeline({
    layout: 'auto',
    compute: {
      module: device.createShaderModule({ code: '@compute @workgroup_size(1) fn main() {}' }),
      entryPoint: 'main',
    },
  });
  const proto = Object.getPrototypeOf(probe) as PipelineLike | null;
  if (!proto || proto === patchedPrototype || typeof proto.getBindGroupLayout !== 'function') return;
  patchedPrototype = proto;
  const get = proto.getBindGroupLayout;
  proto.getBindGroupLayout = function (this: object, index: number): unknown {
    let list = layouts.get(this);
    if (!list) layouts.set(this, (list = []));
    return (list[index] ??= get.call(this, index));
  };
}

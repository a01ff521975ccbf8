// How the engine's programs enter TF.js: each is a kernel registered for webgpu (a WGSL program run through
// the backend's program interface) and for cpu (its plain-JavaScript twin, the reference in tests), so a
// call is one `runKernel` on either backend and tf.profile / tidy / memory accounting see it like any op.
import * as tf from '@tensorflow/tfjs-core';

export interface WebGpuBackendLike {
  runWebGPUProgram(
    program: unknown,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms?: { type: string; data: number[] }[],
  ): tf.TensorInfo;
}

export interface CpuBackendLike {
  data: { get(id: object): { values: tf.TypedArray } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.TypedArray): tf.TensorInfo;
}

export type KernelArgs = Parameters<tf.KernelFunc>[0];

export function registerTwins(
  name: string,
  webgpu: (args: KernelArgs, backend: WebGpuBackendLike) => tf.TensorInfo,
  cpu: (args: KernelArgs, backend: CpuBackendLike) => tf.TensorInfo,
): void {
  const funcs = {
    webgpu: (a: KernelArgs) => webgpu(a, a.backend as WebGpuBackendLike),
    cpu: (a: KernelArgs) => cpu(a, a.backend as CpuBackendLike),
  };
  for (const [backendName, kernelFunc] of Object.entries(funcs)) {
    if (!tf.getKernel(name, backendName)) tf.registerKernel({ kernelName: name, backendName, kernelFunc });
  }
}

/** True when the active backend runs the engine's own programs (elsewhere the model uses plain TF.js ops). */
export function ownKernels(): boolean {
  return tf.getBackend() === 'webgpu';
}

/**
 * WGSL for "the row this workgroup handles" when one workgroup runs per row: the backend folds dispatches
 * over the per-dimension limit into x·y, so the row index is rebuilt from both.
 */
export const ROW_INDEX = 'i32(workgroupId.y * numWorkgroups.x + workgroupId.x)';

/** Dispatch sizes for `rows` workgroups (the backend reshapes past the per-dimension limit). */
export function rowDispatch(rows: number): [number, number, number] {
  return [rows, 1, 1];
}

/**
 * WGSL: a sum over the workgroup of `value` (f32), into `out`; every thread ends with the total. Needs
 * `var<workgroup> red : array<f32, WG>` declared and WG a power of two.
 */
export function workgroupSum(wg: number, value: string, out: string): string {
  return `
    red[lid] = ${value};
    workgroupBarrier();
    for (var s = ${wg / 2}; s > 0; s = s / 2) {
      if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
      workgroupBarrier();
    }
    let ${out} = red[0];
    workgroupBarrier();`;
}

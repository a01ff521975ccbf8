// TF.js backend selection. cpu, wasm and webgpu ship with the project; tensorflow (tfjs-node[-gpu]) is used
// only when the user installed it, loaded with require inside try/catch so it is never a dependency.
//
// `auto` rule, best first: tensorflow-gpu (tfjs-node-gpu loads) > webgpu with a real adapter (not a CPU /
// software rasteriser such as lavapipe/llvmpipe/SwiftShader) > tensorflow (tfjs-node) > wasm > cpu.
import * as tf from '@tensorflow/tfjs-core';
// A used binding, not a bare import: bundlers drop bare imports of this package (its sideEffects list omits
// the node build), and then no cpu backend would be registered.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { UserInputError } from '../formats';
import { setTileFamily } from './kernels/matmul-table';
import { installRecordingFastPaths } from './webgpu-recording';

export const BACKEND_CHOICES = ['auto', 'cpu', 'wasm', 'webgpu', 'tensorflow'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** The TF.js backend name now active (cpu, wasm, webgpu, tensorflow). */
  readonly name: string;
  /** What it runs on, for humans (adapter description, "CPU", ...). */
  readonly detail: string;
  /** Largest single tensor buffer the backend can bind, in bytes (WebGPU's storage-buffer limit). */
  readonly maxBindingBytes: number;
}

/** Largest tensor we create on backends without a binding limit (keeps single allocations moderate). */
const HOST_CHUNK_BYTES = 1 << 30;

export interface WebGpuAdapterFacts {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly software: boolean;
}

interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  readonly isFallbackAdapter?: boolean;
}

let webgpuInstalled: Promise<WebGpuAdapterFacts | string> | null = null;

interface DawnModule {
  create: (opts: string[]) => unknown;
  globals: Record<string, unknown>;
}

/**
 * The `webgpu` package is an ES module (plain Node ≥ 20.19 requires it fine). Where require() is a CommonJS
 * shim that cannot load ES modules (test runners), load its native Dawn addon directly: the package's wrapper
 * only patches GPUDevice.destroy, which the engine never calls.
 */
function loadDawn(): DawnModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('webgpu') as DawnModule;
  } catch (e) {
    const arch = process.platform === 'darwin' ? 'universal' : process.arch;
    const addon = ['webgpu', 'dist', `${process.platform}-${arch}`, 'dawn.node'].join('/');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(addon) as DawnModule;
    } catch {
      throw e;
    }
  }
}

/** True for adapters that run on the CPU (lavapipe/llvmpipe, SwiftShader, WARP, Dawn's fallback). */
export function isSoftwareAdapter(a: {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  fallback?: boolean;
}): boolean {
  if (a.fallback) return true;
  const s = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`.toLowerCase();
  return (
    /llvmpipe|lavapipe|swiftshader|software|microsoft basic render|\bwarp\b/.test(s) ||
    a.architecture.toLowerCase() === 'software'
  );
}

/**
 * Installs Dawn (the `webgpu` npm package) as `navigator.gpu` and asks it for an adapter. Returns the adapter's
 * facts, or a reason string when WebGPU is unavailable. Idempotent.
 */
export function installWebGpu(): Promise<WebGpuAdapterFacts | string> {
  if (webgpuInstalled) return webgpuInstalled;
  webgpuInstalled = (async () => {
    const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
    if (!g.navigator?.gpu) {
      let mod: DawnModule;
      try {
        mod = loadDawn();
      } catch (e) {
        return `the "webgpu" package (Dawn for Node) cannot be loaded: ${(e as Error).message.split('\n')[0]}`;
      }
      Object.assign(globalThis, mod.globals);
      const gpu = mod.create([]);
      // Node 21+ defines a read-only navigator; define the property rather than assigning it.
      if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
      else
        Object.defineProperty(globalThis, 'navigator', {
          value: { gpu },
          configurable: true,
          writable: true,
        });
    }
    const gpu = (
      globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<GpuAdapterLike | null> } } }
    ).navigator.gpu;
    let adapter: GpuAdapterLike | null;
    try {
      adapter = await gpu.requestAdapter();
    } catch (e) {
      return `WebGPU requestAdapter failed: ${(e as Error).message}`;
    }
    if (!adapter) return 'WebGPU found no adapter (no Vulkan/Metal/D3D12 driver)';
    const i = adapter.info ?? {};
    const facts = {
      vendor: i.vendor ?? '',
      architecture: i.architecture ?? '',
      device: i.device ?? '',
      description: i.description ?? '',
    };
    return {
      ...facts,
      software: isSoftwareAdapter({ ...facts, fallback: adapter.isFallbackAdapter === true }),
    };
  })();
  return webgpuInstalled;
}

function tryRequire(name: string): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(name);
    return null;
  } catch (e) {
    return (e as Error).message.split('\n')[0] ?? '';
  }
}

async function activate(name: string): Promise<boolean> {
  // PROD silences TF.js's console advice (e.g. "install tfjs-node") that would mix into CLI output.
  tf.env().set('PROD', true);
  try {
    const ok = await tf.setBackend(name);
    await tf.ready();
    return ok && tf.getBackend() === name;
  } catch {
    return false;
  }
}

function webgpuBindingLimit(): number {
  const be = tf.backend() as unknown as { device?: { limits?: { maxStorageBufferBindingSize?: number } } };
  return be.device?.limits?.maxStorageBufferBindingSize ?? 1 << 27;
}

async function useWebGpu(requireHardware: boolean): Promise<BackendInfo | string> {
  const facts = await installWebGpu();
  if (typeof facts === 'string') return facts;
  if (requireHardware && facts.software)
    return `WebGPU adapter is a software rasteriser (${facts.description})`;
  if (!tf.findBackendFactory('webgpu')) {
    // Required only now: the package registers its backend at load time only if navigator.gpu exists. A literal
    // require so the CLI bundle includes it (sharing the bundled tfjs-core).
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@tensorflow/tfjs-backend-webgpu');
    } catch (e) {
      return `@tensorflow/tfjs-backend-webgpu cannot be loaded: ${(e as Error).message.split('\n')[0]}`;
    }
    if (!tf.findBackendFactory('webgpu'))
      return 'the TF.js webgpu backend did not register (no navigator.gpu)';
  }
  if (!(await activate('webgpu'))) return 'the TF.js webgpu backend failed to initialise';
  setTileFamily(facts.software);
  // Dispatches TF.js records before it submits a command buffer (its default 15): fewer submits per token.
  const batch = process.env.MATFORMER_SUBMIT_BATCH;
  if (batch !== undefined) {
    if (!/^[1-9]\d*$/.test(batch))
      throw new UserInputError(`MATFORMER_SUBMIT_BATCH: ${JSON.stringify(batch)} is not a positive integer`);
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', Number(batch));
  }
  // Cheaper recording per dispatch (webgpu-recording.ts); `tfjs` keeps TF.js's own path, to compare.
  const recording = process.env.MATFORMER_RECORDING ?? 'cached';
  if (recording !== 'cached' && recording !== 'tfjs')
    throw new UserInputError(`MATFORMER_RECORDING: ${JSON.stringify(recording)} is not "cached" or "tfjs"`);
  if (recording === 'cached') installRecordingFastPaths(tf.backend());
  const detail = `${facts.description || facts.device || facts.vendor}${facts.software ? ' (software)' : ''}`;
  return { name: 'webgpu', detail, maxBindingBytes: webgpuBindingLimit() };
}

/** tfjs-node-gpu first, then tfjs-node; both register the backend named "tensorflow". */
async function useTensorflow(gpuOnly: boolean): Promise<BackendInfo | string> {
  const errors: string[] = [];
  for (const [pkg, gpu] of [
    ['@tensorflow/tfjs-node-gpu', true],
    ['@tensorflow/tfjs-node', false],
  ] as const) {
    if (gpuOnly && !gpu) continue;
    const err = tryRequire(pkg);
    if (err) {
      errors.push(`${pkg}: ${err}`);
      continue;
    }
    if (await activate('tensorflow')) {
      return {
        name: 'tensorflow',
        detail: gpu ? 'TensorFlow C library (GPU build)' : 'TensorFlow C library (CPU)',
        maxBindingBytes: Number.MAX_SAFE_INTEGER,
      };
    }
    errors.push(`${pkg}: loaded but the tensorflow backend did not start`);
  }
  return `the tensorflow backend needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node, which are not installed (npm install @tensorflow/tfjs-node); ${errors.join('; ')}`;
}

async function useWasm(): Promise<BackendInfo | string> {
  if (!tf.findBackendFactory('wasm')) {
    // In the CLI bundle the wasm package is external and brings its own tfjs-core copy; TF.js keeps one global
    // engine and kernel registry, so that works, but the copy announces "Platform node has already been set".
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (!String(args[0]).startsWith('Platform node has already been set')) warn(...args);
    };
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@tensorflow/tfjs-backend-wasm');
    } catch (e) {
      return `@tensorflow/tfjs-backend-wasm cannot be loaded: ${(e as Error).message.split('\n')[0]}`;
    } finally {
      console.warn = warn;
    }
  }
  if (!(await activate('wasm'))) return 'the TF.js wasm backend failed to initialise';
  reportWasmOutOfMemory(tf.backend() as unknown as { wasm?: WasmHeap });
  return { name: 'wasm', detail: 'WebAssembly (CPU)', maxBindingBytes: HOST_CHUNK_BYTES };
}

/**
 * TF.js's wasm backend does not check `_malloc`: when the wasm memory cannot grow (its 4 GB, or a lower
 * engine limit) it gets 0 and writes out of bounds, a confusing crash. A failed allocation throws what V8
 * throws for a typed array it cannot allocate, which the CLI reports as "out of memory" in one line.
 */
interface WasmHeap {
  _malloc?: (n: number) => number;
  _free?: (p: number) => void;
}

function reportWasmOutOfMemory(backend: { wasm?: WasmHeap }): void {
  const wasm = backend.wasm;
  if (!wasm?._malloc || !wasm._free || (wasm._malloc as { checked?: boolean }).checked) return;
  // Emscripten's export replaces itself with the raw function on its first call: settle it first.
  wasm._free(wasm._malloc(8));
  const malloc = wasm._malloc;
  const checked = (n: number) => {
    const p = malloc(n);
    if (p === 0 && n > 0)
      throw new RangeError(`WebAssembly memory allocation failed: ${n} bytes for a tensor on wasm`);
    return p;
  };
  wasm._malloc = Object.assign(checked, { checked: true });
}

async function useCpu(): Promise<BackendInfo> {
  if (!version_cpu || !tf.findBackendFactory('cpu'))
    throw new Error('the TF.js cpu backend is not registered');
  if (!(await activate('cpu'))) throw new Error('the TF.js cpu backend failed to initialise');
  return { name: 'cpu', detail: 'plain JavaScript (CPU)', maxBindingBytes: HOST_CHUNK_BYTES };
}

let current: BackendInfo | null = null;

/** The backend chosen by the last `initBackend`, if any. */
export function currentBackend(): BackendInfo | null {
  return current && tf.getBackend() === current.name ? current : null;
}

/**
 * Activates a backend. An explicit choice that is unavailable is a UserInputError saying why; `auto` walks the
 * order documented at the top of this file.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  let r: BackendInfo | string;
  switch (choice) {
    case 'cpu':
      r = await useCpu();
      break;
    case 'wasm':
      r = await useWasm();
      break;
    case 'webgpu':
      r = await useWebGpu(false);
      break;
    case 'tensorflow':
      r = await useTensorflow(false);
      break;
    case 'auto': {
      r = await useTensorflow(true);
      if (typeof r === 'string') r = await useWebGpu(true);
      if (typeof r === 'string') r = await useTensorflow(false);
      if (typeof r === 'string') r = await useWasm();
      if (typeof r === 'string') r = await useCpu();
      break;
    }
    default:
      throw new UserInputError(
        `unknown backend ${JSON.stringify(choice)} (choose from ${BACKEND_CHOICES.join(', ')})`,
      );
  }
  if (typeof r === 'string') throw new UserInputError(`backend ${choice} is not available: ${r}`);
  current = r;
  return r;
}

/** Why WebGPU cannot run here (null when it can); used by tests to skip with a reason. */
export async function webgpuUnavailableReason(): Promise<string | null> {
  const facts = await installWebGpu();
  return typeof facts === 'string' ? facts : null;
}

interface WebGpuBufferPool {
  freeBuffers: Map<string, { destroy(): void }[]>;
  numFreeBuffers: number;
  numBytesAllocated: number;
  numBytesUsed: number;
}

/**
 * TF.js's WebGPU backend keeps every freed buffer in a pool keyed by exact size and never frees it. Inputs of
 * ever-changing length (MMLU prompts) then grow the pool until the device runs out of memory (seen on the
 * H200 after ~100 questions of E4B). Past `maxIdleBytes` of idle buffers, destroy them all: buffers still
 * referenced by submitted work are freed by Dawn once that work completes, and TF.js defers releasing
 * buffers used by unsubmitted commands, so none of these is in an open command encoder.
 */
export function releaseIdleBuffers(maxIdleBytes = 4 * 2 ** 30): number {
  if (tf.getBackend() !== 'webgpu') return 0;
  const pool = (tf.backend() as unknown as { bufferManager?: WebGpuBufferPool }).bufferManager;
  if (!pool || !(pool.freeBuffers instanceof Map)) return 0;
  const idle = pool.numBytesAllocated - pool.numBytesUsed;
  if (idle <= maxIdleBytes) return 0;
  // Empty the lists but keep the keys: TF.js ignores every release while the map itself is empty.
  for (const list of pool.freeBuffers.values()) {
    for (const b of list) b.destroy();
    list.length = 0;
  }
  pool.numFreeBuffers = 0;
  pool.numBytesAllocated = pool.numBytesUsed;
  return idle;
}

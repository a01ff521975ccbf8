// Whether WebGPU (Dawn via the `webgpu` package) has an adapter here, decided before tests are collected:
// probed in a child process so a crashing driver cannot take the test runner down.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export interface WebGpuProbe {
  ok: boolean;
  /** Why not (when !ok), or the adapter's description. */
  detail: string;
}

const PROBE = `
const { create, globals } = require('webgpu');
Object.assign(globalThis, globals);
create([]).requestAdapter().then(
  (a) => { console.log(JSON.stringify(a ? { ok: true, detail: a.info.description || a.info.vendor || 'adapter' } : { ok: false, detail: 'no WebGPU adapter (no Vulkan/Metal/D3D12 driver)' })); process.exit(0); },
  (e) => { console.log(JSON.stringify({ ok: false, detail: 'requestAdapter failed: ' + e.message })); process.exit(0); });
`;

let cached: WebGpuProbe | null = null;

export function probeWebGpu(): WebGpuProbe {
  if (cached) return cached;
  const r = spawnSync(process.execPath, ['-e', PROBE], {
    cwd: path.resolve(__dirname, '..', '..'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    cached = JSON.parse(line) as WebGpuProbe;
  } catch {
    const why = (r.stderr ?? '').split('\n').find((l) => l.trim() !== '') ?? `exit code ${r.status}`;
    cached = { ok: false, detail: `the webgpu package cannot run here: ${why}` };
  }
  return cached;
}

/** `describe` when WebGPU has an adapter, else `describe.skip` with the reason printed. */
export function describeIfWebGpu(name: string, fn: () => void): void {
  const p = probeWebGpu();
  if (p.ok) {
    describe(`${name} [${p.detail}]`, fn);
    return;
  }
  console.warn(`skipping "${name}": ${p.detail}`);
  describe.skip(name, fn);
}

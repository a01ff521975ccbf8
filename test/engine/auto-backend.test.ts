// `auto` takes the fastest backend present. Without tfjs-node and without a hardware WebGPU adapter (CI and
// the dev VM have only lavapipe, a software rasteriser), that is wasm: ~20× the cpu backend's prefill on a
// 35-layer model here.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, installWebGpu } from '../../src/engine';

function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

it('auto skips software WebGPU adapters and prefers wasm to cpu', async () => {
  const facts = await installWebGpu();
  const hardwareGpu = typeof facts !== 'string' && !facts.software;
  const info = await initBackend('auto');
  if (hardwareGpu) expect(info.name).toBe('webgpu');
  else if (installed('@tensorflow/tfjs-node')) expect(info.name).toBe('tensorflow');
  else expect(info.name).toBe('wasm');
  expect(tf.getBackend()).toBe(info.name);
});

// The Gaussian top-k's standard deviation: population (N, transformers) by default, sample (N-1,
// llama.cpp) on request, which is what `export --verify` compares a GGUF runtime against.
import * as tf from '@tensorflow/tfjs-core';
import { gaussianZ, initBackend, type LayerPlan, type SparsityStd } from '../../src/engine';
import { Mlp, type LayerWeights } from '../../src/engine/gemma3n';

beforeAll(async () => {
  await initBackend('cpu');
});

function gateAfterTopK(x: number[], std: SparsityStd): number[] {
  const n = x.length;
  const eye = tf.eye(n) as tf.Tensor2D;
  const plan = { sparsity: 0.95, sparsityStd: std } as LayerPlan;
  // gate = up = down = identity: the output is gelu(relu(x - cutoff)) * x, so zeros mark the cut.
  const mlp = new Mlp(plan, { gate: eye, up: eye, down: eye } as unknown as LayerWeights);
  const out = tf.tidy(() => mlp.forward(tf.tensor2d([x])).arraySync()[0]!);
  eye.dispose();
  return out;
}

describe('Gaussian top-k standard deviation', () => {
  // mean 0.5, population std 0.87 (N = 4), sample std 1.0: cut-offs 1.92 and 2.14 with z = 1.645.
  const x = [0, 0, 0, 2];

  it('transformers divides by N, llama.cpp by N-1', () => {
    const mean = x.reduce((a, b) => a + b) / x.length;
    const ss = x.reduce((a, b) => a + (b - mean) ** 2, 0);
    const z = gaussianZ(0.95);
    expect(mean + z * Math.sqrt(ss / 4)).toBeLessThan(2);
    expect(mean + z * Math.sqrt(ss / 3)).toBeGreaterThan(2);
    // Population: 2 survives the cut; sample: it is cut too, so everything is zero.
    expect(gateAfterTopK(x, 'population')[3]).toBeGreaterThan(0);
    expect(gateAfterTopK(x, 'sample')).toEqual([0, 0, 0, 0]);
  });
});

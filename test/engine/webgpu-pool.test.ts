// TF.js's WebGPU buffer pool never frees: releaseIdleBuffers must free idle buffers without disturbing
// later computation (results identical, no lost releases).
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Engine, initBackend } from '../../src/engine';
import { releaseIdleBuffers } from '../../src/engine/backend';
import { describeIfShared } from '../helpers/shared';
import { GEMMA, gemmaDir } from './helpers';
import { describeIfWebGpu } from './webgpu-probe';

interface Pool {
  numBytesAllocated: number;
  numBytesUsed: number;
}
const pool = () => (tf.backend() as unknown as { bufferManager: Pool }).bufferManager;

describeIfShared(
  'webgpu buffer pool',
  () =>
    describeIfWebGpu('webgpu adapter', () => {
      let engine: Engine;
      beforeAll(async () => {
        await initBackend('webgpu');
        engine = await Engine.load(path.join(gemmaDir(), 'tiny-e4b'), { backend: 'webgpu' });
      });
      afterAll(() => engine?.dispose());

      it('frees idle buffers past the bound and keeps results identical', async () => {
        const model = engine.view();
        try {
          const seqs = [5, 9, 13, 17].map((n) =>
            Array.from({ length: n }, (_, i) => (i === 0 ? 2 : 3 + ((i * 37) % 900))),
          );
          const first = [];
          for (const s of seqs) first.push((await model.logits([s]))[0]!.slice());
          const idle = pool().numBytesAllocated - pool().numBytesUsed;
          expect(idle).toBeGreaterThan(0);
          expect(releaseIdleBuffers(Infinity)).toBe(0);
          expect(releaseIdleBuffers(0)).toBe(idle);
          expect(pool().numBytesAllocated).toBe(pool().numBytesUsed);
          for (let i = 0; i < seqs.length; i++) {
            expect(Array.from((await model.logits([seqs[i]!]))[0]!)).toEqual(Array.from(first[i]!));
          }
          // Releases are still accounted after a trim (TF.js ignores them if the pool map is emptied).
          expect(pool().numBytesAllocated - pool().numBytesUsed).toBeGreaterThan(0);
        } finally {
          model.dispose();
        }
      });
    }),
  [GEMMA],
);

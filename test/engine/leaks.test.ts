// Every forward frees what it allocates: 100 mixed calls (full logits, restricted head, cached decoding,
// views created and dropped) leave tf.memory() exactly where it started.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Engine, initBackend } from '../../src/engine';
import { describeIfShared } from '../helpers/shared';
import { GEMMA, gemmaDir } from './helpers';

describeIfShared(
  'tensor leaks (cpu)',
  () => {
    let engine: Engine;
    beforeAll(async () => {
      await initBackend('cpu');
      engine = await Engine.load(path.join(gemmaDir(), 'tiny-vocab'));
    });
    afterAll(() => engine?.dispose());

    it('100 forwards leave no tensor behind', async () => {
      // Warm-up: lazily created backend state (kernels, constants) is not a leak.
      const warm = engine.view();
      await warm.logits([[2, 5, 6]]);
      warm.dispose();
      const before = tf.memory();
      const model = engine.view();
      const cache = model.newCache(2);
      for (let i = 0; i < 100; i++) {
        switch (i % 5) {
          case 0:
            await model.logits([
              [2, 7 + i, 9],
              [2, 11],
            ]);
            break;
          case 1:
            await model.forward([[2, 3, 4 + i]], { positions: [[0, 2]], vocabIds: [562, 603] });
            break;
          case 2:
            await model.nextTokens([[2 + (i % 3)], [5]], cache);
            break;
          case 3: {
            const view = engine.view({ skip: [2], ffn: [64, 96, 128, 64, 96, 128, 64, 96, 128] });
            await view.nextTokens([[2, 100 + i]]);
            view.dispose();
            break;
          }
          default:
            await model.generate([[2, 300 + i]], { maxNewTokens: 2 });
        }
      }
      cache.dispose();
      model.dispose();
      const after = tf.memory();
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
    });

    it('a failed forward frees what it had allocated', async () => {
      const before = tf.memory().numTensors;
      const model = engine.view();
      await expect(model.logits([[2, 262399]])).rejects.toThrow(/outside the text vocabulary/);
      const cache = model.newCache(1);
      await expect(model.logits([[2], [3]], { cache })).rejects.toThrow(/holds 1 sequences/);
      const other = engine.view({ skip: [2], ffn: [64, 96, 128, 64, 96, 128, 64, 96, 128] });
      await expect(other.logits([[2]], { cache })).rejects.toThrow(/another model view/);
      other.dispose();
      cache.dispose();
      expect(() => cache.past(0)).toThrow(/after dispose/);
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  },
  [GEMMA],
);

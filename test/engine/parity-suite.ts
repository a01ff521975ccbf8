// The parity suite of fixtures/gemma3n/README.md, run per backend: every fixture and manifest slice, as an
// elastic view of the loaded parent and as a checkpoint written by the slicer, against transformers' logits.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Engine, initBackend, type BackendChoice } from '../../src/engine';
import { sliceCheckpoint } from '../../src/slicing';
import { tmpDir } from '../helpers/tmp';
import { gemmaDir, logParity, type ParityCase, parityCases, parityOf } from './helpers';

export interface SuiteOptions {
  backend: BackendChoice;
  /** Relative RMS error bound (README: 5e-3 on cpu/wasm, 1e-2 on webgpu). */
  tolerance: number;
  /** Which cases to run (all by default). */
  select?: (c: ParityCase) => boolean;
  /** Also check checkpoints written by the slicer (default true). */
  slicedCheckpoints?: boolean;
}

export function paritySuite(opts: SuiteOptions): void {
  const select = opts.select ?? (() => true);
  beforeAll(async () => {
    const info = await initBackend(opts.backend);
    expect(info.name).toBe(opts.backend);
  });

  for (const fixture of ['tiny-e4b', 'tiny-vocab']) {
    describe(fixture, () => {
      let parent: Engine;
      beforeAll(async () => {
        parent = await Engine.load(path.join(gemmaDir(), fixture), { backend: opts.backend });
      });
      afterAll(() => parent?.dispose());

      const check = async (engine: Engine, c: ParityCase, how: string, spec = c.spec) => {
        const model = engine.view(spec ?? undefined);
        try {
          const stats = await parityOf(model, c);
          stats.forEach((s, i) =>
            logParity(
              `${opts.backend}\t${c.fixture}\t${c.label}\t${how}\tseq ${i}\trel ${s.relRms.toExponential(2)}\targmax ${(100 * s.argmaxAgreement).toFixed(1)}%\tmaxabs ${s.maxAbs.toExponential(2)}`,
            ),
          );
          for (const s of stats) {
            expect(s.relRms).toBeLessThanOrEqual(opts.tolerance);
            expect(s.argmaxAgreement).toBeGreaterThanOrEqual(0.99);
          }
          const [greedy] = await model.generate([c.greedyPrompt], { maxNewTokens: c.greedy.length });
          expect(greedy).toEqual(c.greedy);
        } finally {
          model.dispose();
        }
      };

      for (const c of parityCases(fixture).filter(select)) {
        it(`${c.label}: elastic view of the parent matches transformers`, async () => {
          const before = tf.memory().numTensors;
          await check(parent, c, 'elastic');
          expect(tf.memory().numTensors).toBe(before);
        });
        if (c.spec && opts.slicedCheckpoints !== false) {
          it(`${c.label}: sliced checkpoint matches transformers`, async () => {
            const out = path.join(tmpDir('matformer-engine-'), c.label);
            await sliceCheckpoint({
              src: path.join(gemmaDir(), fixture),
              out,
              flags: { skip: c.spec!.skip, ffn: c.spec!.ffn },
            });
            const sliced = await Engine.load(out, { backend: opts.backend });
            try {
              await check(sliced, c, 'sliced', null);
            } finally {
              sliced.dispose();
            }
          });
        }
      }
    });
  }
}

// Dispatches per decoder layer on webgpu, pinned so they cannot silently grow back (each dispatch costs a
// host round of encoding and, on a GPU, a launch). Measured on tiny-e4b: a prefill and one decode step.
import * as path from 'node:path';
import { Engine, initBackend } from '../../src/engine';
import { countDispatches } from '../../src/engine';
import { describeIfShared } from '../helpers/shared';
import { GEMMA, gemmaDir, manifest } from './helpers';
import { describeIfWebGpu } from './webgpu-probe';

/**
 * Upper bounds per layer (prefill of one short sequence, one decode step), measured 2026-12-02 on lavapipe:
 * 137 and 138 before the fused programs, 49 and 51 before gate|up, AltUp routing, the norm+residual programs
 * and decode attention in one program, 29.7 and 30.8 (prompts of up to 8 tokens take the attention
 * program too; longer ones its 4 ops more), now 28.7 and 29.8 (the GELU gate reads the layer's per-layer input
 * in place instead of a slice per layer).
 */
const MAX_PER_LAYER = { prefill: 30, decode: 31 };

/**
 * The int8 fast mode: each int8 product is two programs (quantize the rows, then multiply), q/k/v share one
 * quantization and gate|up is one product, so +4 per layer (measured 2026-12-02 on lavapipe: 33.7 and 34.8).
 */
const MAX_PER_LAYER_INT8 = { prefill: 35, decode: 36 };

describeIfShared(
  'webgpu dispatch budget',
  () =>
    describeIfWebGpu('webgpu adapter', () => {
      for (const precision of ['exact', 'int8'] as const) {
        const budget = precision === 'exact' ? MAX_PER_LAYER : MAX_PER_LAYER_INT8;
        it(`stays within the per-layer budget for a prefill and a decode step (${precision})`, async () => {
          await initBackend('webgpu');
          const engine = await Engine.load(path.join(gemmaDir(), 'tiny-e4b'), {
            backend: 'webgpu',
            precision,
          });
          const model = engine.view();
          const cache = model.newCache(1);
          try {
            const prompt = manifest()['tiny-e4b']!.greedy_prompt;
            const warm = model.newCache(1);
            await model.nextTokens([prompt], warm); // shader compilation
            warm.dispose();
            let next: number[] = [];
            const prefill = await countDispatches(
              async () => (next = await model.nextTokens([prompt], cache)),
            );
            const decode = await countDispatches(() => model.nextTokens([next], cache));
            const L = model.cfg.layers.length;
            process.stdout.write(
              `dispatches per layer (${precision}): prefill ${prefill / L}, decode ${decode / L}\n`,
            );
            expect(prefill).toBeGreaterThan(0);
            expect(prefill / L).toBeLessThanOrEqual(budget.prefill);
            expect(decode / L).toBeLessThanOrEqual(budget.decode);
          } finally {
            cache.dispose();
            model.dispose();
            engine.dispose();
          }
        });
      }

      it('rows continuing a shared prefix take no more than a cache of their own', async () => {
        await initBackend('webgpu');
        const engine = await Engine.load(path.join(gemmaDir(), 'tiny-e4b'), { backend: 'webgpu' });
        const model = engine.view();
        const prefix = model.newCache(1);
        const prompt = manifest()['tiny-e4b']!.greedy_prompt;
        try {
          await model.prefill([prompt], prefix);
          const run = async () => {
            const cache = prefix.share(4);
            try {
              const suffixes = [
                prompt.slice(0, 3),
                prompt.slice(1, 2),
                prompt.slice(0, 4),
                prompt.slice(2, 4),
              ];
              let next: number[] = [];
              const group = await countDispatches(
                async () => (next = await model.nextTokens(suffixes, cache)),
              );
              const step = await countDispatches(() =>
                model.nextTokens(
                  next.map((t) => [t]),
                  cache,
                ),
              );
              return { group, step };
            } finally {
              cache.dispose();
            }
          };
          await run(); // shader compilation
          const { group, step } = await run();
          const L = model.cfg.layers.length;
          process.stdout.write(
            `dispatches per layer after a shared prefix: group ${group / L}, step ${step / L}\n`,
          );
          expect(group / L).toBeLessThanOrEqual(MAX_PER_LAYER.prefill);
          expect(step / L).toBeLessThanOrEqual(MAX_PER_LAYER.decode);
        } finally {
          prefix.dispose();
          model.dispose();
          engine.dispose();
        }
      });
    }),
  [GEMMA],
);

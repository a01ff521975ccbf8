// executePlans: several slices in one pass over the parent equal the same slices written one at a time, byte
// for byte, whatever the chunk size (reads that split rows, several rows per column compaction, shard edges).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '../../src/formats';
import { loadConfig } from '../../src/gemma3n';
import { executePlan, executePlans, planSlice, sourceTensors } from '../../src/slicing';
import { tmpDir } from '../helpers/tmp';
import { demoConfig, randomCheckpoint } from '../sweep/helpers';

describe('executePlans', () => {
  it('writes several slices in one pass, each identical to its own executePlan', async () => {
    const dir = tmpDir();
    const src = await randomCheckpoint(
      dir,
      'p',
      demoConfig({ layers: 10, width: 64, kvShared: 4, vocab: 4096 }),
      5,
      200_000,
    );
    const parent = loadConfig(src);
    const specs = [
      { skip: [7], ffn: [16, 16, 64, 64, 32, 32, 64, 64, 48] },
      { skip: [], ffn: Array(10).fill(40) },
      { skip: [2, 3], ffn: Array(8).fill(64) },
    ];
    const ckpt = Checkpoint.open(src);
    try {
      const tensors = sourceTensors(ckpt);
      expect(ckpt.shards.length).toBeGreaterThan(2);
      for (const chunkBytes of [777, 1 << 20]) {
        const outs = specs.map((spec, i) => ({
          plan: planSlice(parent, tensors, spec, { maxShardBytes: 150_000 }),
          outDir: path.join(dir, `many-${chunkBytes}-${i}`),
          card: `card ${i}\n`,
        }));
        await executePlans(outs, ckpt, { chunkBytes });
        for (const [i, o] of outs.entries()) {
          const one = path.join(dir, `one-${chunkBytes}-${i}`);
          await executePlan(o.plan, ckpt, { outDir: one, card: o.card });
          const files = fs.readdirSync(one).sort();
          expect(fs.readdirSync(o.outDir).sort()).toEqual(files);
          expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
          for (const f of files)
            expect(fs.readFileSync(path.join(o.outDir, f)).equals(fs.readFileSync(path.join(one, f)))).toBe(
              true,
            );
        }
      }
      // No temporary folders left beside the outputs.
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
    } finally {
      ckpt.close();
    }
  });
});

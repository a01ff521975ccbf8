// What slicing E2B out of the published E4B reads from the Hub, computed from a plan over the E4B
// tensor inventory (names, shapes, dtypes). The figure in the README comes from here.
import * as fs from 'node:fs';
import { dtypeBytes, isDType, numel } from '../../src/formats';
import { parseConfig, resolveSpec } from '../../src/gemma3n';
import { SourceTensor, planReads, planSlice } from '../../src/slicing';

export interface Savings {
  readonly parentBytes: number;
  readonly readBytes: number;
  readonly outputBytes: number;
}

export function e2bSavings(inventoryPath: string, textOnly: boolean): Savings {
  const inv = JSON.parse(fs.readFileSync(inventoryPath, 'utf8')) as {
    config: unknown;
    tensors: Record<string, [number[], string]>;
  };
  const parent = parseConfig(inv.config, inventoryPath);
  const tensors: SourceTensor[] = Object.entries(inv.tensors).map(([name, [shape, dtype]]) => {
    if (!isDType(dtype)) throw new Error(`${name}: dtype ${dtype}`);
    return { name, shape, dtype };
  });
  // Laid out back to back in one file: the bytes read do not depend on how shards split the tensors.
  const offsets = new Map<string, number>();
  let at = 0;
  for (const t of tensors) {
    offsets.set(t.name, at);
    at += numel(t.shape) * dtypeBytes(t.dtype);
  }
  const { spec } = resolveSpec({ preset: 'Config for official E2B Model' }, parent);
  const plan = planSlice(parent, tensors, spec, { textOnly });
  const reads = planReads(plan, (name) => ({ shard: 'all', offset: offsets.get(name)! }));
  return { parentBytes: at, readBytes: reads.readBytes, outputBytes: plan.outputBytes };
}

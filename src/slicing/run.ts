// One slice from start to finish: read the parent, resolve the spec, plan, then (unless a dry run) write.
import * as path from 'node:path';
import { Checkpoint } from '../formats';
import { ResolvedSpec, SpecFlags, loadConfig, resolveSpec } from '../gemma3n';
import { renderCard } from './card';
import { ExecuteResult, executePlan, sourceTensors } from './execute';
import { SlicePlan, planSlice } from './plan';

export interface SliceOptions {
  readonly src: string;
  readonly out?: string;
  readonly flags: SpecFlags;
  readonly maxShardBytes?: number;
  readonly dryRun?: boolean;
  readonly force?: boolean;
  readonly chunkBytes?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number) => void;
  readonly onWarning?: (message: string) => void;
  readonly onTempDir?: (dir: string) => void;
}

export interface SliceOutcome {
  readonly plan: SlicePlan;
  readonly resolved: ResolvedSpec;
  /** What was written (real runs only). */
  readonly result?: ExecuteResult;
}

export async function sliceCheckpoint(opts: SliceOptions): Promise<SliceOutcome> {
  const parent = loadConfig(opts.src);
  const resolved = resolveSpec(opts.flags, parent);
  resolved.warnings.forEach((w) => opts.onWarning?.(w));
  const ckpt = Checkpoint.open(opts.src);
  try {
    const plan = planSlice(parent, sourceTensors(ckpt), resolved.spec, { maxShardBytes: opts.maxShardBytes });
    if (opts.dryRun) return { plan, resolved };
    if (!opts.out) throw new Error('sliceCheckpoint: `out` is required unless dryRun');
    const card = renderCard({
      plan,
      srcDir: path.resolve(opts.src),
      outDir: path.resolve(opts.out),
      maxShardBytes: opts.maxShardBytes,
      preset: resolved.preset,
    });
    const result = await executePlan(plan, ckpt, {
      outDir: opts.out,
      force: opts.force,
      card,
      chunkBytes: opts.chunkBytes,
      onProgress: opts.onProgress,
      signal: opts.signal,
      onTempDir: opts.onTempDir,
    });
    return { plan, resolved, result };
  } finally {
    ckpt.close();
  }
}

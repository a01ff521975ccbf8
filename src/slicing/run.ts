// One slice from start to finish: read the parent, resolve the spec, plan, then (unless a dry run) write.
import * as path from 'node:path';
import { ByteRanges, Checkpoint, TensorShard, UserInputError } from '../formats';
import { ResolvedSpec, SpecFlags, checkTensors, loadConfig, resolveSpec, tensorProblems } from '../gemma3n';
import { renderCard } from './card';
import { ExecuteResult, executePlan, sourceTensors } from './execute';
import { SlicePlan, planSlice } from './plan';
import { ReadPlan, planReads } from './reads';

/**
 * A parent opened elsewhere (e.g. from the Hub): `dir` holds config.json and the side files, the
 * shards may be remote. `expectReads` is told, before any data is read, which byte ranges will be.
 */
export interface OpenedParent {
  readonly dir: string;
  readonly ckpt: Checkpoint<TensorShard>;
  readonly expectReads?: (shard: TensorShard, ranges: ByteRanges) => void;
}

export interface SliceOptions {
  /** The parent as the user named it (a folder, or an hf:// address with `parent`). */
  readonly src: string;
  readonly parent?: OpenedParent;
  readonly textOnly?: boolean;
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
  readonly onNotice?: (line: string) => void;
}

export interface SliceOutcome {
  readonly plan: SlicePlan;
  readonly reads: ReadPlan;
  readonly resolved: ResolvedSpec;
  /** What was written (real runs only). */
  readonly result?: ExecuteResult;
}

export async function sliceCheckpoint(opts: SliceOptions): Promise<SliceOutcome> {
  const parent = loadConfig(opts.parent?.dir ?? opts.src);
  const resolved = resolveSpec(opts.flags, parent);
  resolved.warnings.forEach((w) => opts.onWarning?.(w));
  const ckpt = opts.parent?.ckpt ?? Checkpoint.open(opts.src);
  try {
    // A broken source (missing or wrong-shape tensors, an empty weight_map) is refused as inspect does.
    const problem = tensorProblems(checkTensors(parent, ckpt));
    if (problem) throw new UserInputError(`${opts.src}: ${problem}; run inspect for the full list`);
    const plan = planSlice(parent, sourceTensors(ckpt), resolved.spec, {
      maxShardBytes: opts.maxShardBytes,
      textOnly: opts.textOnly,
    });
    const shardOf = new Map(ckpt.shards.map((s) => [s.path, s]));
    const reads = planReads(plan, (name) => {
      const { file, info } = ckpt.get(name);
      return { shard: file.path, offset: file.dataOffset + info.begin };
    });
    if (opts.dryRun) return { plan, reads, resolved };
    for (const [shard, ranges] of reads.byShard) opts.parent?.expectReads?.(shardOf.get(shard)!, ranges);
    if (!opts.out) throw new Error('sliceCheckpoint: `out` is required unless dryRun');
    const card = renderCard({
      plan,
      srcDir: opts.parent ? opts.src : path.resolve(opts.src),
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
      onNotice: opts.onNotice,
    });
    return { plan, reads, resolved, result };
  } finally {
    ckpt.close();
  }
}

// A checkpoint on the Hub opened in place: config, index and side files are downloaded into a small
// staging folder, each shard becomes a SafetensorsReader over HTTP range requests (its header read
// with one or two requests), and reads are batched along the runs the caller says it will read.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ByteRanges,
  CONFIG_FILE,
  Checkpoint,
  CoalescingByteSource,
  INDEX_FILE,
  SafetensorsReader,
  TensorShard,
} from '../formats';
import { CHECKPOINT_FILES, RepoSnapshot, downloadFiles, matchFiles, snapshotRepo } from './download';
import { HubAccessError } from './errors';
import { HttpByteSource } from './http';
import { HubOptions, RepoRef, formatHfUri, resolveUrl } from './repo';

export interface HubCheckpoint {
  readonly snapshot: RepoSnapshot;
  /** `hf://owner/repo@<commit>`: names exactly what was read. */
  readonly pinned: string;
  /** Local folder with config.json, the index and (unless headers-only) tokenizer and other side files. */
  readonly dir: string;
  readonly ckpt: Checkpoint<SafetensorsReader>;
  /** Tells a shard which byte ranges will be read, so its reads are batched along them. */
  expectReads(shard: TensorShard, ranges: ByteRanges): void;
  /** Bytes received for the weights so far (headers included) and the requests made. */
  transferred(): { bytes: number; requests: number };
  /** Closes the shards and removes the staging folder. */
  close(): Promise<void>;
}

export interface OpenHubOptions extends HubOptions {
  /** Only config and index besides the shard headers (`inspect`); otherwise tokenizer etc. too. */
  readonly headersOnly?: boolean;
  /** Largest batched read (default 16 MiB). */
  readonly windowBytes?: number;
}

export async function openHubCheckpoint(ref: RepoRef, opts: OpenHubOptions): Promise<HubCheckpoint> {
  const snapshot = await snapshotRepo(ref, opts);
  const byPath = new Map(snapshot.files.map((f) => [f.path, f]));
  if (!byPath.has(CONFIG_FILE))
    throw new HubAccessError(`${ref.name}: has no config.json at ${ref.revision}`);
  const small = opts.headersOnly
    ? [CONFIG_FILE, INDEX_FILE]
    : CHECKPOINT_FILES.filter((g) => g !== '*.safetensors');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'matformer-hub-'));
  // A second Ctrl-C exits at once (cli/boundary.ts): the staging folder goes with the process.
  const removeStaging = () => fs.rmSync(dir, { recursive: true, force: true });
  process.on('exit', removeStaging);
  const sources: HttpByteSource[] = [];
  const batched = new Map<string, CoalescingByteSource>();
  try {
    await downloadFiles(snapshot, matchFiles(snapshot.files, small), { ...opts, outDir: dir });
    const ckpt = await Checkpoint.openWith(dir, async (name) => {
      const f = byPath.get(name);
      if (!f) {
        throw new HubAccessError(
          byPath.has(INDEX_FILE)
            ? `${ref.name}: ${INDEX_FILE} names shard ${name}, which the repository does not have`
            : `${ref.name}: not a checkpoint: expected ${INDEX_FILE} or ${name} at ${ref.revision}`,
        );
      }
      const http = new HttpByteSource(
        `${formatHfUri({ ...ref, revision: snapshot.commit.slice(0, 12) })}/${name}`,
        f.size,
        resolveUrl(ref, name, opts, snapshot.commit),
        { ref, file: name, opts },
      );
      sources.push(http);
      const source = new CoalescingByteSource(http, opts.windowBytes);
      batched.set(http.name, source);
      return SafetensorsReader.open(source);
    });
    return {
      snapshot,
      pinned: formatHfUri({ ...ref, revision: snapshot.commit }),
      dir,
      ckpt,
      expectReads: (shard, ranges) => batched.get(shard.path)?.expect(ranges),
      transferred: () => ({
        bytes: sources.reduce((n, s) => n + s.receivedBytes, 0),
        requests: sources.reduce((n, s) => n + s.requests, 0),
      }),
      close: async () => {
        ckpt.close();
        process.off('exit', removeStaging);
        await fsp.rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    process.off('exit', removeStaging);
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// Downloading a repository's files: list them at one commit, pick the ones a checkpoint (or a data set)
// needs, and fetch each into a hidden partial file beside its target that resumes with a Range
// request, is checked against the Hub's checksum (sha256 of LFS files, the git blob id of the others)
// and is renamed into place only when complete.
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { datasetInfo, listFiles, modelInfo } from '@huggingface/hub';
import { HubAccessError, HubTransferError } from './errors';
import { hubFetch, streamRange } from './http';
import { HubOptions, RepoRef, hubUrlOf, repoPage, resolveUrl, safeRepoPath } from './repo';

/** What a checkpoint folder needs: weights, index, config, tokenizer, generation and processor files. */
export const CHECKPOINT_FILES = [
  '*.safetensors',
  '*.safetensors.index.json',
  'config.json',
  'generation_config.json',
  'tokenizer*',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.*',
  '*processor_config.json',
  'preprocessor_config.json',
  'feature_extractor_config.json',
];

export interface RepoFile {
  readonly path: string;
  readonly size: number;
  /** sha256 of the content (LFS files). */
  readonly sha256?: string;
  /** Git blob id (sha1 of "blob <size>\0" + content) of files stored in git itself. */
  readonly gitOid?: string;
}

export interface RepoSnapshot {
  readonly ref: RepoRef;
  /** The commit the revision resolved to: every file is fetched from it. */
  readonly commit: string;
  readonly gated: boolean;
  readonly files: readonly RepoFile[];
}

/** Resolves the revision to a commit and lists every file there (through @huggingface/hub). */
export async function snapshotRepo(ref: RepoRef, opts: HubOptions): Promise<RepoSnapshot> {
  const common = {
    hubUrl: hubUrlOf(opts),
    accessToken: opts.token,
    fetch: hubFetch({ ref, file: null, opts }),
    revision: ref.revision,
  };
  const info =
    ref.type === 'dataset'
      ? await datasetInfo({ ...common, name: ref.name, additionalFields: ['sha'] })
      : await modelInfo({ ...common, name: ref.name, additionalFields: ['sha'] });
  const commit = (info as { sha?: unknown }).sha;
  if (typeof commit !== 'string' || !/^[0-9a-f]{40}$/.test(commit)) {
    throw new HubTransferError(`${ref.name}: the Hub did not say which commit ${ref.revision} is`);
  }
  const gated = Boolean((info as { gated?: unknown }).gated);
  if (gated && !opts.token) {
    const kind = ref.type === 'dataset' ? 'dataset' : 'model';
    throw new HubAccessError(
      `${ref.name}: gated ${kind}, and no token was given: accept its license at ${repoPage(ref, opts)}, then pass --token or set HF_TOKEN`,
    );
  }
  const files: RepoFile[] = [];
  for await (const e of listFiles({
    ...common,
    repo: { type: ref.type, name: ref.name },
    revision: commit,
    recursive: true,
  })) {
    if (e.type !== 'file') continue;
    files.push({
      path: safeRepoPath(e.path),
      size: e.lfs?.size ?? e.size,
      sha256: e.lfs?.oid,
      gitOid: e.lfs ? undefined : e.oid,
    });
  }
  return {
    ref,
    commit,
    gated,
    files: files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
}

/** The files matching any of the globs (matched against the whole path: `*` stays inside a folder). */
export function matchFiles(files: readonly RepoFile[], globs: readonly string[]): RepoFile[] {
  const match = picomatch([...globs], { dot: true });
  return files.filter((f) => match(f.path));
}

/** `matchFiles`, refusing a selection that matches nothing. */
export function selectFiles(
  snapshot: RepoSnapshot,
  globs: readonly string[],
  flag = '--include',
): RepoFile[] {
  const picked = matchFiles(snapshot.files, globs);
  if (picked.length === 0) {
    throw new HubAccessError(
      `${flag}: ${globs.join(', ')} matches no file of ${snapshot.ref.name} at ${snapshot.ref.revision}`,
    );
  }
  return picked;
}

export type FileOutcome = 'downloaded' | 'resumed' | 'present';

export interface DownloadOptions {
  readonly outDir: string;
  /** Replace existing files that differ from the Hub's. */
  readonly force?: boolean;
  /** Files fetched at once (default 4). */
  readonly concurrency?: number;
  /** Bytes done (including resumed and present files) and in total, after every chunk. */
  readonly onProgress?: (done: number, total: number) => void;
  readonly onFile?: (file: RepoFile, outcome: FileOutcome) => void;
}

export interface DownloadResult {
  readonly commit: string;
  readonly outDir: string;
  readonly files: readonly { readonly path: string; readonly bytes: number; readonly outcome: FileOutcome }[];
  /** Bytes received over the network in this run. */
  readonly receivedBytes: number;
}

/** The checksum the Hub lists for a file, and a hash that computes it. */
function checksumOf(file: RepoFile): { expected: string; kind: string; hash: () => Hash } | null {
  if (file.sha256) return { expected: file.sha256, kind: 'sha256', hash: () => createHash('sha256') };
  if (file.gitOid) {
    return {
      expected: file.gitOid,
      kind: 'git blob id',
      hash: () => createHash('sha1').update(`blob ${file.size}\0`),
    };
  }
  return null;
}

async function hashFile(file: string, h: Hash, upTo?: number): Promise<void> {
  const stream = fs.createReadStream(file, upTo === undefined ? {} : { end: upTo - 1 });
  for await (const chunk of stream) h.update(chunk as Buffer);
}

/** Hidden siblings of the target: the partial data and what it is a part of. */
function partialPaths(target: string): { part: string; meta: string } {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return { part: path.join(dir, `.${base}.part`), meta: path.join(dir, `.${base}.part.json`) };
}

async function sizeOf(p: string): Promise<number | null> {
  try {
    return (await fsp.stat(p)).size;
  } catch {
    return null;
  }
}

/** Whether an existing target is this file: same size, and the same git blob id when the Hub gives one. */
async function isPresent(target: string, file: RepoFile): Promise<boolean> {
  if ((await sizeOf(target)) !== file.size) return false;
  // LFS files are large: checked when downloaded, trusted by size afterwards.
  if (file.sha256 || !file.gitOid) return true;
  const sum = checksumOf(file)!;
  const h = sum.hash();
  await hashFile(target, h);
  return h.digest('hex') === sum.expected;
}

async function downloadOne(
  snapshot: RepoSnapshot,
  file: RepoFile,
  opts: HubOptions & DownloadOptions,
  step: (bytes: number) => void,
  received: (bytes: number) => void,
): Promise<FileOutcome> {
  const target = path.join(opts.outDir, file.path);
  if ((await sizeOf(target)) !== null) {
    if (await isPresent(target, file)) {
      // A run killed between the rename and the clean-up leaves the part's note behind.
      const { part, meta } = partialPaths(target);
      await fsp.rm(part, { force: true });
      await fsp.rm(meta, { force: true });
      step(file.size);
      return 'present';
    }
    if (!opts.force) {
      throw new HubAccessError(
        `${target}: exists and differs from ${file.path} of ${snapshot.ref.name}@${snapshot.commit.slice(0, 12)}; pass --force to replace it`,
      );
    }
  }
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const { part, meta } = partialPaths(target);
  const sum = checksumOf(file);
  const identity = JSON.stringify({ path: file.path, size: file.size, checksum: sum?.expected ?? null });
  // A partial file resumes only if it belongs to the same content (same checksum and size).
  let offset = 0;
  const prior = await fsp.readFile(meta, 'utf8').catch(() => null);
  const partSize = await sizeOf(part);
  if (prior === identity && partSize !== null && partSize <= file.size) offset = partSize;
  else {
    await fsp.rm(part, { force: true });
    await fsp.writeFile(meta, identity);
  }
  const hash = sum?.hash();
  if (hash && offset > 0) await hashFile(part, hash, offset);
  step(offset);
  const handle = await fsp.open(part, offset > 0 ? 'r+' : 'w');
  try {
    let position = offset;
    if (offset < file.size) {
      const url = resolveUrl(snapshot.ref, file.path, opts, snapshot.commit);
      const ctx = { ref: snapshot.ref, file: file.path, opts };
      await streamRange(url, offset, file.size - offset, file.size, ctx, async (chunk) => {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done, position + done);
          done += bytesWritten;
        }
        hash?.update(chunk);
        position += chunk.byteLength;
        step(chunk.byteLength);
        received(chunk.byteLength);
      });
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (hash && sum) {
    const got = hash.digest('hex');
    if (got !== sum.expected) {
      await fsp.rm(part, { force: true });
      await fsp.rm(meta, { force: true });
      throw new HubTransferError(
        `${file.path}: ${sum.kind} mismatch: the Hub lists ${sum.expected}, the downloaded bytes give ${got}; the partial file was removed, run the command again`,
      );
    }
  }
  if ((await sizeOf(part)) !== file.size) {
    throw new HubTransferError(
      `${file.path}: downloaded ${await sizeOf(part)} bytes, the Hub lists ${file.size}`,
    );
  }
  await fsp.rename(part, target);
  await fsp.rm(meta, { force: true });
  return offset > 0 ? 'resumed' : 'downloaded';
}

/** Downloads `files` of the snapshot into `opts.outDir` (a few at once), resuming partial files. */
export async function downloadFiles(
  snapshot: RepoSnapshot,
  files: readonly RepoFile[],
  opts: HubOptions & DownloadOptions,
): Promise<DownloadResult> {
  const total = files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  let receivedBytes = 0;
  const step = (n: number) => {
    done += n;
    opts.onProgress?.(done, total);
  };
  const outcomes = new Map<string, FileOutcome>();
  // Small files first: config and tokenizer are there early, and the bar then tracks the shards.
  const queue = [...files].sort((a, b) => a.size - b.size);
  const failures: unknown[] = [];
  const worker = async () => {
    for (let f = queue.shift(); f && failures.length === 0; f = queue.shift()) {
      try {
        const outcome = await downloadOne(snapshot, f, opts, step, (n) => (receivedBytes += n));
        outcomes.set(f.path, outcome);
        opts.onFile?.(f, outcome);
      } catch (err) {
        failures.push(err);
      }
    }
  };
  const jobs = Math.max(1, Math.min(opts.concurrency ?? 4, files.length));
  await Promise.all(Array.from({ length: jobs }, worker));
  if (failures.length > 0) throw failures[0];
  return {
    commit: snapshot.commit,
    outDir: path.resolve(opts.outDir),
    files: files.map((f) => ({ path: f.path, bytes: f.size, outcome: outcomes.get(f.path)! })),
    receivedBytes,
  };
}

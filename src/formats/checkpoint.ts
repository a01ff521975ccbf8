// A Hugging Face checkpoint folder: config.json plus one safetensors file or shards with an index.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { CheckpointError, SafetensorsFile, TensorInfo, TensorShard } from './safetensors';
import { decodeFloat32, isFloatDecodable } from './dtype';
import { fileProblem } from './files';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

export interface CheckpointTensor<S extends TensorShard = SafetensorsFile> {
  readonly file: S;
  readonly info: TensorInfo;
}

/** Shard file names come from a JSON file we do not control: keep them inside the folder. */
export function validateShardName(indexPath: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new CheckpointError(indexPath, `weight_map values must be file names, got ${JSON.stringify(name)}`);
  }
  if (name.includes('/') || name.includes('\\') || name === '.' || name === '..' || name.includes('\0')) {
    throw new CheckpointError(
      indexPath,
      `shard name ${JSON.stringify(name)} must be a plain file name inside the folder`,
    );
  }
  return name;
}

export interface IndexFile {
  readonly metadata: Record<string, unknown>;
  readonly weightMap: Map<string, string>;
}

export function parseIndex(indexPath: string, text: string): IndexFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CheckpointError(indexPath, 'is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError(indexPath, 'expected a JSON object with a weight_map');
  }
  const j = json as Record<string, unknown>;
  const wm = j.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(indexPath, 'expected "weight_map": {tensor name: shard file}');
  }
  const weightMap = new Map<string, string>();
  for (const [k, v] of Object.entries(wm)) weightMap.set(k, validateShardName(indexPath, v));
  const meta = j.metadata;
  return {
    metadata:
      typeof meta === 'object' && meta !== null && !Array.isArray(meta)
        ? (meta as Record<string, unknown>)
        : {},
    weightMap,
  };
}

/**
 * The tensors of a checkpoint folder by name. Local folders open synchronously with positional reads
 * (`open`); `openWith` takes any shard opener, e.g. HTTP range requests with the folder holding only
 * config and index.
 */
export class Checkpoint<S extends TensorShard = SafetensorsFile> {
  private constructor(
    readonly dir: string,
    readonly shards: readonly S[],
    readonly tensors: ReadonlyMap<string, CheckpointTensor<S>>,
    readonly index: IndexFile | null,
  ) {}

  /** The index's shards, or the single file, opened with `openShard` (by file name in `dir`). */
  static async openWith<S extends TensorShard>(
    dir: string,
    openShard: (file: string) => Promise<S>,
  ): Promise<Checkpoint<S>> {
    const indexPath = path.join(dir, INDEX_FILE);
    const index = fs.existsSync(indexPath) ? parseIndex(indexPath, fs.readFileSync(indexPath, 'utf8')) : null;
    const names = index ? [...new Set(index.weightMap.values())].sort() : [SINGLE_FILE];
    const byName = new Map<string, S>();
    try {
      for (const name of names) byName.set(name, await openShard(name));
      return Checkpoint.assemble(dir, index, byName);
    } catch (err) {
      for (const s of byName.values()) s.close();
      throw err;
    }
  }

  private static assemble<S extends TensorShard>(
    dir: string,
    index: IndexFile | null,
    byName: ReadonlyMap<string, S>,
  ): Checkpoint<S> {
    const tensors = new Map<string, CheckpointTensor<S>>();
    if (!index) {
      for (const file of byName.values())
        for (const info of file.list()) tensors.set(info.name, { file, info });
      return new Checkpoint(dir, [...byName.values()], tensors, null);
    }
    for (const [name, shard] of index.weightMap) {
      const file = byName.get(shard)!;
      const info = file.tensors.get(name);
      if (!info) throw new CheckpointError(file.path, `index says it holds ${name}, but it does not`);
      tensors.set(name, { file, info });
    }
    return new Checkpoint(dir, [...byName.values()], tensors, index);
  }

  /** True when the folder holds weights (an index or a single model.safetensors). */
  static hasWeights(dir: string): boolean {
    return fs.existsSync(path.join(dir, INDEX_FILE)) || fs.existsSync(path.join(dir, SINGLE_FILE));
  }

  static open(dir: string): Checkpoint {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch {
      throw new CheckpointError(dir, 'no such folder');
    }
    if (!st.isDirectory()) throw new CheckpointError(dir, 'expected a checkpoint folder, got a file');
    const indexPath = path.join(dir, INDEX_FILE);
    const byName = new Map<string, SafetensorsFile>();
    try {
      if (fs.existsSync(indexPath)) {
        const problem = fileProblem(indexPath);
        if (problem) throw new CheckpointError(indexPath, problem);
        const index = parseIndex(indexPath, fs.readFileSync(indexPath, 'utf8'));
        for (const shard of [...new Set(index.weightMap.values())].sort()) {
          const p = path.join(dir, shard);
          if (!fs.existsSync(p))
            throw new CheckpointError(indexPath, `names shard ${shard}, which does not exist`);
          byName.set(shard, SafetensorsFile.open(p));
        }
        return Checkpoint.assemble(dir, index, byName);
      }
      const single = path.join(dir, SINGLE_FILE);
      if (!fs.existsSync(single)) {
        throw new CheckpointError(dir, `not a checkpoint: expected ${INDEX_FILE} or ${SINGLE_FILE}`);
      }
      byName.set(SINGLE_FILE, SafetensorsFile.open(single));
      return Checkpoint.assemble(dir, null, byName);
    } catch (err) {
      for (const s of byName.values()) s.close();
      throw err;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string): CheckpointTensor<S> {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(this.dir, `checkpoint has no tensor ${name}`);
    return t;
  }

  info(name: string): TensorInfo {
    return this.get(name).info;
  }

  readBytes(this: Checkpoint, name: string, rowStart = 0, rowEnd?: number): Uint8Array {
    return this.get(name).file.readBytes(name, rowStart, rowEnd);
  }

  /** Rows [rowStart, rowEnd) of a float tensor, decoded exactly to float32. */
  readFloat32(
    this: Checkpoint,
    name: string,
    rowStart = 0,
    rowEnd?: number,
    out?: Float32Array,
  ): Float32Array {
    const { file, info } = this.get(name);
    if (!isFloatDecodable(info.dtype)) {
      throw new CheckpointError(file.path, `tensor ${name} is ${info.dtype}; expected BF16, F16 or F32`);
    }
    return decodeFloat32(info.dtype, file.readBytes(name, rowStart, rowEnd), out);
  }

  /** Total bytes of tensor data (what a reader must move). */
  get dataBytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.info.end - t.info.begin;
    return n;
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

/** Bytes of each shard's data sampled at its start, middle and end by `checkpointFingerprint`. */
const FINGERPRINT_SAMPLE_BYTES = 64 * 1024;

/**
 * A content fingerprint of a checkpoint folder (never its path): SHA-256 of config.json, then for every shard
 * in name order its name, its whole header and 64 KiB samples of its data at the start, middle and end. Headers
 * alone cannot tell a fine-tune from its base (same shapes), the samples can; reading them costs a few
 * positional reads, not a pass over 16 GB. Resumable work (eval journals, sweeps) is keyed by it.
 */
export function checkpointFingerprint(dir: string): string {
  const h = createHash('sha256');
  const configPath = path.join(dir, CONFIG_FILE);
  h.update('config.json\0').update(fs.readFileSync(configPath));
  const ckpt = Checkpoint.open(dir);
  try {
    const shards = [...ckpt.shards].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    for (const s of shards) {
      h.update(`\0${path.basename(s.path)}\0`);
      const fd = fs.openSync(s.path, 'r');
      try {
        const dataBytes = s.fileBytes - s.dataOffset;
        const n = Math.min(FINGERPRINT_SAMPLE_BYTES, dataBytes);
        const ranges: [number, number][] = [
          [0, s.dataOffset],
          [s.dataOffset, n],
          [s.dataOffset + Math.floor((dataBytes - n) / 2), n],
          [s.fileBytes - n, n],
        ];
        for (const [at, len] of ranges) {
          const buf = Buffer.alloc(len);
          let got = 0;
          while (got < len) {
            const k = fs.readSync(fd, buf, got, len - got, at + got);
            if (k === 0) throw new CheckpointError(s.path, 'file ended while fingerprinting');
            got += k;
          }
          h.update(buf);
        }
      } finally {
        fs.closeSync(fd);
      }
    }
  } finally {
    ckpt.close();
  }
  return h.digest('hex');
}

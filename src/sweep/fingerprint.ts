// A checkpoint's identity for stored results: sha256 of config.json and every shard's safetensors header
// (names, dtypes, shapes and offsets; not the data, so it costs a few reads however large the weights).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONFIG_FILE, INDEX_FILE, SINGLE_FILE, UserInputError, parseIndex } from '../formats';

export function modelFingerprint(dir: string): string {
  const h = createHash('sha256');
  const read = (f: string) => {
    try {
      return fs.readFileSync(path.join(dir, f));
    } catch (e) {
      throw new UserInputError(
        `${path.join(dir, f)}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`,
      );
    }
  };
  h.update(read(CONFIG_FILE));
  const indexPath = path.join(dir, INDEX_FILE);
  const shards = fs.existsSync(indexPath)
    ? [...new Set(parseIndex(indexPath, fs.readFileSync(indexPath, 'utf8')).weightMap.values())].sort()
    : [SINGLE_FILE];
  for (const shard of shards) {
    const file = path.join(dir, shard);
    const fd = fs.openSync(file, 'r');
    try {
      const len = Buffer.alloc(8);
      fs.readSync(fd, len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      if (!Number.isSafeInteger(n) || n > 100e6) throw new UserInputError(`${file}: not a safetensors file`);
      const header = Buffer.alloc(n);
      fs.readSync(fd, header, 0, n, 8);
      h.update(shard).update(len).update(header);
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex').slice(0, 16);
}

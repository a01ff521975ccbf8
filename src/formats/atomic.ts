// Outputs are written beside their target and renamed into place: readers never see a half-written file,
// and a crash leaves at most a hidden temporary sibling, which is removed on error.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export async function writeAtomically(file: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(
    path.dirname(path.resolve(file)),
    `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    await write(tmp);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

export function writeFileAtomically(file: string, content: string | Uint8Array): Promise<void> {
  return writeAtomically(file, (tmp) => fsp.writeFile(tmp, content));
}

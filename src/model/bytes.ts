// Byte sizes given on the command line: `5GB` (decimal, as Hugging Face counts shard sizes), `500MB`,
// `2GiB` or a plain byte count.
import { UserInputError } from './errors';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

export function parseByteSize(text: string | number, flag = '--max-shard-size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text));
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new UserInputError(`${flag}: "${text}" is not a size like 5GB, 500MB or a byte count`);
  }
  return bytes;
}

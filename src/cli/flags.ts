// Numeric flags are validated here, before any model loads: one rule per kind of flag, one message style.
import { UserInputError } from '../model/errors';
import { parseByteSize } from '../model/bytes';

/** An integer in [min, max], or a one-line error naming the flag and the range. */
export function intFlag(flag: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    throw new UserInputError(`${flag}: expected an integer ${range}, got ${v}`);
  }
  return v;
}

/** Seeds are non-negative safe integers everywhere (create-random, eval --sample, bench). */
export function seedFlag(flag: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new UserInputError(`${flag} must be a non-negative integer, got ${v}`);
  return v;
}

/** A byte size bounded both ways (an I/O buffer of 1 byte or 1 TB is a typo, not a setting). */
export function sizeFlag(flag: string, text: string, min: number, max: number): number {
  const bytes = parseByteSize(text, flag);
  if (bytes < min || bytes > max) {
    throw new UserInputError(`${flag}: ${text} is outside ${fmt(min)}..${fmt(max)}`);
  }
  return bytes;
}

const fmt = (n: number) =>
  n >= 1e12 && n % 1e12 === 0
    ? `${n / 1e12}TB`
    : n >= 2 ** 30 && n % 2 ** 30 === 0
      ? `${n / 2 ** 30}GiB`
      : n >= 2 ** 20 && n % 2 ** 20 === 0
        ? `${n / 2 ** 20}MiB`
        : n >= 2 ** 10 && n % 2 ** 10 === 0
          ? `${n / 2 ** 10}KiB`
          : n >= 1e6 && n % 1e6 === 0
            ? `${n / 1e6}MB`
            : `${n}`;

/** Limits shared by slice and create-random. */
export const SHARD_SIZE_LIMITS = [1_000_000, 1e12] as const;
export const BUFFER_SIZE_LIMITS = [4 * 2 ** 10, 256 * 2 ** 20] as const;

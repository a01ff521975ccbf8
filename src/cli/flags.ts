// The one set of submodel flags every command takes (inspect, slice, logits, generate, bench, eval), the
// backend and precision flags of the commands that run the model, and the numeric flag rules (checked before any
// model loads).
import { BACKEND_CHOICES, PRECISIONS, type Precision } from '../engine';
import type { SpecFlags } from '../gemma3n';
import { UserInputError, parseByteSize } from '../formats';

export interface SubmodelFlags {
  ffn?: string | string[];
  skip?: string | string[];
  blocks?: string | string[];
  preset?: string;
  spec?: string;
}

export interface PrecisionFlags {
  precision?: string;
}

export interface ModelFlags extends SubmodelFlags, PrecisionFlags {
  backend?: string;
}

/** yargs options of the submodel flags. */
export const SUBMODEL_OPTIONS = {
  ffn: {
    type: 'string',
    describe:
      'FFN widths: one for all, one per parent layer or per kept layer; WxN repeats (8192x20,16384x15)',
  },
  skip: { type: 'string', describe: 'parent layers to drop: indices and ranges (20-24,30)' },
  blocks: { type: 'string', describe: 'one FFN width per block (4 sliding + 1 full layers)' },
  preset: { type: 'string', describe: 'a published config, e.g. "Config for E2.98B (layer-level)"' },
  spec: { type: 'string', describe: 'JSON or YAML file with skip/ffn/blocks/preset' },
} as const;

/** yargs option of every command that loads the engine (eval, sweep, generate, logits, bench, worker). */
export const PRECISION_OPTIONS = {
  precision: {
    type: 'string',
    default: 'exact',
    choices: PRECISIONS as unknown as string[],
    describe:
      'exact = float32 math; int8 = opt-in fast mode (int8 weights and activations in the FFN and attention projections)',
  },
} as const;

/**
 * The --precision flag as the engine takes it. yargs has checked the choices already; this repeats the check
 * for callers that build argv themselves, with the same one line.
 */
export function precisionFlag(argv: PrecisionFlags): Precision {
  const p = argv.precision ?? 'exact';
  if (!(PRECISIONS as readonly string[]).includes(p))
    throw new UserInputError(`--precision: ${p} is not one of ${PRECISIONS.join(', ')}`);
  return p as Precision;
}

/**
 * sweep's and worker's --precision: their final results are exact by design (the frontier is drawn from exact
 * results), so int8 is refused in one line that says where fast mode goes instead.
 */
export function exactOnlyPrecision(argv: PrecisionFlags, command: 'sweep' | 'worker'): Precision {
  const p = precisionFlag(argv);
  if (p !== 'exact')
    throw new UserInputError(
      command === 'sweep'
        ? `--precision ${p}: a sweep's final rung scores in exact mode; give early rungs to int8 with strategy.successive_halving.fast_rungs in the sweep file`
        : `--precision ${p}: distributed sweeps score in exact mode (fast_rungs runs with plain sweep)`,
    );
  return p;
}

/** yargs options every model-running command takes (submodel + backend + precision). */
export const MODEL_OPTIONS = {
  ...SUBMODEL_OPTIONS,
  ...PRECISION_OPTIONS,
  backend: {
    type: 'string',
    default: 'auto',
    choices: BACKEND_CHOICES as unknown as string[],
    describe: 'TF.js backend; auto = tensorflow-gpu > webgpu (hardware adapter) > tensorflow > wasm > cpu',
  },
} as const;

/** The submodel flags as the spec parser takes them; null when none is given (the parent itself). */
export function specFlags(argv: SubmodelFlags): SpecFlags | null {
  const flags: SpecFlags = {
    ffn: argv.ffn,
    skip: argv.skip,
    blocks: argv.blocks,
    preset: argv.preset,
    specFile: argv.spec,
  };
  return Object.values(flags).some((v) => v !== undefined) ? flags : null;
}

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

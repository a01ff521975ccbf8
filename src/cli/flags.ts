// The one set of submodel flags every command takes (inspect, slice, logits, generate, bench, eval), and the
// backend flag of the commands that run the model.
import { BACKEND_CHOICES } from '../engine';
import type { SpecFlags } from '../gemma3n';

export interface SubmodelFlags {
  ffn?: string | string[];
  skip?: string | string[];
  blocks?: string | string[];
  preset?: string;
  spec?: string;
}

export interface ModelFlags extends SubmodelFlags {
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

/** yargs options every model-running command takes (submodel + backend). */
export const MODEL_OPTIONS = {
  ...SUBMODEL_OPTIONS,
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

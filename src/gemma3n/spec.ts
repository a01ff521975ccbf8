// Mix-n-Match specs from user input: CLI flags, a JSON/YAML spec file, the block-level form, or one of
// Google's published configs. Every error names the flag (or file) it came from, on one line; validation is
// the submodel derivation's.
import * as fs from 'node:fs';
import { fileProblem } from '../formats';
import type { ModelConfig } from './config';
import { PublishedConfig, evaluateWidth, loadPublishedConfigs } from './presets';
import { MixNMatchSpec, SpecError, Submodel, deriveSubmodel, keptLayers } from './submodel';

/** A list as flags or spec files give it: `"8192x2,16384"`, a single number, or an array of either. */
export type ListInput = string | number | readonly (string | number)[];

export interface SpecFlags {
  /** Widths: one (all kept layers), one per parent layer, or one per kept layer; `WxN` repeats W N times. */
  readonly ffn?: ListInput;
  /** Parent layer indices and ranges, e.g. `20-24,30`. */
  readonly skip?: ListInput;
  /** A published config name, e.g. "Config for E2.98B (layer-level)". */
  readonly preset?: string;
  /** Path to a JSON or YAML spec file. */
  readonly specFile?: string;
  /** One width per block of layers (each block ends with a full-attention layer). */
  readonly blocks?: ListInput;
}

export interface ResolvedSpec {
  readonly spec: MixNMatchSpec;
  /** The validated submodel the spec describes. */
  readonly submodel: Submodel;
  readonly warnings: readonly string[];
  /** Where the skip list and the widths came from (a flag, file or preset), for messages. */
  readonly skipFrom: string;
  readonly ffnFrom: string;
  /** The published config, when the spec is one. */
  readonly preset?: PublishedConfig;
}

/** Guards `WxN` against typos such as `8192x200000` allocating huge arrays. */
const MAX_REPEAT = 100_000;

const SPEC_FILE_KEYS: Record<string, 'skip' | 'ffn' | 'blocks' | 'preset' | 'comment'> = {
  skip: 'skip',
  layers_to_skip: 'skip',
  layers_skipped: 'skip',
  ffn: 'ffn',
  ffn_hidden_dims: 'ffn',
  intermediate_size: 'ffn',
  blocks: 'blocks',
  preset: 'preset',
  name: 'comment',
  description: 'comment',
  comment: 'comment',
};

function toItems(value: ListInput, flag: string): string[] {
  const raw = Array.isArray(value) ? value : [value];
  const items: string[] = [];
  for (const v of raw as (string | number)[]) {
    if (typeof v === 'number') items.push(String(v));
    else if (typeof v === 'string') items.push(...v.split(','));
    else
      throw new SpecError(`${flag}: expected numbers or a comma-separated string, got ${JSON.stringify(v)}`);
  }
  return items.map((s) => s.trim());
}

/** `20-24,30` → [20, 21, 22, 23, 24, 30]; indices must be in [0, numLayers) and unique. */
export function parseSkipList(value: ListInput, numLayers: number, flag = '--skip'): number[] {
  const items = toItems(value, flag);
  if (items.length === 1 && items[0] === '') return [];
  const out: number[] = [];
  for (const item of items) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(item);
    if (!m) throw new SpecError(`${flag}: "${item}" is not a layer index or range like 20-24`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new SpecError(`${flag}: range "${item}" runs backwards`);
    for (let i = a; i <= b; i++) {
      if (i >= numLayers) {
        throw new SpecError(`${flag}: layer ${i} does not exist (the parent has layers 0-${numLayers - 1})`);
      }
      if (out.includes(i)) throw new SpecError(`${flag}: layer ${i} is listed twice`);
      out.push(i);
    }
  }
  return out.sort((x, y) => x - y);
}

/** `8192x20,16384x15` or `2048*4, 2048*8` → expanded integer list (expressions via mathjs, never eval). */
export function parseWidthList(value: ListInput, flag = '--ffn'): number[] {
  const out: number[] = [];
  for (const item of toItems(value, flag)) {
    if (item === '') throw new SpecError(`${flag}: empty entry in the width list`);
    const m = /^(.+?)\s*[x×]\s*(\d+)$/i.exec(item);
    const expr = m?.[1] ?? item;
    const count = m ? Number(m[2]) : 1;
    if (count < 1 || count > MAX_REPEAT) {
      throw new SpecError(`${flag}: repeat count in "${item}" must be between 1 and ${MAX_REPEAT}`);
    }
    let width: number;
    try {
      width = evaluateWidth(expr);
    } catch (err) {
      throw new SpecError(`${flag}: "${item}" is not a width (${(err as Error).message.split('\n')[0]})`);
    }
    for (let i = 0; i < count; i++) out.push(width);
  }
  return out;
}

/**
 * Blocks of the parent: consecutive layers, each block closed by a full-attention layer (E4B: 4 sliding +
 * 1 full, 7 blocks); trailing sliding layers form a last block.
 */
export function parentBlocks(layerTypes: readonly string[]): number[][] {
  const blocks: number[][] = [];
  let cur: number[] = [];
  layerTypes.forEach((t, i) => {
    cur.push(i);
    if (t === 'full_attention') {
      blocks.push(cur);
      cur = [];
    }
  });
  if (cur.length > 0) blocks.push(cur);
  return blocks;
}

/** Per-parent-layer widths from one width per block. */
export function expandBlocks(value: ListInput, layerTypes: readonly string[], flag = '--blocks'): number[] {
  const widths = parseWidthList(value, flag);
  const blocks = parentBlocks(layerTypes);
  if (widths.length !== blocks.length) {
    throw new SpecError(
      `${flag}: ${widths.length} widths given but the parent has ${blocks.length} blocks (each ends with a full-attention layer)`,
    );
  }
  const perLayer = new Array<number>(layerTypes.length);
  // One width per block (checked above).
  blocks.forEach((b, k) => b.forEach((l) => (perLayer[l] = widths[k]!)));
  return perLayer;
}

/** Picks the kept layers' widths from a list given per parent layer, per kept layer, or as one width. */
export function widthsForKept(
  widths: number[],
  numLayers: number,
  skip: readonly number[],
  flag: string,
): number[] {
  const kept = keptLayers(numLayers, { skip });
  const [only] = widths;
  if (widths.length === 1 && only !== undefined) return kept.map(() => only);
  if (widths.length === kept.length) return widths;
  // Kept indices are below numLayers = widths.length.
  if (widths.length === numLayers) return kept.map((l) => widths[l]!);
  const expected =
    kept.length === numLayers
      ? `1 or ${numLayers} (one per layer)`
      : `1, ${numLayers} (one per parent layer) or ${kept.length} (one per kept layer)`;
  throw new SpecError(`${flag}: ${widths.length} widths given; expected ${expected}`);
}

export function findPreset(
  name: string,
  configs: readonly PublishedConfig[],
  flag = '--preset',
): PublishedConfig {
  const norm = (s: string) => s.trim().toLowerCase().replace(/\s+/g, ' ');
  const want = norm(name);
  const hit =
    configs.find((c) => c.name === name) ??
    configs.find((c) => norm(c.name) === want) ??
    configs.find((c) => norm(c.name) === `config for ${want}`);
  if (!hit) {
    throw new SpecError(
      `${flag}: no published config named "${name}"; known: ${configs.map((c) => `"${c.name}"`).join(', ')}`,
    );
  }
  return hit;
}

interface FileSpec {
  skip?: ListInput;
  ffn?: ListInput;
  blocks?: ListInput;
  preset?: string;
}

function loadYaml(text: string): unknown {
  // js-yaml arrives through the toolchain; JSON_SCHEMA keeps it to plain data (no custom tags).
  let yaml: { load(s: string, o: { schema: unknown }): unknown; JSON_SCHEMA: unknown };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    yaml = require('js-yaml');
  } catch {
    throw new Error('YAML support needs the js-yaml package; write the spec as JSON instead');
  }
  return yaml.load(text, { schema: yaml.JSON_SCHEMA });
}

/** Reads a JSON or YAML spec file (`.yaml`/`.yml` as YAML, anything else as JSON). */
export function readSpecFile(file: string): FileSpec {
  const flag = `--spec ${file}`;
  const problem = fileProblem(file);
  if (problem) throw new SpecError(`${flag}: ${problem}`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SpecError(`${flag}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const isYaml = /\.ya?ml$/i.test(file);
  let data: unknown;
  try {
    data = isYaml ? loadYaml(text) : JSON.parse(text);
  } catch (err) {
    const what = isYaml ? 'YAML' : 'JSON';
    throw new SpecError(`${flag}: not valid ${what} (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new SpecError(`${flag}: expected an object with "skip" and "ffn" (or "blocks", "preset")`);
  }
  const out: FileSpec = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const field = SPEC_FILE_KEYS[key];
    if (!field) {
      throw new SpecError(`${flag}: unknown key "${key}" (known: ${Object.keys(SPEC_FILE_KEYS).join(', ')})`);
    }
    if (field === 'comment' || value === null) continue;
    if (field in out) throw new SpecError(`${flag}: "${key}" repeats a field given under another name`);
    if (field === 'preset') {
      if (typeof value !== 'string') throw new SpecError(`${flag}: "preset" must be a config name`);
      out.preset = value;
    } else {
      const ok =
        typeof value === 'string' ||
        typeof value === 'number' ||
        (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number'));
      if (!ok) throw new SpecError(`${flag}: "${key}" must be a list of numbers or a string like "8192x20"`);
      out[field] = value as ListInput;
    }
  }
  return out;
}

const given = (v: unknown): boolean => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);

/**
 * Resolves flags into a validated spec for `parent`. Flags override the same fields of a spec file;
 * a preset stands alone. With nothing given, the result is the parent's own shape.
 */
export function resolveSpec(flags: SpecFlags, parent: ModelConfig): ResolvedSpec {
  const L = parent.text.num_hidden_layers;
  let file: FileSpec = {};
  let fileFlag = '';
  if (given(flags.preset) && given(flags.specFile)) {
    throw new SpecError('--preset: cannot be combined with --spec (put "preset" in the file instead)');
  }
  if (given(flags.specFile)) {
    file = readSpecFile(flags.specFile!);
    fileFlag = `--spec ${flags.specFile}`;
  }
  const presetName = given(flags.preset) ? flags.preset! : file.preset;
  if (presetName !== undefined) {
    const presetFlag = given(flags.preset) ? '--preset' : `${fileFlag}: preset`;
    const others = [
      ['--ffn', flags.ffn],
      ['--skip', flags.skip],
      ['--blocks', flags.blocks],
      ['ffn', file.ffn],
      ['skip', file.skip],
      ['blocks', file.blocks],
    ].filter(([, v]) => given(v));
    const other = others[0];
    if (other !== undefined) {
      throw new SpecError(`${presetFlag}: a published config fixes every layer; drop ${other[0]}`);
    }
    return fromPreset(findPreset(presetName, loadPublishedConfigs(), presetFlag), parent, presetFlag);
  }

  const [skipFrom, skipValue] = given(flags.skip)
    ? ['--skip', flags.skip]
    : given(file.skip)
      ? [`${fileFlag}: skip`, file.skip]
      : ['--skip', undefined];
  const skip = skipValue === undefined ? [] : parseSkipList(skipValue, L, skipFrom);

  // Widths: flags first, then the file, else the parent's own; --ffn and --blocks exclude each other.
  const widthsFrom = (
    ffnLabel: string,
    ffn: ListInput | undefined,
    blocksLabel: string,
    blocks: ListInput | undefined,
  ) => {
    if (given(ffn) && given(blocks)) {
      throw new SpecError(`${blocksLabel}: cannot be combined with ${ffnLabel} (both set the widths)`);
    }
    if (given(ffn)) return { from: ffnLabel, widths: parseWidthList(ffn!, ffnLabel) };
    if (given(blocks)) {
      return { from: blocksLabel, widths: expandBlocks(blocks!, parent.text.layer_types, blocksLabel) };
    }
    return null;
  };
  const { from: ffnFrom, widths } = widthsFrom('--ffn', flags.ffn, '--blocks', flags.blocks) ??
    widthsFrom(`${fileFlag}: ffn`, file.ffn, `${fileFlag}: blocks`, file.blocks) ?? {
      from: '--ffn',
      widths: [...parent.text.intermediate_size],
    };
  const ffn = widthsForKept(widths, L, skip, ffnFrom);
  const submodel = deriveSubmodel(parent, { skip, ffn }, { skipFrom, ffnFrom });
  return { spec: submodel.spec, submodel, warnings: submodel.warnings, skipFrom, ffnFrom };
}

function fromPreset(preset: PublishedConfig, parent: ModelConfig, flag: string): ResolvedSpec {
  const L = parent.text.num_hidden_layers;
  const presetParent = preset.layers + preset.skip.length;
  if (presetParent !== L) {
    throw new SpecError(
      `${flag}: "${preset.name}" is defined for a ${presetParent}-layer E4B parent; this checkpoint has ${L} layers`,
    );
  }
  const spec = { skip: [...preset.skip], ffn: [...preset.ffn] };
  if (spec.skip.some((s) => s >= L))
    throw new SpecError(`${flag}: "${preset.name}" skips a layer beyond ${L - 1}`);
  const label = `${flag} "${preset.name}"`;
  const submodel = deriveSubmodel(parent, spec, { skipFrom: label, ffnFrom: label });
  return {
    spec: submodel.spec,
    submodel,
    warnings: submodel.warnings,
    skipFrom: label,
    ffnFrom: label,
    preset,
  };
}

/** Resolves flags to a spec; warnings (e.g. untrained widths) go to `onWarning`. */
export function parseSpecFlags(
  flags: SpecFlags,
  parentConfig: ModelConfig,
  onWarning: (message: string) => void = () => undefined,
): MixNMatchSpec {
  const r = resolveSpec(flags, parentConfig);
  r.warnings.forEach(onWarning);
  return r.spec;
}

/** Compact flag form of a list: `8192x20,16384x15`. */
export function runLength(values: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length;) {
    let j = i;
    while (j < values.length && values[j] === values[i]) j++;
    parts.push(j - i > 1 ? `${values[i]}x${j - i}` : String(values[i]));
    i = j;
  }
  return parts.join(',');
}

/** Compact range form of sorted indices: `20-24,30`. */
export function rangeList(indices: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < indices.length;) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++;
    parts.push(j > i ? `${indices[i]}-${indices[j]}` : String(indices[i]));
    i = j + 1;
  }
  return parts.join(',');
}

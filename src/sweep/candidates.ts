// Candidates of a sweep: the sweep file's specs and generators expanded into validated Mix-n-Match specs,
// bounded by effective parameters, deduplicated by canonical spec; the parent is always one, and so is the
// official E2B when the parent is E4B-shaped (the published configs validate against it).
import { createHash } from 'node:crypto';
import { mulberry32 } from '../formats';
import {
  type ModelConfig,
  type MixNMatchSpec,
  type ParamBreakdown,
  type PublishedConfig,
  SpecError,
  deriveSubmodel,
  expandBlocks,
  findPreset,
  identitySpec,
  loadPublishedConfigs,
  parentBlocks,
  parseSkipList,
  parseWidthList,
  rangeList,
  runLength,
  textParams,
  widthsForKept,
} from '../gemma3n';

/** Throws SpecError (naming the keys it came from) unless `spec` is a valid submodel of `parent`. */
function validateSpec(parent: ModelConfig, spec: MixNMatchSpec, skipFrom?: string, ffnFrom?: string): void {
  deriveSubmodel(parent, spec, { skipFrom, ffnFrom });
}
import { type CandidateEntry, type ParamsBound, type SweepFile, SweepFileError } from './sweep-file';

export const E2B_PRESET = 'Config for official E2B Model';
/** Guards generators against combinatorial explosions from a typo. */
export const MAX_CANDIDATES = 100_000;

export interface Candidate {
  readonly spec: MixNMatchSpec;
  /** sha256 of the canonical spec JSON, 16 hex digits: the key of its results in the store. */
  readonly hash: string;
  /** Where it came from: `parent`, a preset name, `candidates[2]`. */
  readonly origin: string;
  readonly preset?: PublishedConfig;
  readonly params: ParamBreakdown;
}

/** Canonical JSON of a spec: skip = sorted parent layer indices, ffn = one width per kept layer. */
export function canonicalSpec(spec: MixNMatchSpec): string {
  return JSON.stringify({ skip: [...spec.skip].sort((a, b) => a - b), ffn: [...spec.ffn] });
}

export function specHash(spec: MixNMatchSpec): string {
  return createHash('sha256').update(canonicalSpec(spec)).digest('hex').slice(0, 16);
}

export function makeCandidate(
  parent: ModelConfig,
  spec: MixNMatchSpec,
  origin: string,
  preset?: PublishedConfig,
): Candidate {
  const canonical = { skip: [...spec.skip].sort((a, b) => a - b), ffn: [...spec.ffn] };
  return {
    spec: canonical,
    hash: specHash(canonical),
    origin,
    preset,
    params: textParams(parent.text, canonical),
  };
}

/** All candidates of a sweep, in a stable order (parent first), each validated against the parent. */
export function sweepCandidates(sweep: SweepFile, parent: ModelConfig): Candidate[] {
  const out = new Map<string, Candidate>();
  const add = (c: Candidate) => {
    const had = out.get(c.hash);
    // The same submodel twice is one candidate; a preset name sticks to it (E4B's preset is the parent).
    if (!had) out.set(c.hash, c);
    else if (c.preset && !had.preset) out.set(c.hash, { ...had, preset: c.preset });
    if (out.size > MAX_CANDIDATES)
      throw new SweepFileError(`${sweep.file}: candidates: more than ${MAX_CANDIDATES} candidates`);
  };
  add(makeCandidate(parent, identitySpec(parent.text.intermediate_size), 'parent'));
  const presets = loadPublishedConfigs();
  const e2b = presetCandidate(parent, findPreset(E2B_PRESET, presets));
  if (e2b) add(e2b);
  for (const entry of sweep.candidates) {
    const label = (msg: string) => `${sweep.file}: ${entry.at}${msg}`;
    let list: Candidate[];
    try {
      list = expand(entry, parent, presets);
    } catch (e) {
      if (e instanceof SweepFileError) throw e;
      // Spec errors name the key they came from (`candidates[2].ffn: ...`) already.
      const msg = (e as Error).message;
      throw new SweepFileError(msg.startsWith(entry.at) ? `${sweep.file}: ${msg}` : label(`: ${msg}`));
    }
    const bound = entry.params ?? sweep.params;
    for (const c of list) if (within(c, bound)) add(c);
  }
  return [...out.values()];
}

function within(c: Candidate, bound: ParamsBound | undefined): boolean {
  return !bound || (c.params.effective >= bound[0] && c.params.effective <= bound[1]);
}

/** A published config as a candidate, or null when it does not fit this parent (not E4B-shaped). */
function presetCandidate(parent: ModelConfig, p: PublishedConfig): Candidate | null {
  const spec = { skip: [...p.skip], ffn: [...p.ffn] };
  if (p.layers + p.skip.length !== parent.text.num_hidden_layers) return null;
  try {
    validateSpec(parent, spec);
  } catch (e) {
    if (e instanceof SpecError) return null;
    throw e;
  }
  return makeCandidate(parent, spec, p.name, p);
}

function expand(
  entry: CandidateEntry,
  parent: ModelConfig,
  presets: readonly PublishedConfig[],
): Candidate[] {
  const L = parent.text.num_hidden_layers;
  const at = entry.at;
  const full = parent.text.intermediate_size;
  const validated = (spec: MixNMatchSpec, skipFrom = `${at}.skip`, ffnFrom = `${at}.ffn`) => {
    validateSpec(parent, spec, skipFrom, ffnFrom);
    return makeCandidate(parent, spec, at);
  };
  switch (entry.kind) {
    case 'presets': {
      const fit = presets.map((p) => presetCandidate(parent, p)).filter((c): c is Candidate => c !== null);
      if (fit.length === 0)
        throw new SweepFileError(
          `${at}.presets: the published configs are for the 35-layer E4B (width 16384); this parent does not fit them`,
        );
      return fit;
    }
    case 'spec': {
      if (entry.preset !== undefined) {
        const others = (['skip', 'ffn', 'blocks'] as const).filter((k) => entry[k] !== undefined);
        if (others.length > 0)
          throw new SweepFileError(`${at}.preset: a published config fixes every layer; drop ${others[0]}`);
        const p = findPreset(entry.preset, presets, `${at}.preset`);
        const c = presetCandidate(parent, p);
        if (!c) throw new SweepFileError(`${at}.preset: "${p.name}" does not fit this ${L}-layer parent`);
        return [c];
      }
      if (entry.ffn !== undefined && entry.blocks !== undefined)
        throw new SweepFileError(`${at}.blocks: cannot be combined with ffn (both set the widths)`);
      const skip = entry.skip === undefined ? [] : parseSkipList(entry.skip, L, `${at}.skip`);
      const ffnFrom = entry.blocks !== undefined ? `${at}.blocks` : `${at}.ffn`;
      const widths =
        entry.ffn !== undefined
          ? parseWidthList(entry.ffn, ffnFrom)
          : entry.blocks !== undefined
            ? expandBlocks(entry.blocks, parent.text.layer_types, ffnFrom)
            : [...full];
      return [validated({ skip, ffn: widthsForKept(widths, L, skip, ffnFrom) }, `${at}.skip`, ffnFrom)];
    }
    case 'blocks': {
      const blocks = parentBlocks(parent.text.layer_types);
      const n = entry.widths.length ** blocks.length;
      if (n > MAX_CANDIDATES)
        throw new SweepFileError(
          `${at}: ${entry.widths.length}^${blocks.length} = ${n} assignments; at most ${MAX_CANDIDATES}`,
        );
      const out: Candidate[] = [];
      for (let code = 0; code < n; code++) {
        const perLayer = new Array<number>(L);
        let rest = code;
        // Block 0 varies slowest, so the list reads like counting (and neighbours share their first blocks).
        for (let b = blocks.length - 1; b >= 0; b--) {
          const w = entry.widths[rest % entry.widths.length]!;
          rest = Math.floor(rest / entry.widths.length);
          for (const l of blocks[b]!) perLayer[l] = w;
        }
        out.push(validated({ skip: [], ffn: perLayer }, `${at}.skip`, `${at}.widths`));
      }
      return out;
    }
    case 'layers': {
      const rand = mulberry32(entry.seed);
      return Array.from({ length: entry.count }, () =>
        validated(
          { skip: [], ffn: full.map(() => entry.widths[rand() % entry.widths.length]!) },
          `${at}.skip`,
          `${at}.widths`,
        ),
      );
    }
    case 'skips': {
      const [a, b] = entry.range;
      if (b >= L)
        throw new SweepFileError(`${at}.range: layer ${b} does not exist (the parent has layers 0-${L - 1})`);
      const pool = Array.from({ length: b - a + 1 }, (_, i) => a + i);
      const out: Candidate[] = [];
      for (const set of subsets(pool, entry.count[0], entry.count[1])) {
        const spec = { skip: set, ffn: widthsForKept([...full], L, set, `${at}`) };
        try {
          out.push(validated(spec, `${at}.range`, `${at}.range`));
        } catch (e) {
          if (!(e instanceof SpecError)) throw e; // skip sets that break KV sharing are not candidates
        }
        if (out.length > MAX_CANDIDATES)
          throw new SweepFileError(`${at}: more than ${MAX_CANDIDATES} skip sets`);
      }
      if (out.length === 0)
        throw new SweepFileError(`${at}: no skip set in this range keeps every KV producer that is read`);
      return out;
    }
    case 'random': {
      const rand = mulberry32(entry.seed);
      const u = () => rand() / 4294967296;
      const out: Candidate[] = [];
      for (let tries = 0; out.length < entry.n && tries < entry.n * 100; tries++) {
        const skip = full.map((_, l) => l).filter(() => u() < entry.skipRate);
        const ffn = full
          .map((w, l) => ({ w, l }))
          .filter(({ l }) => !skip.includes(l))
          .map(({ w }) => {
            const choices = entry.widths ?? [Math.max(1, Math.floor(w / 2)), w];
            return choices[Math.floor(u() * choices.length)]!;
          });
        try {
          out.push(validated({ skip, ffn }, `${at}.skip_rate`, `${at}.widths`));
        } catch (e) {
          if (!(e instanceof SpecError) || skip.length === 0) throw e;
        }
      }
      return out;
    }
  }
}

/** Subsets of `pool` with between `min` and `max` members, smaller first, each sorted. */
function* subsets(pool: readonly number[], min: number, max: number): Generator<number[]> {
  for (let k = min; k <= Math.min(max, pool.length); k++) {
    const idx = Array.from({ length: k }, (_, i) => i);
    while (true) {
      yield idx.map((i) => pool[i]!);
      let i = k - 1;
      while (i >= 0 && idx[i] === pool.length - k + i) i--;
      if (i < 0) break;
      idx[i]!++;
      for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1]! + 1;
    }
  }
}

/** Short human form of a candidate: its preset name, or `skip 20-24 ffn 8192x20,16384x10`. */
export function describeSpec(spec: MixNMatchSpec, preset?: string): string {
  if (preset) return preset.replace(/^Config for /, '');
  const skip = spec.skip.length > 0 ? `skip ${rangeList(spec.skip)} ` : '';
  return `${skip}ffn ${runLength(spec.ffn)}`;
}

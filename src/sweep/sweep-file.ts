// The sweep file (YAML or JSON): what to search, on which data, how. Validated completely before anything
// runs; every error is one line naming the file and the key path (`candidates[2].ffn: ...`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { load as loadYaml, JSON_SCHEMA } from 'js-yaml';
import { UserInputError, parseByteSize } from '../formats';
import type { ListInput } from '../gemma3n';

export class SweepFileError extends UserInputError {
  override name = 'SweepFileError';
}

export type Metric = 'accuracy' | 'agreement';

/** A candidate entry: a spec (the keys of `--spec` files) or a generator. */
export type CandidateEntry = { readonly at: string; readonly params?: ParamsBound } & (
  | {
      readonly kind: 'spec';
      readonly skip?: ListInput;
      readonly ffn?: ListInput;
      readonly blocks?: ListInput;
      readonly preset?: string;
    }
  /** Every assignment of `widths` to the parent's blocks. */
  | { readonly kind: 'blocks'; readonly widths: readonly number[] }
  /** `count` random per-layer assignments of `widths`. */
  | {
      readonly kind: 'layers';
      readonly widths: readonly number[];
      readonly count: number;
      readonly seed: number;
    }
  /** Every skip set within layers [a, b] of size in [min, max] that keeps each KV producer still read. */
  | {
      readonly kind: 'skips';
      readonly range: readonly [number, number];
      readonly count: readonly [number, number];
    }
  /** `n` random submodels: per-layer widths from `widths` (default half and full), skips with `skip_rate`. */
  | {
      readonly kind: 'random';
      readonly n: number;
      readonly seed: number;
      readonly widths?: readonly number[];
      readonly skipRate: number;
    }
  | { readonly kind: 'presets' }
);

/** Effective-parameter bound [min, max] (inclusive). */
export type ParamsBound = readonly [number, number];

export type Strategy =
  | { readonly kind: 'exhaustive' }
  | { readonly kind: 'random'; readonly n: number; readonly seed: number }
  | {
      readonly kind: 'successive_halving';
      readonly start: number;
      readonly eta: number;
      readonly buckets: number;
      /**
       * The first this many rungs score in int8 fast mode, the rest (the final one at least) in exact mode.
       * snake_case: the strategy is stored and shown as JSON.
       */
      readonly fast_rungs: number;
    }
  | { readonly kind: 'sensitivity'; readonly width?: number };

export interface SweepData {
  readonly mmlu: string;
  readonly subjects?: readonly string[];
  readonly categories?: readonly string[];
  readonly limitPerSubject?: number;
  readonly sample?: number;
  readonly seed: number;
  readonly split: 'test' | 'val' | 'dev';
}

export interface SweepFile {
  /** Where the sweep came from (paths in it are relative to its folder). */
  readonly file: string;
  readonly model: string;
  readonly data: SweepData;
  readonly shots: number;
  readonly backend: string;
  readonly batchSize: number;
  readonly metric: Metric;
  readonly candidates: readonly CandidateEntry[];
  readonly params?: ParamsBound;
  readonly strategy: Strategy;
  /**
   * `sensitivity`: seed `random` / successive halving with the latest finished sensitivity scan of this
   * checkpoint in the database (same shots and split).
   */
  readonly prior?: 'sensitivity';
  /** Activations kept at trie branch points before the shared evaluation recomputes instead (bytes). */
  readonly memoryCap: number;
  /** false: every candidate alone (the baseline sharing is measured against). */
  readonly share: boolean;
  /** The file's data as parsed: recorded with the run, hashed to recognise the same sweep. */
  readonly raw: unknown;
}

export const DEFAULT_MEMORY_CAP = 2e9;
const BACKENDS = ['auto', 'cpu', 'wasm', 'webgpu', 'tensorflow'];
const SPLITS = ['test', 'val', 'dev'] as const;

type Obj = Record<string, unknown>;

/** Reads and validates a sweep file. */
export function readSweepFile(file: string): SweepFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SweepFileError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let data: unknown;
  try {
    data = /\.json$/i.test(file) ? JSON.parse(text) : loadYaml(text, { schema: JSON_SCHEMA });
  } catch (e) {
    const what = /\.json$/i.test(file) ? 'JSON' : 'YAML';
    throw new SweepFileError(`${file}: not valid ${what} (${(e as Error).message.split('\n')[0]})`);
  }
  return parseSweep(data, file);
}

/** Validates parsed sweep data; `file` labels errors and anchors relative paths. */
export function parseSweep(data: unknown, file: string): SweepFile {
  const fail = (at: string, msg: string): never => {
    throw new SweepFileError(`${file}: ${at ? `${at}: ` : ''}${msg}`);
  };
  const v = new Checker(fail);
  const top = v.object(data, '', [
    'model',
    'data',
    'shots',
    'backend',
    'batch_size',
    'metric',
    'candidates',
    'params',
    'strategy',
    'memory_cap',
    'share',
    'prior',
  ]);
  const base = path.dirname(path.resolve(file));
  const model = path.resolve(base, v.string(top.model, 'model'));
  const d = v.object(top.data, 'data', [
    'mmlu',
    'subjects',
    'categories',
    'limit_per_subject',
    'sample',
    'seed',
    'split',
  ]);
  const split = (d.split ?? 'test') as SweepData['split'];
  if (!SPLITS.includes(split))
    fail('data.split', `expected test, val or dev, got ${JSON.stringify(d.split)}`);
  const sweepData: SweepData = {
    mmlu: path.resolve(base, v.string(d.mmlu, 'data.mmlu')),
    subjects: d.subjects === undefined ? undefined : v.strings(d.subjects, 'data.subjects'),
    categories: d.categories === undefined ? undefined : v.strings(d.categories, 'data.categories'),
    limitPerSubject: v.optInt(d.limit_per_subject, 'data.limit_per_subject', 1),
    sample: v.optInt(d.sample, 'data.sample', 1),
    seed: v.optInt(d.seed, 'data.seed', 0) ?? 0,
    split,
  };
  const shots = v.optInt(top.shots, 'shots', 0) ?? 5;
  if (shots > 5) fail('shots', `expected 0 to 5, got ${shots}`);
  const backend = top.backend === undefined ? 'auto' : v.string(top.backend, 'backend');
  if (!BACKENDS.includes(backend))
    fail('backend', `expected one of ${BACKENDS.join(', ')}, got "${backend}"`);
  const metric = (top.metric ?? 'accuracy') as Metric;
  if (metric !== 'accuracy' && metric !== 'agreement')
    fail('metric', `expected accuracy or agreement, got ${JSON.stringify(top.metric)}`);
  const strat = strategy(v, top.strategy ?? 'exhaustive', 'strategy');
  // Sensitivity makes its own candidates; every other strategy searches the listed ones.
  const listed = top.candidates ?? (strat.kind === 'sensitivity' ? [] : undefined);
  if (!Array.isArray(listed) || (listed.length === 0 && strat.kind !== 'sensitivity'))
    fail('candidates', 'expected a non-empty list of specs or generators');
  const candidates = (listed as unknown[]).map((c, i) => candidateEntry(v, c, `candidates[${i}]`));
  let memoryCap = DEFAULT_MEMORY_CAP;
  if (top.memory_cap !== undefined) {
    try {
      memoryCap = parseByteSize(top.memory_cap as string | number, 'memory_cap');
    } catch (e) {
      fail('', (e as Error).message);
    }
  }
  if (top.share !== undefined && typeof top.share !== 'boolean') fail('share', 'expected true or false');
  if (top.prior !== undefined && top.prior !== 'sensitivity')
    fail('prior', `expected sensitivity, got ${show(top.prior)}`);
  if (top.prior !== undefined && strat.kind !== 'random' && strat.kind !== 'successive_halving')
    fail('prior', `seeds random or successive_halving only, not ${strat.kind}`);
  return {
    file,
    model,
    data: sweepData,
    shots,
    backend,
    batchSize: v.optInt(top.batch_size, 'batch_size', 1) ?? 8,
    metric,
    candidates,
    params: top.params === undefined ? undefined : v.bound(top.params, 'params'),
    strategy: strat,
    prior: top.prior === undefined ? undefined : 'sensitivity',
    memoryCap,
    share: top.share !== false,
    raw: data,
  };
}

function candidateEntry(v: Checker, c: unknown, at: string): CandidateEntry {
  const o = v.object(c, at, null);
  const params = o.params === undefined ? undefined : v.bound(o.params, `${at}.params`);
  if ('presets' in o) {
    v.keys(o, at, ['presets', 'params']);
    if (o.presets !== 'all') v.fail(`${at}.presets`, `expected "all", got ${JSON.stringify(o.presets)}`);
    return { at, params, kind: 'presets' };
  }
  if (!('generate' in o)) {
    v.keys(o, at, ['skip', 'ffn', 'blocks', 'preset', 'params', 'name', 'comment']);
    const list = (k: string) =>
      o[k] === undefined || o[k] === null ? undefined : v.list(o[k], `${at}.${k}`);
    if (o.preset !== undefined && typeof o.preset !== 'string')
      v.fail(`${at}.preset`, 'expected a config name');
    return {
      at,
      params,
      kind: 'spec',
      skip: list('skip'),
      ffn: list('ffn'),
      blocks: list('blocks'),
      preset: o.preset as string | undefined,
    };
  }
  const g = o.generate;
  const widths = (k = 'widths') => v.ints(o[k], `${at}.${k}`, 1);
  switch (g) {
    case 'blocks':
      v.keys(o, at, ['generate', 'widths', 'params']);
      return { at, params, kind: 'blocks', widths: widths() };
    case 'layers':
      v.keys(o, at, ['generate', 'widths', 'count', 'seed', 'params']);
      return {
        at,
        params,
        kind: 'layers',
        widths: widths(),
        count: v.int(o.count, `${at}.count`, 1),
        seed: v.optInt(o.seed, `${at}.seed`, 0) ?? 0,
      };
    case 'skips': {
      v.keys(o, at, ['generate', 'range', 'count', 'params']);
      const range = v.pair(o.range, `${at}.range`, 0);
      const count = o.count === undefined ? ([1, 1] as const) : v.pair(o.count, `${at}.count`, 1);
      return { at, params, kind: 'skips', range, count };
    }
    case 'random': {
      v.keys(o, at, ['generate', 'n', 'seed', 'widths', 'skip_rate', 'params']);
      const skipRate = o.skip_rate === undefined ? 0 : o.skip_rate;
      if (typeof skipRate !== 'number' || !(skipRate >= 0 && skipRate < 1))
        v.fail(`${at}.skip_rate`, 'expected a number in [0, 1)');
      return {
        at,
        params,
        kind: 'random',
        n: v.int(o.n, `${at}.n`, 1),
        seed: v.optInt(o.seed, `${at}.seed`, 0) ?? 0,
        widths: o.widths === undefined ? undefined : widths(),
        skipRate: skipRate as number,
      };
    }
    default:
      return v.fail(`${at}.generate`, `expected blocks, layers, skips or random, got ${JSON.stringify(g)}`);
  }
}

function strategy(v: Checker, s: unknown, at: string): Strategy {
  if (s === 'exhaustive') return { kind: 'exhaustive' };
  if (s === 'sensitivity') return { kind: 'sensitivity' };
  const o = v.object(s, at, ['random', 'successive_halving', 'sensitivity']);
  const keys = Object.keys(o);
  if (keys.length !== 1)
    v.fail(
      at,
      'expected exhaustive, sensitivity, {random: N}, {successive_halving: {...}} or {sensitivity: {...}}',
    );
  if ('random' in o) {
    if (typeof o.random === 'object' && o.random !== null) {
      const r = v.object(o.random, `${at}.random`, ['n', 'seed']);
      return {
        kind: 'random',
        n: v.int(r.n, `${at}.random.n`, 1),
        seed: v.optInt(r.seed, `${at}.random.seed`, 0) ?? 0,
      };
    }
    return { kind: 'random', n: v.int(o.random, `${at}.random`, 1), seed: 0 };
  }
  if ('sensitivity' in o) {
    const r = v.object(o.sensitivity, `${at}.sensitivity`, ['width']);
    return { kind: 'sensitivity', width: v.optInt(r.width, `${at}.sensitivity.width`, 1) };
  }
  const sh = v.object(o.successive_halving, `${at}.successive_halving`, [
    'start',
    'eta',
    'buckets',
    'fast_rungs',
  ]);
  const eta = v.optInt(sh.eta, `${at}.successive_halving.eta`, 2) ?? 3;
  return {
    kind: 'successive_halving',
    start: v.int(sh.start, `${at}.successive_halving.start`, 1),
    eta,
    buckets: v.optInt(sh.buckets, `${at}.successive_halving.buckets`, 1) ?? 1,
    // Smaller than the number of rungs too: checked once the subset is known (plan.ts, checkFastRungs).
    fast_rungs: v.optInt(sh.fast_rungs, `${at}.successive_halving.fast_rungs`, 0) ?? 0,
  };
}

/** Small typed readers that fail with the key path. */
class Checker {
  constructor(readonly fail: (at: string, msg: string) => never) {}

  object(x: unknown, at: string, allowed: readonly string[] | null): Obj {
    if (typeof x !== 'object' || x === null || Array.isArray(x))
      this.fail(at, `expected a mapping, got ${show(x)}`);
    if (allowed) this.keys(x as Obj, at, allowed);
    return x as Obj;
  }

  keys(o: Obj, at: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k))
        this.fail(at ? `${at}.${k}` : k, `unknown key (expected one of ${allowed.join(', ')})`);
    }
  }

  string(x: unknown, at: string): string {
    if (typeof x !== 'string' || x === '') this.fail(at, `expected a non-empty string, got ${show(x)}`);
    return x as string;
  }

  strings(x: unknown, at: string): string[] {
    if (typeof x === 'string')
      return x
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string'))
      this.fail(at, `expected a list of names`);
    return x as string[];
  }

  int(x: unknown, at: string, min: number): number {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min)
      this.fail(at, `expected an integer ≥ ${min}, got ${show(x)}`);
    return x as number;
  }

  optInt(x: unknown, at: string, min: number): number | undefined {
    return x === undefined ? undefined : this.int(x, at, min);
  }

  ints(x: unknown, at: string, min: number): number[] {
    if (!Array.isArray(x) || x.length === 0)
      this.fail(at, `expected a non-empty list of integers, got ${show(x)}`);
    return (x as unknown[]).map((e, i) => this.int(e, `${at}[${i}]`, min));
  }

  pair(x: unknown, at: string, min: number): [number, number] {
    const [a, b, ...rest] = this.ints(x, at, min);
    if (b === undefined || rest.length > 0 || a! > b)
      this.fail(at, `expected [low, high] with low ≤ high, got ${show(x)}`);
    return [a!, b!];
  }

  list(x: unknown, at: string): ListInput {
    const ok =
      typeof x === 'string' ||
      typeof x === 'number' ||
      (Array.isArray(x) && x.every((e) => typeof e === 'string' || typeof e === 'number'));
    if (!ok) this.fail(at, `expected a list of numbers or a string like "8192x20", got ${show(x)}`);
    return x as ListInput;
  }

  /** [min, max] effective parameters: numbers or strings such as "2.5B", "800M". */
  bound(x: unknown, at: string): ParamsBound {
    if (!Array.isArray(x) || x.length !== 2) this.fail(at, `expected [min, max], got ${show(x)}`);
    const [lo, hi] = (x as unknown[]).map((e, i) => paramCount(e, `${at}[${i}]`, this));
    if (lo! > hi!) this.fail(at, `min ${lo} exceeds max ${hi}`);
    return [lo!, hi!];
  }
}

const SUFFIX: Record<string, number> = { '': 1, K: 1e3, M: 1e6, B: 1e9, G: 1e9 };

/** A parameter count: 2500000000, "2.5B", "800M". */
export function paramCount(x: unknown, at: string, v: { fail: (at: string, msg: string) => never }): number {
  if (typeof x === 'number' && Number.isFinite(x) && x >= 0) return x;
  const m = typeof x === 'string' ? /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMBG]?)\s*$/i.exec(x) : null;
  if (!m) return v.fail(at, `expected a parameter count such as 2500000000 or "2.5B", got ${show(x)}`);
  return Math.round(Number(m[1]) * SUFFIX[m[2]!.toUpperCase()]!);
}

function show(x: unknown): string {
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

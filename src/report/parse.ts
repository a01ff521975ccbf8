// Checks untrusted JSON (a `results --json` file) into SweepResults. Every problem is one line naming the
// file and the key path, e.g. `r.json: candidates[2].spec.ffn[4]: expected a positive integer`.
import { UserInputError } from '../formats';
import type {
  CandidateResult,
  CategoryResult,
  Rung,
  SensitivityEntry,
  SweepCandidate,
  SweepResults,
  SweepRun,
} from './types';

export class ReportInputError extends UserInputError {
  override name = 'ReportInputError';
}

type Obj = Record<string, unknown>;

/** Typed reads of untrusted JSON; each failure names the file and key path. */
export class JsonReader {
  constructor(readonly file: string) {}

  fail(at: string, what: string): never {
    throw new ReportInputError(`${this.file}: ${at}: ${what}`);
  }

  obj(v: unknown, at: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(at, 'expected an object');
    return v as Obj;
  }

  arr(v: unknown, at: string): unknown[] {
    if (!Array.isArray(v)) this.fail(at, 'expected an array');
    return v;
  }

  num(v: unknown, at: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(at, 'expected a finite number');
    return v;
  }

  int(v: unknown, at: string, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      this.fail(at, min > 0 ? 'expected a positive integer' : 'expected a non-negative integer');
    return v;
  }

  fraction(v: unknown, at: string): number {
    const x = this.num(v, at);
    if (x < 0 || x > 1) this.fail(at, `expected a value in [0, 1], got ${x}`);
    return x;
  }

  str(v: unknown, at: string): string {
    if (typeof v !== 'string') this.fail(at, 'expected a string');
    return v;
  }

  strOrNull(v: unknown, at: string): string | null {
    return v === null || v === undefined ? null : this.str(v, at);
  }

  id(v: unknown, at: string): string | number {
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    return this.fail(at, 'expected an id (string or integer)');
  }

  interval(v: unknown, at: string): [number, number] {
    const a = this.arr(v, at);
    if (a.length !== 2) this.fail(at, 'expected [low, high]');
    const lo = this.fraction(a[0], `${at}[0]`);
    const hi = this.fraction(a[1], `${at}[1]`);
    if (lo > hi) this.fail(at, `low ${lo} is above high ${hi}`);
    return [lo, hi];
  }
}

function readSensitivity(r: JsonReader, v: unknown, at: string): SensitivityEntry[] {
  return r.arr(v, at).map((x, i): SensitivityEntry => {
    const p = `${at}[${i}]`;
    const so = r.obj(x, p);
    if (so.kind !== 'narrow' && so.kind !== 'skip') r.fail(`${p}.kind`, 'expected "narrow" or "skip"');
    return { layer: r.int(so.layer, `${p}.layer`), kind: so.kind, drop: r.num(so.drop, `${p}.drop`) };
  });
}

function readRun(r: JsonReader, v: unknown, at: string): SweepRun {
  const o = r.obj(v, at);
  const metric = o.metric;
  if (metric !== 'accuracy' && metric !== 'agreement')
    r.fail(`${at}.metric`, 'expected "accuracy" or "agreement"');
  const timingsObj = r.obj(o.timings ?? {}, `${at}.timings`);
  const timings: Record<string, number> = {};
  for (const [k, t] of Object.entries(timingsObj)) timings[k] = r.num(t, `${at}.timings.${k}`);
  if (o.timings === undefined && o.seconds !== undefined) timings.score = r.num(o.seconds, `${at}.seconds`);
  let work: SweepRun['work'] = null;
  // The store writes the two counts on the run itself (`layer_tokens_unshared` = needed without sharing).
  if (o.work === undefined && o.layer_tokens_done !== undefined && o.layer_tokens_unshared !== undefined) {
    work = {
      layer_tokens_done: r.int(o.layer_tokens_done, `${at}.layer_tokens_done`),
      layer_tokens_needed: r.int(o.layer_tokens_unshared, `${at}.layer_tokens_unshared`),
    };
  } else if (o.work !== undefined && o.work !== null) {
    const w = r.obj(o.work, `${at}.work`);
    work = {
      layer_tokens_done: r.int(w.layer_tokens_done, `${at}.work.layer_tokens_done`),
      layer_tokens_needed: r.int(w.layer_tokens_needed, `${at}.work.layer_tokens_needed`),
    };
  }
  const run: {
    -readonly [K in keyof SweepRun]: SweepRun[K];
  } = {
    id: r.id(o.id, `${at}.id`),
    sweep_file: r.strOrNull(o.sweep_file, `${at}.sweep_file`),
    model:
      o.model !== undefined
        ? r.strOrNull(o.model, `${at}.model`)
        : r.strOrNull(o.model_path, `${at}.model_path`),
    tool_version: r.str(o.tool_version, `${at}.tool_version`),
    model_fingerprint: r.strOrNull(o.model_fingerprint, `${at}.model_fingerprint`),
    backend: r.str(o.backend, `${at}.backend`),
    subset_id: r.strOrNull(o.subset_id, `${at}.subset_id`),
    shots: r.int(o.shots, `${at}.shots`),
    metric,
    strategy: o.strategy ?? null,
    timings,
    work,
  };
  if (o.rungs !== undefined && o.rungs !== null) {
    run.rungs = r.arr(o.rungs, `${at}.rungs`).map((x, i): Rung => {
      const ro = r.obj(x, `${at}.rungs[${i}]`);
      return {
        candidates: r.int(ro.candidates, `${at}.rungs[${i}].candidates`),
        questions: r.int(ro.questions, `${at}.rungs[${i}].questions`),
      };
    });
  }
  if (o.sensitivity !== undefined && o.sensitivity !== null)
    run.sensitivity = readSensitivity(r, o.sensitivity, `${at}.sensitivity`);
  if (o.random_weights !== undefined) {
    if (typeof o.random_weights !== 'boolean') r.fail(`${at}.random_weights`, 'expected true or false');
    run.random_weights = o.random_weights;
  }
  return run;
}

function readResult(r: JsonReader, v: unknown, at: string): CandidateResult | null {
  if (v === null || v === undefined) return null;
  const o = r.obj(v, at);
  const result: { -readonly [K in keyof CandidateResult]: CandidateResult[K] } = {
    metric: r.fraction(o.metric, `${at}.metric`),
    acc: r.fraction(o.acc, `${at}.acc`),
    n: r.int(o.n, `${at}.n`),
    ci: r.interval(o.ci, `${at}.ci`),
  };
  if (o.round !== undefined && o.round !== null) result.round = r.int(o.round, `${at}.round`);
  if (o.categories !== undefined && o.categories !== null) {
    const cats: Record<string, CategoryResult> = {};
    for (const [name, c] of Object.entries(r.obj(o.categories, `${at}.categories`))) {
      const p = `${at}.categories.${name}`;
      const co = r.obj(c, p);
      cats[name] = {
        acc: r.fraction(co.acc, `${p}.acc`),
        n: r.int(co.n, `${p}.n`),
        ...(co.ci === undefined ? {} : { ci: r.interval(co.ci, `${p}.ci`) }),
      };
    }
    result.categories = cats;
  }
  return result;
}

function readCandidate(r: JsonReader, v: unknown, at: string): SweepCandidate {
  const o = r.obj(v, at);
  const spec = r.obj(o.spec, `${at}.spec`);
  const skip = r.arr(spec.skip ?? [], `${at}.spec.skip`).map((x, i) => r.int(x, `${at}.spec.skip[${i}]`));
  for (let i = 1; i < skip.length; i++)
    if (skip[i]! <= skip[i - 1]!) r.fail(`${at}.spec.skip`, 'expected sorted, unique layer indices');
  const ffn = r.arr(spec.ffn, `${at}.spec.ffn`).map((x, i) => r.int(x, `${at}.spec.ffn[${i}]`, 1));
  const paramsObj = r.obj(o.params, `${at}.params`);
  const params: Record<string, number> = {};
  for (const [k, p] of Object.entries(paramsObj)) if (p !== null) params[k] = r.num(p, `${at}.params.${k}`);
  if (params.effective === undefined) r.fail(`${at}.params.effective`, 'expected a finite number');
  if (o.pareto !== undefined && typeof o.pareto !== 'boolean')
    r.fail(`${at}.pareto`, 'expected true or false');
  return {
    id: r.id(o.id, `${at}.id`),
    ...(o.run_id === undefined ? {} : { run_id: r.id(o.run_id, `${at}.run_id`) }),
    spec: { skip, ffn },
    params: params as SweepCandidate['params'],
    result: readResult(r, o.result, `${at}.result`),
    pareto: o.pareto === true,
    preset: r.strOrNull(o.preset, `${at}.preset`),
    label: r.strOrNull(o.label, `${at}.label`),
    mcnemar_p:
      o.mcnemar === undefined || o.mcnemar === null
        ? null
        : r.fraction(r.obj(o.mcnemar, `${at}.mcnemar`).p_value, `${at}.mcnemar.p_value`),
    published_mmlu:
      o.published_mmlu === undefined || o.published_mmlu === null
        ? null
        : r.fraction(o.published_mmlu, `${at}.published_mmlu`),
  };
}

/**
 * Successive-halving rungs from the round each candidate reached: rung k holds every candidate that got at
 * least that far, scored on the questions of the candidates that stopped there.
 */
export function rungsFromRounds(candidates: readonly SweepCandidate[]): Rung[] {
  const rounds = candidates.map((c) => c.result?.round).filter((x): x is number => x !== undefined);
  const distinct = [...new Set(rounds)].sort((a, b) => a - b);
  if (distinct.length < 2) return [];
  return distinct.map((k) => ({
    candidates: rounds.filter((x) => x >= k).length,
    questions: Math.max(0, ...candidates.filter((c) => c.result?.round === k).map((c) => c.result!.n)),
  }));
}

/** True when `json` looks like `results --json` output (as opposed to, say, an `eval` results file). */
export function isSweepResults(json: unknown): boolean {
  return typeof json === 'object' && json !== null && 'runs' in json && 'candidates' in json;
}

/**
 * Validates `results --json` output. Candidates must agree on the parent's depth (kept + skipped layers);
 * `file` labels the messages.
 */
export function parseSweepResults(json: unknown, file: string): SweepResults {
  const r = new JsonReader(file);
  const o = r.obj(json, '(top level)');
  let runs = r.arr(o.runs, 'runs').map((x, i) => readRun(r, x, `runs[${i}]`));
  if (runs.length === 0) r.fail('runs', 'expected at least one run');
  // `results --json` may name the run its candidates and sensitivity scan belong to at the top level.
  const owner = o.run === undefined || o.run === null ? undefined : r.id(o.run, 'run');
  if (owner !== undefined && !runs.some((x) => String(x.id) === String(owner)))
    r.fail('run', `names run ${owner}, which is not among runs`);
  let candidates = r.arr(o.candidates, 'candidates').map((x, i) => readCandidate(r, x, `candidates[${i}]`));
  if (owner !== undefined) {
    candidates = candidates.map((c) => (c.run_id === undefined ? { ...c, run_id: owner } : c));
    const sensitivity = o.sensitivity === undefined ? [] : readSensitivity(r, o.sensitivity, 'sensitivity');
    const rungs = rungsFromRounds(candidates);
    runs = runs.map((x) =>
      String(x.id) !== String(owner)
        ? x
        : {
            ...x,
            ...(x.sensitivity === undefined && sensitivity.length > 0 ? { sensitivity } : {}),
            ...(x.rungs === undefined && rungs.length > 0 ? { rungs } : {}),
          },
    );
  }
  const depth = candidates[0] ? candidates[0].spec.skip.length + candidates[0].spec.ffn.length : 0;
  candidates.forEach((c, i) => {
    const d = c.spec.skip.length + c.spec.ffn.length;
    if (d !== depth)
      r.fail(`candidates[${i}].spec`, `describes a ${d}-layer parent, candidates[0] a ${depth}-layer one`);
    if (c.spec.skip.some((l) => l >= depth))
      r.fail(`candidates[${i}].spec.skip`, `layer index beyond the parent's ${depth} layers`);
  });
  return { runs, candidates, ...(owner === undefined ? {} : { run: owner }) };
}

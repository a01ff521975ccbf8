// What a report is made from: the object `matformer-lab results --json` prints (runs and their candidates),
// snake_case as in every JSON the tool writes. `parseSweepResults` checks untrusted JSON into this shape.

/** Per-layer drop of the metric when one layer alone is narrowed to the smallest width, or skipped. */
export interface SensitivityEntry {
  readonly layer: number;
  readonly kind: 'narrow' | 'skip';
  readonly drop: number;
}

/** One successive-halving rung: how many candidates were scored on how many questions. */
export interface Rung {
  readonly candidates: number;
  readonly questions: number;
}

export interface SweepRun {
  readonly id: string | number;
  readonly sweep_file: string | null;
  /** Checkpoint folder of the parent, used to spell out each candidate's `slice` command. */
  readonly model?: string | null;
  readonly tool_version: string;
  /** Hash of config.json and the shard headers; null where the input did not record one. */
  readonly model_fingerprint: string | null;
  readonly backend: string;
  /** Stable id of the question subset; null where the input did not record one. */
  readonly subset_id: string | null;
  readonly shots: number;
  readonly metric: 'accuracy' | 'agreement';
  /** `exhaustive`, `sensitivity`, `{random: N}`, `{successive_halving: {...}}`, as in the sweep file. */
  readonly strategy: unknown;
  /** Seconds per phase (load, score, total, ...). */
  readonly timings: Readonly<Record<string, number>>;
  /** Layer-token evaluations done against those needed without sharing. */
  readonly work: { readonly layer_tokens_done: number; readonly layer_tokens_needed: number } | null;
  readonly rungs?: readonly Rung[];
  readonly sensitivity?: readonly SensitivityEntry[];
  /** True when the checkpoint is known to hold random weights (its accuracy is chance level). */
  readonly random_weights?: boolean;
}

export interface CategoryResult {
  readonly acc: number;
  readonly n: number;
  readonly ci?: readonly [number, number];
}

export interface CandidateResult {
  /** The run's metric (accuracy or agreement with the parent), in [0, 1]. */
  readonly metric: number;
  /** MMLU accuracy against the labels, in [0, 1]. */
  readonly acc: number;
  /** Questions scored. */
  readonly n: number;
  /** 95% interval of `metric`. */
  readonly ci: readonly [number, number];
  readonly categories?: Readonly<Record<string, CategoryResult>>;
  /** The successive-halving round the candidate reached (0 = the first). */
  readonly round?: number;
}

export interface SweepCandidate {
  readonly id: string | number;
  /** The run this candidate belongs to, where the input holds several runs. */
  readonly run_id?: string | number;
  readonly spec: {
    /** Skipped parent layer indices, sorted. */
    readonly skip: readonly number[];
    /** One FFN width per kept layer. */
    readonly ffn: readonly number[];
  };
  readonly params: { readonly effective: number } & Readonly<Record<string, number>>;
  /** Null for a candidate that was never scored. */
  readonly result: CandidateResult | null;
  readonly pareto: boolean;
  /** Name of the published config this candidate is, if any. */
  readonly preset?: string | null;
  /** A readable name (the id may be a hash). */
  readonly label?: string | null;
  /** Paired exact McNemar p-value against the parent (frontier candidates). */
  readonly mcnemar_p?: number | null;
  /** Google's published MMLU accuracy for a preset, in [0, 1]. */
  readonly published_mmlu?: number | null;
}

export interface SweepResults {
  readonly runs: readonly SweepRun[];
  readonly candidates: readonly SweepCandidate[];
  /** The run the candidates belong to, where the input names one (then it is the default run). */
  readonly run?: string | number;
}

// What the model-running commands share: open a checkpoint on a backend with the submodel as an elastic
// view, end-of-sequence ids, id lists.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserInputError, fileProblem } from '../formats';
import {
  type MixNMatchSpec,
  type ModelConfig,
  type SpecFlags,
  loadConfig,
  maxPositionEmbeddings,
  parseSpecFlags,
  textVocabLimit,
} from '../gemma3n';
import type { BackendChoice } from './backend';
import { Engine, type Precision, type TextModel } from './engine';
import type { LoadProgress } from './weights';

export interface OpenOptions {
  /** The submodel; omitted: the checkpoint itself. */
  readonly submodel?: SpecFlags | null;
  /** `auto` when omitted. */
  readonly backend?: string;
  /** 'exact' when omitted. */
  readonly precision?: Precision;
}

export interface OpenedModel {
  readonly engine: Engine;
  readonly model: TextModel;
  /** The submodel, or null for the checkpoint itself. */
  readonly spec: MixNMatchSpec | null;
  readonly loadSeconds: number;
}

/**
 * Loads `dir` on the requested backend and returns the submodel the flags describe (an elastic view: nothing
 * is written or re-read).
 */
export async function openModel(
  dir: string,
  opts: OpenOptions,
  hooks: {
    onWarning?: (m: string) => void;
    onProgress?: (p: LoadProgress) => void;
    /** The submodel already resolved by `resolveModelSpec` (the flags are then not parsed again). */
    spec?: MixNMatchSpec | null;
  } = {},
): Promise<OpenedModel> {
  // Resolve the spec before loading weights so a bad flag fails fast.
  const spec = hooks.spec !== undefined ? hooks.spec : resolveModelSpec(dir, opts.submodel, hooks.onWarning);
  const t0 = performance.now();
  const engine = await Engine.load(dir, {
    backend: (opts.backend ?? 'auto') as BackendChoice,
    precision: opts.precision,
    onProgress: hooks.onProgress,
  });
  try {
    const model = engine.view(spec ?? undefined);
    return { engine, model, spec, loadSeconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    engine.dispose();
    throw e;
  }
}

/** The submodel the flags describe, or null for the checkpoint itself (no weights are read). */
export function resolveModelSpec(
  dir: string,
  submodel: SpecFlags | null | undefined,
  onWarning?: (m: string) => void,
): MixNMatchSpec | null {
  return submodel ? parseSpecFlags(submodel, loadConfig(dir), onWarning) : null;
}

/**
 * End-of-sequence ids: generation_config.json's eos_token_id, else the top-level config's (the -it models list
 * <eos> and <end_of_turn>), else text_config's.
 */
export function stopTokenIds(dir: string, config: ModelConfig): number[] {
  const asList = (v: unknown): number[] | null =>
    typeof v === 'number'
      ? [v]
      : Array.isArray(v) && v.every((x) => typeof x === 'number')
        ? (v as number[])
        : null;
  const genPath = path.join(dir, 'generation_config.json');
  if (fileProblem(genPath) === null) {
    try {
      const ids = asList(
        (JSON.parse(fs.readFileSync(genPath, 'utf8')) as Record<string, unknown>).eos_token_id,
      );
      if (ids) return ids;
    } catch {
      // An unreadable generation config is not worth failing generation for; fall back to config.json.
    }
  }
  const top = asList(config.raw.eos_token_id);
  if (top) return top;
  const eos = config.text.eos_token_id;
  return Array.isArray(eos) ? eos : [eos];
}

/** "2,818,5279" or "2 818 5279" → ids; every entry must be a non-negative integer. */
export function parseIdList(value: string | number | readonly (string | number)[], flag = '--ids'): number[] {
  const parts = (Array.isArray(value) ? value : [value])
    .flatMap((v) => String(v).split(/[\s,]+/))
    .filter((s) => s !== '');
  if (parts.length === 0) throw new UserInputError(`${flag}: give at least one token id`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p))
      throw new UserInputError(`${flag}: "${p}" is not a token id (non-negative integer)`);
    return Number(p);
  });
}

/**
 * Refuses, before any weights load, prompt ids outside the text vocabulary and a prompt that with `newTokens`
 * more would exceed the model's max_position_embeddings.
 */
export function checkPromptIds(
  flag: string,
  ids: readonly number[],
  config: ModelConfig,
  newTokens = 0,
): void {
  const vocab = textVocabLimit(config);
  const bad = ids.find((id) => id >= vocab);
  if (bad !== undefined)
    throw new UserInputError(`${flag}: token id ${bad} is outside the text vocabulary [0, ${vocab})`);
  const limit = maxPositionEmbeddings(config);
  if (ids.length + newTokens > limit) {
    throw new UserInputError(
      `${flag}: ${ids.length}${newTokens ? ` + ${newTokens}` : ''} tokens exceed the model's max_position_embeddings (${limit})`,
    );
  }
}

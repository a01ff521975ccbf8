// `export` from start to finish: resolve the submodel, check the target can run it (refusing with the
// broken constraint otherwise, before anything is written), plan, stream, write the model card, and
// optionally measure the runtime's fidelity into that card.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackendChoice } from '../engine';
import { Checkpoint, CONFIG_FILE, OutputGuard, UserInputError } from '../formats';
import { ModelConfig, ResolvedSpec, SpecFlags, loadConfig, resolveSpec } from '../gemma3n';
import { sliceCheckpoint, sourceTensors, type SliceOutcome } from '../slicing';
import { renderGgufCard } from './card';
import {
  CompatRow,
  Target,
  compatibilityMatrix,
  padFfnProblem,
  submodelFacts,
  SubmodelFacts,
} from './compat';
import { ExportDtype, GgufPlan, idToTitle, planGgufExport } from './gguf-plan';
import { writeGgufPlan } from './gguf-write';
import { FidelityReport, verifyGguf } from './verify';
import { loadGgufVocab } from './vocab';
import { version as TOOL_VERSION } from '../../package.json';

export type ExportFormat = 'hf' | 'gguf';

/** An export the target cannot run: one line naming the broken constraint. */
export class ExportRefusedError extends UserInputError {
  override name = 'ExportRefusedError';
}

export interface ExportCheck {
  readonly parent: ModelConfig;
  readonly resolved: ResolvedSpec;
  readonly facts: SubmodelFacts;
  readonly matrix: readonly CompatRow[];
}

/** The compatibility matrix of `flags` cut from the checkpoint (or config) at `src`. */
export function checkExport(src: string, flags: SpecFlags, opts: { padFfn?: boolean } = {}): ExportCheck {
  const parent = loadConfig(src);
  const resolved = resolveSpec(flags, parent);
  const facts = submodelFacts(parent, resolved.spec);
  let tensorNames: Set<string> | undefined;
  if (Checkpoint.hasWeights(src)) {
    const ckpt = Checkpoint.open(src);
    tensorNames = new Set(ckpt.tensors.keys());
    ckpt.close();
  }
  return {
    parent,
    resolved,
    facts,
    matrix: compatibilityMatrix(facts, { tensorNames, padFfn: opts.padFfn }),
  };
}

/** The reason a target refuses, as one line, or null when it runs the model. */
export function refusal(matrix: readonly CompatRow[], target: Target): string | null {
  const row = matrix.find((r) => r.target === target);
  if (!row || row.runs) return null;
  const more = row.reasons.length > 1 ? ` (+${row.reasons.length - 1} more: see export --check)` : '';
  return `${target} cannot run this model: ${row.reasons[0]}${more}`;
}

/** The card beside a GGUF: `model.gguf` → `model.md`. */
export function cardPathFor(out: string): string {
  return out.endsWith('.gguf') ? `${out.slice(0, -5)}.md` : `${out}.md`;
}

/** sha256 over the source's config.json and every shard header (names, dtypes, shapes, offsets). */
export function sourceFingerprint(ckpt: Checkpoint): string {
  const h = createHash('sha256');
  h.update(fs.readFileSync(path.join(ckpt.dir, CONFIG_FILE)));
  for (const shard of ckpt.shards) {
    const fd = fs.openSync(shard.path, 'r');
    try {
      const head = Buffer.alloc(shard.dataOffset);
      fs.readSync(fd, head, 0, head.length, 0);
      h.update(head);
    } finally {
      fs.closeSync(fd);
    }
  }
  return `sha256:${h.digest('hex')}`;
}

export interface ExportOptions {
  readonly src: string;
  readonly out: string;
  readonly format: ExportFormat;
  readonly dtype?: ExportDtype;
  readonly flags: SpecFlags;
  readonly tokenizer?: string;
  readonly force?: boolean;
  readonly padFfn?: boolean;
  /** Measure llama.cpp's fidelity after writing (prompts and greedy length overridable, e.g. in tests). */
  readonly verify?: boolean | { readonly prompts?: readonly string[]; readonly greedyTokens?: number };
  readonly backend?: BackendChoice;
  /** llama.cpp threads for --verify. */
  readonly threads?: number;
  /** Reproduce command for the card. */
  readonly command?: string;
  readonly onProgress?: (done: number, total: number) => void;
  readonly onWarning?: (message: string) => void;
  readonly onStage?: (message: string) => void;
  readonly signal?: AbortSignal;
}

export interface ExportResult {
  readonly format: ExportFormat;
  readonly out: string;
  readonly card: string;
  readonly bytes: number;
  readonly seconds: number;
  readonly check: ExportCheck;
  readonly plan?: GgufPlan;
  readonly slice?: SliceOutcome;
  readonly fidelity?: FidelityReport;
}

export async function exportModel(opts: ExportOptions): Promise<ExportResult> {
  const started = performance.now();
  if (opts.verify && opts.format !== 'gguf') throw new UserInputError('--verify: only for --format gguf');
  if (opts.padFfn && opts.format !== 'gguf') throw new UserInputError('--pad-ffn: only for --format gguf');
  const check = checkExport(opts.src, opts.flags, { padFfn: opts.padFfn });
  check.resolved.warnings.forEach((w) => opts.onWarning?.(w));
  if (opts.format === 'hf') {
    const why = refusal(check.matrix, 'transformers-5');
    if (why) throw new ExportRefusedError(why);
    if (opts.dtype) {
      // The HF export is the slicer's byte-exact output: it keeps the source dtype.
      const ckpt = Checkpoint.open(opts.src);
      const dtypes = new Set([...ckpt.tensors.values()].map((t) => t.info.dtype.toLowerCase()));
      ckpt.close();
      if (dtypes.size !== 1 || !dtypes.has(opts.dtype))
        throw new UserInputError(
          `--dtype: --format hf keeps the source dtype (${[...dtypes].join(', ')}); drop --dtype`,
        );
    }
    const slice = await sliceCheckpoint({
      src: opts.src,
      out: opts.out,
      flags: opts.flags,
      force: opts.force,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
    const r = slice.result!;
    return {
      format: 'hf',
      out: r.outDir,
      card: path.join(r.outDir, 'README.md'),
      bytes: r.bytes,
      seconds: (performance.now() - started) / 1000,
      check,
      slice,
    };
  }

  return first(await exportGgufs([{ out: opts.out, flags: opts.flags, command: opts.command, check }], opts));
}

function first<T>(xs: readonly T[]): T {
  const x = xs[0];
  if (x === undefined) throw new Error('exportGgufs: no result');
  return x;
}

/** One GGUF of a batch cut from the same parent. */
export interface GgufJob {
  readonly out: string;
  readonly flags: SpecFlags;
  /** How messages name this output (default `--out`). */
  readonly label?: string;
  /** Markdown appended to the model card (export-best: the measured results and their provenance). */
  readonly cardExtra?: string;
  readonly command?: string;
  /** Its compatibility check, when the caller made it already. */
  readonly check?: ExportCheck;
}

export type GgufBatchOptions = Omit<ExportOptions, 'out' | 'flags' | 'format' | 'command'>;

/** The reason llama.cpp refuses `check` (with --pad-ffn's own exactness condition), or null. */
export function ggufRefusal(check: ExportCheck, padFfn?: boolean): string | null {
  return (padFfn ? padFfnProblem(check.facts) : null) ?? refusal(check.matrix, 'llama.cpp');
}

/**
 * GGUFs of several submodels of one parent, each with its card: every job is checked first (a refusal
 * throws before anything is written), then one guard holds all the outputs (distinct, outside the source,
 * new unless --force, locked) and each file is streamed into a temporary and renamed into place.
 */
export async function exportGgufs(jobs: readonly GgufJob[], opts: GgufBatchOptions): Promise<ExportResult[]> {
  const checked = jobs.map((job) => {
    const check = job.check ?? checkExport(opts.src, job.flags, { padFfn: opts.padFfn });
    if (!job.check) check.resolved.warnings.forEach((w) => opts.onWarning?.(w));
    const why = ggufRefusal(check, opts.padFfn);
    if (why) throw new ExportRefusedError(jobs.length > 1 ? `${job.out}: ${why}` : why);
    const flag = job.label ?? '--out';
    return { job, check, flag, cardFlag: `${flag} (its model card)` };
  });
  const guard = OutputGuard.acquire({
    outputs: checked.flatMap(({ job, flag, cardFlag }) => [
      { flag, path: job.out, kind: 'file' as const },
      { flag: cardFlag, path: cardPathFor(path.resolve(job.out)), kind: 'file' as const },
    ]),
    inputs: [
      { flag: 'checkpoint', path: opts.src },
      ...(opts.tokenizer ? [{ flag: '--tokenizer', path: opts.tokenizer }] : []),
    ],
    force: opts.force,
    onNotice: opts.onWarning,
  });
  try {
    const parent = first(checked).check.parent;
    const vocab = loadGgufVocab(opts.src, {
      vocabSize: parent.text.vocab_size,
      tokenizerFile: opts.tokenizer,
    });
    const results: ExportResult[] = [];
    for (const { job, check, flag, cardFlag } of checked) {
      const started = performance.now();
      const out = guard.path(flag);
      const ckpt = Checkpoint.open(opts.src);
      let plan: GgufPlan;
      try {
        plan = planGgufExport(check.parent, sourceTensors(ckpt), check.resolved.spec, {
          dtype: opts.dtype ?? 'bf16',
          vocab,
          padFfn: opts.padFfn,
          name: idToTitle(path.basename(path.resolve(opts.src))),
          provenance: {
            sourceFingerprint: sourceFingerprint(ckpt),
            source: path.resolve(opts.src),
            toolVersion: TOOL_VERSION,
            preset: check.resolved.preset?.name,
          },
        });
        opts.onStage?.(`writing ${out}`);
        const tmp = guard.temp(flag);
        await writeGgufPlan(plan, ckpt, tmp, { onProgress: opts.onProgress, signal: opts.signal });
        guard.commit(flag, tmp);
      } finally {
        ckpt.close();
      }
      let fidelity: FidelityReport | undefined;
      if (opts.verify) {
        opts.onStage?.(`verifying ${out} with llama.cpp`);
        fidelity = await verifyGguf({
          gguf: out,
          src: opts.src,
          spec: check.resolved.spec,
          backend: opts.backend,
          threads: opts.threads,
          ...(typeof opts.verify === 'object' ? opts.verify : {}),
        });
      }
      const bytes = fs.statSync(out).size;
      const card =
        renderGgufCard({
          plan,
          check,
          out,
          src: path.resolve(opts.src),
          bytes,
          fidelity,
          command: job.command,
        }) + (job.cardExtra ? `\n${job.cardExtra}` : '');
      await guard.writeFile(cardFlag, (t) => fs.promises.writeFile(t, card));
      results.push({
        format: 'gguf',
        out,
        card: guard.path(cardFlag),
        bytes,
        seconds: (performance.now() - started) / 1000,
        check,
        plan,
        fidelity,
      });
    }
    return results;
  } finally {
    guard.release();
  }
}

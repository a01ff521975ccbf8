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

  if (opts.padFfn) {
    const problem = padFfnProblem(check.facts);
    if (problem) throw new ExportRefusedError(problem);
  }
  const why = refusal(check.matrix, 'llama.cpp');
  if (why) throw new ExportRefusedError(why);
  const card = cardPathFor(path.resolve(opts.out));
  // The GGUF and its card: not inside the source, new unless --force, locked, checked again at the rename.
  const guard = OutputGuard.acquire({
    outputs: [
      { flag: '--out', path: opts.out, kind: 'file' },
      { flag: '--out (its model card)', path: card, kind: 'file' },
    ],
    inputs: [
      { flag: 'checkpoint', path: opts.src },
      ...(opts.tokenizer ? [{ flag: '--tokenizer', path: opts.tokenizer }] : []),
    ],
    force: opts.force,
    onNotice: opts.onWarning,
  });
  try {
    const out = guard.path('--out');
    const ckpt = Checkpoint.open(opts.src);
    let plan: GgufPlan;
    try {
      const vocab = loadGgufVocab(opts.src, {
        vocabSize: check.parent.text.vocab_size,
        tokenizerFile: opts.tokenizer,
      });
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
      const tmp = guard.temp('--out');
      await writeGgufPlan(plan, ckpt, tmp, { onProgress: opts.onProgress, signal: opts.signal });
      guard.commit('--out', tmp);
    } finally {
      ckpt.close();
    }
    let fidelity: FidelityReport | undefined;
    if (opts.verify) {
      opts.onStage?.('verifying with llama.cpp');
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
    const text = renderGgufCard({
      plan,
      check,
      out,
      src: path.resolve(opts.src),
      bytes,
      fidelity,
      command: opts.command,
    });
    await guard.writeFile('--out (its model card)', (t) => fs.promises.writeFile(t, text));
    return {
      format: 'gguf',
      out,
      card: guard.path('--out (its model card)'),
      bytes,
      seconds: (performance.now() - started) / 1000,
      check,
      plan,
      fidelity,
    };
  } finally {
    guard.release();
  }
}

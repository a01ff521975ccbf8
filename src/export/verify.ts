// Runtime fidelity of a written GGUF: llama.cpp (through node-llama-cpp) against our engine run with
// llama.cpp's semantics (sample standard deviation in the Gaussian top-k) and with transformers'
// (population standard deviation), on a few fixed prompts. llama.cpp exposes next-token
// probabilities, so logits are compared as centred log-probabilities (softmax drops a constant).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type BackendChoice, Engine, type SparsityStd } from '../engine';
import { UserInputError } from '../formats';
import { MixNMatchSpec } from '../gemma3n';

/** Short, fixed prompts: prose, code, a list. Tokenized by the GGUF's own tokenizer, BOS first. */
export const VERIFY_PROMPTS: readonly string[] = [
  'The capital of France is',
  'def fibonacci(n):\n    if n < 2:\n        return n',
  'Monday, Tuesday, Wednesday,',
];

export interface FidelityRow {
  readonly prompt: string;
  readonly tokens: number;
  /** Which semantics our engine ran with. */
  readonly semantics: 'llama.cpp' | 'transformers';
  /** RMS of the difference of centred last-position logits over the RMS of ours. */
  readonly last_logits_rel_rms: number;
  /** Fraction of positions whose top-1 token agrees. */
  readonly top1_agreement: number;
  /** Greedy continuation: leading tokens that agree, out of `greedy_tokens`. */
  readonly greedy_agree: number;
  readonly greedy_tokens: number;
  readonly greedy_llama_cpp: readonly number[];
  readonly greedy_engine: readonly number[];
}

export interface FidelityReport {
  readonly gguf: string;
  readonly runtime: string;
  readonly engine_backend: string;
  readonly rows: readonly FidelityRow[];
}

export interface VerifyOptions {
  readonly gguf: string;
  /** The parent checkpoint and the exported submodel's spec (our engine runs it as an elastic view). */
  readonly src: string;
  readonly spec: MixNMatchSpec;
  readonly prompts?: readonly string[];
  readonly greedyTokens?: number;
  readonly backend?: BackendChoice;
  /** llama.cpp CPU threads (default: all cores; on a busy machine fewer are much faster). */
  readonly threads?: number;
}

interface RuntimeRun {
  readonly ids: number[];
  /** Top-1 token after every position. */
  readonly top1: number[];
  /** log p of every token after the last position (NaN where llama.cpp reports 0). */
  readonly lastLogProbs: Float64Array;
  readonly greedy: number[];
}

function argmax(a: ArrayLike<number>, from = 0, n = a.length): number {
  let best = 0;
  for (let v = 1; v < n; v++) if (a[from + v]! > a[from + best]!) best = v;
  return best;
}

/** Relative RMS of centred vectors (logits up to a constant), skipping non-finite entries of `a`. */
export function centredRelRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ma = 0;
  let mb = 0;
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(a[i]!)) continue;
    ma += a[i]!;
    mb += b[i]!;
    n++;
  }
  ma /= n;
  mb /= n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(a[i]!)) continue;
    num += (a[i]! - ma - (b[i]! - mb)) ** 2;
    den += (b[i]! - mb) ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** Where the llama.cpp probe script lives: beside this module (src) or copied beside the CLI bundle (dist). */
function probeScript(): string {
  const candidates = [path.join(__dirname, PROBE), path.join(__dirname, '..', 'src', 'export', PROBE)];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`${PROBE} not found (looked in ${candidates.join(', ')})`);
  return found;
}

const PROBE = 'llama-cpp-probe.mjs';

/** Runs llama.cpp in a child process: node-llama-cpp is ESM-only, and a loader abort must not kill us. */
function runLlamaCpp(
  file: string,
  prompts: readonly string[],
  greedy: number,
  threads?: number,
): RuntimeRun[] {
  const r = spawnSync(process.execPath, [probeScript()], {
    input: JSON.stringify({ gguf: path.resolve(file), prompts, greedy, threads }),
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `signal ${r.signal}`)
      .trim()
      .split('\n')
      .slice(-3)
      .join(' / ');
    if (/Cannot find (package|module) 'node-llama-cpp'/.test(why))
      throw new UserInputError('--verify: needs the node-llama-cpp package (npm i -E node-llama-cpp@3.21.1)');
    throw new UserInputError(`--verify: llama.cpp could not run ${file}: ${why}`);
  }
  const out = JSON.parse(r.stdout) as {
    runs: { ids: number[]; top1: number[]; lastLogProbs: (number | null)[]; greedy: number[] }[];
  };
  return out.runs.map((x) => ({ ...x, lastLogProbs: Float64Array.from(x.lastLogProbs, (v) => v ?? NaN) }));
}

/** Loads the GGUF in llama.cpp, runs the same ids through our engine in both semantics, and compares. */
export async function verifyGguf(opts: VerifyOptions): Promise<FidelityReport> {
  const prompts = opts.prompts ?? VERIFY_PROMPTS;
  const greedy = opts.greedyTokens ?? 8;
  const llamaRuns = runLlamaCpp(opts.gguf, prompts, greedy, opts.threads);
  const engine = await Engine.load(opts.src, { backend: opts.backend ?? 'auto' });
  const rows: FidelityRow[] = [];
  try {
    for (const semantics of ['llama.cpp', 'transformers'] as const) {
      const sparsityStd: SparsityStd = semantics === 'llama.cpp' ? 'sample' : 'population';
      const model = engine.view(opts.spec, { sparsityStd });
      try {
        const V = model.cfg.vocab_size;
        for (const [i, run] of llamaRuns.entries()) {
          const T = run.ids.length;
          const [logits] = await model.logits([run.ids]);
          let agree = 0;
          for (let t = 0; t < T; t++) if (argmax(logits!, t * V, V) === run.top1[t]) agree++;
          const last = logits!.subarray((T - 1) * V, T * V);
          const lp = new Float64Array(V).fill(NaN);
          lp.set(run.lastLogProbs.subarray(0, V));
          const [cont] = await model.generate([run.ids], { maxNewTokens: greedy });
          let lead = 0;
          while (lead < greedy && cont![lead] === run.greedy[lead]) lead++;
          rows.push({
            prompt: prompts[i]!,
            tokens: T,
            semantics,
            last_logits_rel_rms: centredRelRms(lp, last),
            top1_agreement: agree / T,
            greedy_agree: lead,
            greedy_tokens: greedy,
            greedy_llama_cpp: run.greedy,
            greedy_engine: cont!,
          });
        }
      } finally {
        model.dispose();
      }
    }
    return {
      gguf: opts.gguf,
      runtime: 'llama.cpp via node-llama-cpp 3.21.1 (CPU, F32 KV cache)',
      engine_backend: engine.backend.name,
      rows,
    };
  } finally {
    engine.dispose();
  }
}

export function fidelityMarkdown(r: FidelityReport): string {
  const head =
    '| prompt | tokens | our engine | last-position logits rel. RMS | top-1 agreement | greedy tokens agreeing |\n' +
    '| --- | --- | --- | --- | --- | --- |';
  const rows = r.rows.map(
    (x) =>
      `| ${JSON.stringify(x.prompt).replace(/\|/g, '\\|')} | ${x.tokens} | ${x.semantics} semantics | ${x.last_logits_rel_rms.toExponential(2)} | ` +
      `${(100 * x.top1_agreement).toFixed(1)}% | ${x.greedy_agree}/${x.greedy_tokens} |`,
  );
  return [head, ...rows].join('\n');
}

// Fixture access and the parity metrics of fixtures/gemma3n/README.md, shared by the engine tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MixNMatchSpec } from '../../src/gemma3n';
import { SafetensorsFile } from '../../src/formats';
import type { TextModel } from '../../src/engine';
import { fixturesDir } from '../helpers/shared';

export const GEMMA = 'fixtures/gemma3n';
export const gemmaDir = (): string => path.join(fixturesDir(), 'gemma3n');

export interface FixtureManifest {
  inputs: number[][];
  greedy_prompt: number[];
  greedy_continuation: number[];
  logit_columns: number[] | null;
  slices: Record<
    string,
    { layers_to_skip: number[]; ffn_hidden_dims: number[]; greedy_continuation: number[] }
  >;
}

let manifestCache: Record<string, FixtureManifest> | null = null;

/** The manifest's fixtures; empty when the shared folder is absent (the suites then skip with a reason). */
export function manifest(): Record<string, FixtureManifest> {
  const file = path.join(gemmaDir(), 'manifest.json');
  if (!fs.existsSync(file)) return {};
  manifestCache ??= JSON.parse(fs.readFileSync(file, 'utf8')).fixtures;
  return manifestCache!;
}

/** One thing to check: the parent itself or one of its manifest slices. */
export interface ParityCase {
  fixture: string;
  /** 'parent' or the slice name. */
  label: string;
  spec: MixNMatchSpec | null;
  referenceFile: string;
  greedyPrompt: number[];
  greedy: number[];
}

export function parityCases(fixture: string): ParityCase[] {
  const m = manifest()[fixture];
  if (!m) return [];
  const dir = path.join(gemmaDir(), fixture);
  return [
    {
      fixture,
      label: 'parent',
      spec: null,
      referenceFile: path.join(dir, 'reference.safetensors'),
      greedyPrompt: m.greedy_prompt,
      greedy: m.greedy_continuation,
    },
    ...Object.entries(m.slices).map(([name, s]) => ({
      fixture,
      label: name,
      spec: { skip: s.layers_to_skip, ffn: s.ffn_hidden_dims },
      referenceFile: path.join(dir, `reference.slice.${name}.safetensors`),
      greedyPrompt: m.greedy_prompt,
      greedy: s.greedy_continuation,
    })),
  ];
}

export interface SeqParity {
  relRms: number;
  argmaxAgreement: number;
  maxAbs: number;
}

/** ‖ours − ref‖₂ / ‖ref‖₂, argmax agreement over rows of width `V`, max |diff|. */
export function compareLogits(ours: ArrayLike<number>, ref: ArrayLike<number>, V: number): SeqParity {
  if (ours.length !== ref.length) throw new Error(`length ${ours.length} vs reference ${ref.length}`);
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ours[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  const rows = ref.length / V;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    let a = r * V;
    let b = r * V;
    for (let v = r * V; v < (r + 1) * V; v++) {
      if (ours[v]! > ours[a]!) a = v;
      if (ref[v]! > ref[b]!) b = v;
    }
    if (a === b) agree++;
  }
  return { relRms: Math.sqrt(num / den), argmaxAgreement: agree / rows, maxAbs };
}

/**
 * Parity of a model against a reference file, per input sequence: full logits for tiny-e4b; for tiny-vocab
 * (no full reference) every position at `logit_columns` plus the full last row, compared as one tensor.
 */
export async function parityOf(model: TextModel, c: ParityCase): Promise<SeqParity[]> {
  const m = manifest()[c.fixture]!;
  const ref = SafetensorsFile.open(c.referenceFile);
  try {
    const logits = await model.logits(m.inputs);
    const V = model.cfg.vocab_size;
    return m.inputs.map((ids, i) => {
      const ours = logits[i]!;
      if (!m.logit_columns) return compareLogits(ours, ref.readFloat32(`logits.${i}`), V);
      const cols = m.logit_columns;
      const oursCols = new Float32Array(ids.length * cols.length);
      for (let t = 0; t < ids.length; t++)
        cols.forEach((v, j) => (oursCols[t * cols.length + j] = ours[t * V + v]!));
      const refCols = ref.readFloat32(`logits_cols.${i}`);
      const refLast = ref.readFloat32(`logits_last.${i}`);
      const colStats = compareLogits(oursCols, refCols, cols.length);
      const last = compareLogits(ours.subarray((ids.length - 1) * V), refLast, V);
      // One relative error over both parts (as one tensor); argmax over the listed columns at every position
      // plus the full vocabulary at the last one.
      const num = colStats.relRms ** 2 * sumSq(refCols) + last.relRms ** 2 * sumSq(refLast);
      const den = sumSq(refCols) + sumSq(refLast);
      return {
        relRms: Math.sqrt(num / den),
        argmaxAgreement: (colStats.argmaxAgreement * ids.length + last.argmaxAgreement) / (ids.length + 1),
        maxAbs: Math.max(colStats.maxAbs, last.maxAbs),
      };
    });
  } finally {
    ref.close();
  }
}

function sumSq(a: Float32Array): number {
  let s = 0;
  for (const x of a) s += x * x;
  return s;
}

/** Appends a line to $MATFORMER_PARITY_LOG (if set): lets a CI run record the numbers it achieved. */
export function logParity(line: string): void {
  const file = process.env.MATFORMER_PARITY_LOG;
  if (file) fs.appendFileSync(file, line + '\n');
}

// Helpers shared by the slicing tests: temp folders, tensor digests of a written checkpoint, fixture paths.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Checkpoint } from '../../src/formats';
import { parseConfig, ModelConfig } from '../../src/gemma3n';
import { fixturesDir } from '../helpers/shared';

export const gemmaFixtures = (): string => path.join(fixturesDir(), 'gemma3n');

export interface ManifestSlice {
  layers_to_skip: number[];
  ffn_hidden_dims: number[];
  tensor_sha256: Record<string, string>;
  tensor_shapes: Record<string, number[]>;
  text_config: Record<string, unknown>;
}

export function manifestSlices(): { fixture: string; slice: string; ref: ManifestSlice }[] {
  const m = JSON.parse(fs.readFileSync(path.join(gemmaFixtures(), 'manifest.json'), 'utf8'));
  const out: { fixture: string; slice: string; ref: ManifestSlice }[] = [];
  for (const [fixture, f] of Object.entries(
    m.fixtures as Record<string, { slices?: Record<string, ManifestSlice> }>,
  )) {
    for (const [slice, ref] of Object.entries(f.slices ?? {})) out.push({ fixture, slice, ref });
  }
  return out;
}

export function makeTempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `matformer-slice-${label}-`));
}

/** sha256 over raw bytes and shape of every tensor of a checkpoint folder. */
export function tensorDigests(dir: string): Map<string, { sha256: string; shape: number[] }> {
  const ckpt = Checkpoint.open(dir);
  try {
    const out = new Map<string, { sha256: string; shape: number[] }>();
    for (const [name, t] of ckpt.tensors) {
      const bytes = t.file.readRange(t.info, 0, t.info.end - t.info.begin);
      out.set(name, { sha256: createHash('sha256').update(bytes).digest('hex'), shape: [...t.info.shape] });
    }
    return out;
  } finally {
    ckpt.close();
  }
}

/** Leftover temporary folders of a slice into `outDir` (there must be none after success or failure). */
export function leftovers(outDir: string): string[] {
  const base = path.basename(outDir);
  return fs.readdirSync(path.dirname(outDir)).filter((n) => n.startsWith(`.${base}.tmp-`));
}

/** A Gemma 3n config from text_config fields (defaults are full-size E4B: 35 layers, 16384 wide). */
export function configOf(text: Record<string, unknown> = {}): ModelConfig {
  return parseConfig(
    { model_type: 'gemma3n', text_config: { model_type: 'gemma3n_text', num_hidden_layers: 35, ...text } },
    'test config',
  );
}

/** Copies a checkpoint folder (files only) so a test may damage it. */
export function copyCheckpoint(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const name of fs.readdirSync(src)) {
    if (name.startsWith('reference')) continue;
    fs.copyFileSync(path.join(src, name), path.join(dst, name));
    fs.chmodSync(path.join(dst, name), 0o644);
  }
}

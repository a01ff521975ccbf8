// Small random Gemma 3n checkpoints for the sweep tests, made by create-random from configs the tests write.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/cli';
import { createRandomCheckpoint } from '../../src/gemma3n';

type Json = Record<string, unknown>;

/** The tiny config (real 262k vocabulary, hidden 32) reshaped to `layers` layers, E4B's pattern of types. */
export function demoConfig(opts: { layers: number; width: number; kvShared: number; vocab?: number }): Json {
  const c = JSON.parse(fs.readFileSync(path.join(repoRoot, 'configs/tiny/config.json'), 'utf8')) as Json;
  const t = c.text_config as Json;
  t.num_hidden_layers = opts.layers;
  t.layer_types = Array.from({ length: opts.layers }, (_, i) =>
    (i + 1) % 5 === 0 ? 'full_attention' : 'sliding_attention',
  );
  t.intermediate_size = Array.from({ length: opts.layers }, () => opts.width);
  t.activation_sparsity_pattern = Array.from({ length: opts.layers }, (_, i) => (i < 3 ? 0.95 : 0));
  t.num_kv_shared_layers = opts.kvShared;
  if (opts.vocab) {
    t.vocab_size = opts.vocab;
    t.vocab_size_per_layer_input = opts.vocab;
  }
  return c;
}

/** Writes `config` and a random checkpoint of it under `dir`/`name`. */
export async function randomCheckpoint(
  dir: string,
  name: string,
  config: Json,
  seed = 1,
  maxShardBytes?: number,
): Promise<string> {
  const cfg = path.join(dir, `${name}.config.json`);
  fs.writeFileSync(cfg, JSON.stringify(config, null, 2));
  const out = path.join(dir, name);
  await createRandomCheckpoint({ config: cfg, out, seed, maxShardBytes });
  return out;
}

// The tiny multimodal Gemma 3n the Hub tests serve: configs/tiny (the 10-layer config these tests are written
// for) with a small vocabulary, random weights in three shards, plus tokenizer and generation files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRandomCheckpoint } from '../../src/gemma3n';
import { repoRoot } from '../helpers/cli';

export async function makeTinyCheckpoint(dir: string): Promise<string> {
  const cfg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'configs/tiny/config.json'), 'utf8'));
  cfg.text_config.vocab_size = 1024;
  const cfgPath = path.join(dir, 'config-src.json');
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const out = path.join(dir, 'tiny');
  await createRandomCheckpoint({ config: cfgPath, out, seed: 5, maxShardBytes: 400_000 });
  fs.writeFileSync(
    path.join(out, 'tokenizer.json'),
    JSON.stringify({ version: '1.0', model: { type: 'BPE' } }),
  );
  fs.writeFileSync(path.join(out, 'generation_config.json'), '{"do_sample": false}\n');
  return out;
}

// The logits / generate / bench commands through the built CLI (dist/cli.js), as a user runs them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/formats';
import { runCli } from '../helpers/cli';
import { describeIfShared } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';
import { GEMMA, compareLogits, gemmaDir, manifest } from './helpers';

describeIfShared(
  'engine CLI commands',
  () => {
    const e4b = () => path.join(gemmaDir(), 'tiny-e4b');

    it('logits writes float32 [T, vocab] that match the reference, atomically', () => {
      const dir = tmpDir('matformer-logits-');
      const out = path.join(dir, 'l.safetensors');
      const ids = manifest()['tiny-e4b']!.inputs[1]!;
      const r = runCli(['logits', e4b(), '--ids', ids.join(','), '--out', out, '--backend', 'wasm']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^wrote .*l\.safetensors: logits \[7, 1024\] float32; 35 layers on wasm/);
      const f = SafetensorsFile.open(out);
      try {
        expect(f.info('logits')).toMatchObject({ dtype: 'F32', shape: [7, 1024] });
        const ref = SafetensorsFile.open(path.join(e4b(), 'reference.safetensors'));
        expect(compareLogits(f.readFloat32('logits'), ref.readFloat32('logits.1'), 1024).relRms).toBeLessThan(
          5e-3,
        );
        ref.close();
      } finally {
        f.close();
      }
      // Only the output itself: the temporary file was renamed, not left behind.
      expect(fs.readdirSync(dir)).toEqual(['l.safetensors']);
    });

    it('logits of a --skip/--ffn submodel match the slice reference', () => {
      const dir = tmpDir('matformer-logits-');
      const out = path.join(dir, 'slice.safetensors');
      const m = manifest()['tiny-e4b']!;
      const s = m.slices['e2b-like']!;
      const r = runCli([
        'logits',
        e4b(),
        '--ids',
        m.inputs[1]!.join(','),
        '--skip',
        s.layers_to_skip.join(','),
        '--ffn',
        '128',
        '--out',
        out,
        '--backend',
        'cpu',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/30 layers on cpu/);
      const f = SafetensorsFile.open(out);
      const ref = SafetensorsFile.open(path.join(e4b(), 'reference.slice.e2b-like.safetensors'));
      expect(compareLogits(f.readFloat32('logits'), ref.readFloat32('logits.1'), 1024).relRms).toBeLessThan(
        5e-3,
      );
      f.close();
      ref.close();
    });

    it('generate --ids prints the greedy continuation', () => {
      const m = manifest()['tiny-e4b']!;
      const r = runCli([
        'generate',
        e4b(),
        '--ids',
        m.greedy_prompt.join(','),
        '-n',
        String(m.greedy_continuation.length),
        '--no-stop-at-eos',
        '--json',
        '--backend',
        'wasm',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.ids).toEqual(m.greedy_continuation);
      expect(out.prompt_ids).toEqual(m.greedy_prompt);
      expect(typeof out.text).toBe('string');
    });

    it('generate --prompt tokenizes with the Gemma tokenizer and decodes the output', () => {
      const m = manifest()['tiny-vocab'];
      const r = runCli([
        'generate',
        path.join(gemmaDir(), 'tiny-vocab'),
        '--prompt',
        'The capital of France is',
        '-n',
        '3',
        '--backend',
        'wasm',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('prompt ids: 2,818,5279,529,7001,563\n');
      expect(r.stdout).toMatch(/^generated ids: \d+,\d+,\d+$/m);
      expect(r.stdout).toMatch(/^text: ".*"$/m);
      expect(m).toBeDefined();
    });

    it('bench reports prefill and decode throughput and memory', () => {
      const r = runCli([
        'bench',
        e4b(),
        '--backend',
        'wasm',
        '--batch',
        '2',
        '--tokens',
        '16',
        '--decode-tokens',
        '3',
        '--json',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const b = JSON.parse(r.stdout);
      expect(b).toMatchObject({ backend: 'wasm', layers: 35, batch: 2, tokens: 16, decode: { steps: 3 } });
      expect(b.prefill.tokens_per_second).toBeGreaterThan(0);
      expect(b.decode.tokens_per_second).toBeGreaterThan(0);
      // 35 layers of the tiny model: about 9 MiB of float32 weights, and a KV cache after 16 + 3 tokens.
      expect(b.memory.weight_bytes).toBeGreaterThan(5e6);
      expect(b.memory.kv_cache_bytes).toBeGreaterThan(0);
    });

    it.each([
      [['logits', 'DIR', '--ids', '2,x', '--out', 'o.safetensors'], /--ids: "x" is not a token id/],
      [
        ['logits', 'DIR', '--ids', '2,99999', '--out', 'o.safetensors', '--backend', 'cpu'],
        /token id 99999 is outside the text vocabulary \[0, 1024\)/,
      ],
      [
        ['logits', 'DIR', '--ids', '2', '--out', '/nonexistent-dir/o.safetensors', '--backend', 'cpu'],
        /folder \/nonexistent-dir does not exist/,
      ],
      [
        ['logits', 'DIR', '--ids', '2', '--out', 'o.safetensors', '--skip', '19', '--backend', 'cpu'],
        /--skip: layer 19 is a KV producer/,
      ],
      [['generate', 'DIR', '-n', '2'], /exactly one of --prompt and --ids/],
      [['generate', 'DIR', '--ids', '2', '-n', '0'], /--max-new-tokens: 0/],
      [['bench', 'DIR', '--batch', '0'], /--batch: expected an integer from 1 to 4096, got 0/],
      [
        ['logits', 'DIR', '--ids', '2', '--out', 'o.safetensors', '--backend', 'tensorflow'],
        /backend tensorflow is not available: .*npm install @tensorflow\/tfjs-node/,
      ],
    ])('%j fails with one line and exit code 2', (args, message) => {
      const r = runCli((args as string[]).map((a) => (a === 'DIR' ? e4b() : a)));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message as RegExp);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });
  },
  [GEMMA],
);

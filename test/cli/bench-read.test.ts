// dist/bench-read.js (scripts/bench-read.ts) must read every tensor byte of a checkpoint (sharded or single-file).
import { spawnSync } from 'child_process';
import * as path from 'path';
import { Checkpoint } from '../../src/formats';
import { createRandomCheckpoint } from '../../src/gemma3n';
import { repoRoot } from '../helpers/cli';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';

function bench(args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist/bench-read.js'), ...args], {
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function dataBytes(dir: string): { bytes: number; tensors: number } {
  const c = Checkpoint.open(dir);
  try {
    return { bytes: c.dataBytes, tensors: c.tensors.size };
  } finally {
    c.close();
  }
}

describeIfShared('dist/bench-read.js', () => {
  test('tiny-e4b: every tensor byte, default and small chunks', () => {
    const dir = path.join(fixturesDir(), 'gemma3n/tiny-e4b');
    const want = dataBytes(dir);
    for (const extra of [[], ['--chunk-mb', '1']]) {
      const r = bench([dir, '--json', ...extra]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j).toMatchObject({ files: 8, tensors: want.tensors, bytes: want.bytes });
      expect(j.bytes_per_second).toBeGreaterThan(0);
      expect(j.peak_rss_bytes).toBeGreaterThan(0);
    }
  });

  test('a random single-file checkpoint, human-readable output', async () => {
    const out = path.join(tmpDir(), 'rnd');
    await createRandomCheckpoint({ config: path.join(fixturesDir(), 'gemma3n/tiny-vocab/config.json'), out });
    const want = dataBytes(out);
    const r = bench([out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`read ${want.tensors} tensors, ${(want.bytes / 1e6).toFixed(1)} MB from 1 file`),
    );
    expect(r.stdout).toMatch(/MB\/s; peak RSS [\d.]+ MB/);
  });

  test('bad usage exits 2 with a message', () => {
    const r = bench([tmpDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/expected model\.safetensors\.index\.json or model\.safetensors/);
  });
});

// The executor: exact under any chunking, atomic on failure and on interrupt, format-preserving config.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, INDEX_FILE, CheckpointError, encodeHeader } from '../../src/formats';
import { loadConfig } from '../../src/gemma3n';
import { SliceAbortedError, executePlan, planSlice, sourceTensors, editJsonObject } from '../../src/slicing';
import { cliPath } from '../helpers/cli';
import { describeIfShared } from '../helpers/shared';
import { copyCheckpoint, gemmaFixtures, leftovers, makeTempDir, manifestSlices, tensorDigests } from './util';

describe('editJsonObject', () => {
  const text =
    '{\n  "a": 1.0,\n  "t": {\n    "x": [\n      0.5,\n      0.0\n    ],\n    "n": 3\n  },\n  "z": 30.0\n}\n';

  it('changes only the updated keys, keeping float syntax elsewhere', () => {
    const out = editJsonObject(text, ['t'], { x: [0.5], n: 2 }, new Set(['x']));
    expect(out).toBe(
      '{\n  "a": 1.0,\n  "t": {\n    "x": [\n      0.5\n    ],\n    "n": 2\n  },\n  "z": 30.0\n}\n',
    );
  });
  it('writes float lists with a decimal point', () => {
    const out = editJsonObject(text, ['t'], { x: [0.95, 0] }, new Set(['x']));
    expect(out).toContain('"x": [\n      0.95,\n      0.0\n    ]');
  });
  it('adds missing keys after the last member', () => {
    const out = editJsonObject(text, ['t'], { layer_types: ['full_attention'] });
    expect(JSON.parse(out).t).toEqual({ x: [0.5, 0], n: 3, layer_types: ['full_attention'] });
    expect(out).toContain('"n": 3,\n    "layer_types": [\n      "full_attention"\n    ]\n  }');
    expect(JSON.parse(editJsonObject('{}', [], { k: 1 }))).toEqual({ k: 1 });
  });
  it('edits the top level of a text-only config and handles escapes in strings', () => {
    const out = editJsonObject('{"s": "a\\"}", "n": 1}', [], { n: 2 });
    expect(out).toBe('{"s": "a\\"}", "n": 2}');
  });
  it('rejects text that is not JSON', () => {
    expect(() => editJsonObject('{"a": }', [], { a: 1 })).toThrow(/config\.json: unexpected character/);
  });
});

/** Adds a big all-zero (sparse) tensor in its own shard, so slicing takes long enough to interrupt. */
function addBigShard(dir: string, bytes: number): void {
  const name = 'model.vision_tower.timm_model.big_test_tensor';
  const file = 'model-zz-big.safetensors';
  const { bytes: header } = encodeHeader([{ name, dtype: 'U8', shape: [bytes] }]);
  const fd = fs.openSync(path.join(dir, file), 'w');
  fs.writeSync(fd, header, 0, header.length, 0);
  fs.ftruncateSync(fd, header.length + bytes);
  fs.closeSync(fd);
  const indexPath = path.join(dir, INDEX_FILE);
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  index.weight_map[name] = file;
  fs.writeFileSync(indexPath, JSON.stringify(index));
}

describeIfShared(
  'executePlan on the shared fixtures',
  () => {
    let tmp: string;
    beforeAll(() => {
      tmp = makeTempDir('exec');
    });
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const irregular = () => manifestSlices().find((s) => s.slice === 'irregular')!.ref;
    const spec = () => ({ skip: irregular().layers_to_skip, ffn: irregular().ffn_hidden_dims });

    it('is exact with tiny chunks (many reads per tensor, several rows per compaction)', async () => {
      const src = path.join(gemmaFixtures(), 'tiny-e4b');
      const ckpt = Checkpoint.open(src);
      const out = path.join(tmp, 'chunked');
      try {
        const plan = planSlice(loadConfig(src), sourceTensors(ckpt), spec(), { maxShardBytes: 2_000_000 });
        const seen: number[] = [];
        // 100 bytes is below one PLE row (16·35·2 = 1120 bytes): the buffer must still hold a whole row.
        const res = await executePlan(plan, ckpt, {
          outDir: out,
          chunkBytes: 100,
          onProgress: (d) => seen.push(d),
        });
        expect(res.bytes).toBe(plan.outputBytes);
        expect(seen[seen.length - 1]).toBe(plan.outputBytes);
        expect(seen.length).toBeGreaterThan(1000);
      } finally {
        ckpt.close();
      }
      const got = tensorDigests(out);
      expect(Object.fromEntries([...got].map(([k, v]) => [k, v.sha256]))).toEqual(irregular().tensor_sha256);
    });

    it('leaves nothing behind when a source shard turns out truncated mid-way', async () => {
      const src = path.join(tmp, 'damaged-src');
      copyCheckpoint(path.join(gemmaFixtures(), 'tiny-e4b'), src);
      const ckpt = Checkpoint.open(src);
      const out = path.join(tmp, 'damaged-out');
      try {
        const plan = planSlice(loadConfig(src), sourceTensors(ckpt), spec(), { maxShardBytes: 500_000 });
        // The header was valid when opened; the data of the last shard then vanishes.
        const last = ckpt.shards[ckpt.shards.length - 1]!.path;
        fs.truncateSync(last, fs.statSync(last).size - 100_000);
        let written = 0;
        const run = executePlan(plan, ckpt, { outDir: out, onProgress: (d) => (written = d) });
        await expect(run).rejects.toThrow(CheckpointError);
        await expect(run).rejects.toThrow(/unexpected end of file/);
        expect(written).toBeGreaterThan(plan.outputBytes / 2);
      } finally {
        ckpt.close();
      }
      expect(fs.existsSync(out)).toBe(false);
      expect(leftovers(out)).toEqual([]);
    });

    it('an aborted run removes its temporary folder and keeps an existing output', async () => {
      const src = path.join(gemmaFixtures(), 'tiny-e4b');
      const out = path.join(tmp, 'aborted');
      fs.mkdirSync(out);
      fs.writeFileSync(path.join(out, 'old.txt'), 'previous');
      const ckpt = Checkpoint.open(src);
      const controller = new AbortController();
      try {
        const plan = planSlice(loadConfig(src), sourceTensors(ckpt), spec());
        const run = executePlan(plan, ckpt, {
          outDir: out,
          force: true,
          chunkBytes: 4096,
          signal: controller.signal,
          onProgress: (done) => done > 100_000 && controller.abort(),
        });
        await expect(run).rejects.toThrow(SliceAbortedError);
      } finally {
        ckpt.close();
      }
      expect(fs.readdirSync(out)).toEqual(['old.txt']);
      expect(leftovers(out)).toEqual([]);
    });

    it('SIGINT during a CLI run exits 130 and leaves no output or temporary folder', async () => {
      const src = path.join(tmp, 'big-src');
      copyCheckpoint(path.join(gemmaFixtures(), 'tiny-vocab'), src);
      addBigShard(src, 1 << 30);
      const out = path.join(tmp, 'interrupted');
      const child = spawn(process.execPath, [cliPath, 'slice', src, '--out', out, '--skip', '2'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      let finished = false;
      void exited.then(() => (finished = true));
      // Interrupt as soon as the temporary folder exists, i.e. mid-write.
      while (!finished && leftovers(out).length === 0) await new Promise((r) => setTimeout(r, 2));
      child.kill('SIGINT');
      const code = await exited;
      expect([code, stderr]).toEqual([130, 'interrupted: slicing interrupted; no output written\n']);
      expect(fs.existsSync(out)).toBe(false);
      expect(leftovers(out)).toEqual([]);
    });
  },
  ['fixtures/gemma3n/manifest.json', 'fixtures/gemma3n/tiny-e4b', 'fixtures/gemma3n/tiny-vocab'],
);

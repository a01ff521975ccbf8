// Each kind of bad input gives exit code 2 and exactly one stderr line naming the file and what was
// expected: no stack traces on user error.
import * as fs from 'fs';
import * as path from 'path';
import { encodeHeader } from '../../src/formats';
import { runCli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

/** The project's own 10-layer test config: these tests need a config, no shared fixtures. */
const tinyConfig = () => path.join(__dirname, '..', '..', 'configs', 'tiny', 'config.json');

/** A folder with the tiny config and one model.safetensors made of the given raw bytes. */
function checkpointWith(bytes: Buffer): { dir: string; file: string } {
  const dir = tmpDir();
  fs.copyFileSync(tinyConfig(), path.join(dir, 'config.json'));
  const file = path.join(dir, 'model.safetensors');
  fs.writeFileSync(file, bytes);
  return { dir, file };
}

/** A raw safetensors file from a header object (padded like the real writer) and a data section. */
function rawFile(header: unknown, dataBytes: number, declaredLength?: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(declaredLength ?? json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

function expectUserError(args: string[], file: string, expected: RegExp): void {
  const r = runCli(args);
  expect(r.code).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines).toHaveLength(1);
  expect(lines[0]!.startsWith(`error: ${file}`)).toBe(true);
  expect(lines[0]).toMatch(expected);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('bad input through the CLI', () => {
  test('truncated shard', () => {
    const good = encodeHeader([{ name: 'w', dtype: 'F32', shape: [4, 4] }]).bytes;
    const { dir, file } = checkpointWith(Buffer.concat([good, Buffer.alloc(40)]));
    expectUserError(
      ['inspect', dir],
      file,
      /tensor w ends at data byte 64 but the file holds only 40 data bytes/,
    );
  });

  test('header length beyond the file', () => {
    const { dir, file } = checkpointWith(
      rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4, 9999),
    );
    expectUserError(['inspect', dir], file, /header length 9999 runs past the end of the \d+-byte file/);
  });

  test('overlapping offsets', () => {
    const h = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    const { dir, file } = checkpointWith(rawFile(h, 12));
    expectUserError(['inspect', dir], file, /tensor b overlaps the previous tensor/);
  });

  test('out-of-bounds offsets', () => {
    const { dir, file } = checkpointWith(
      rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8),
    );
    expectUserError(['inspect', dir], file, /tensor a ends at data byte 16 but the file holds only 8/);
  });

  test('unknown dtype', () => {
    const { dir, file } = checkpointWith(
      rawFile({ a: { dtype: 'F12', shape: [2], data_offsets: [0, 4] } }, 4),
    );
    expectUserError(['inspect', dir], file, /tensor a has unknown dtype "F12"/);
  });

  test('shape/size mismatch', () => {
    const { dir, file } = checkpointWith(
      rawFile({ a: { dtype: 'BF16', shape: [3, 3], data_offsets: [0, 16] } }, 16),
    );
    expectUserError(['inspect', dir], file, /shape \[3, 3\] × BF16 is 18 bytes but data_offsets span 16/);
  });

  test('index naming a missing file', () => {
    const dir = tmpDir();
    fs.copyFileSync(tinyConfig(), path.join(dir, 'config.json'));
    const idx = path.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(idx, JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors' } }));
    expectUserError(
      ['inspect', dir],
      idx,
      /names shard model-00001-of-00002\.safetensors, which does not exist/,
    );
  });

  test('index naming a path outside the folder', () => {
    const dir = tmpDir();
    fs.copyFileSync(tinyConfig(), path.join(dir, 'config.json'));
    const idx = path.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(idx, JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
    expectUserError(['inspect', dir], idx, /shard name "\.\.\/\.\.\/etc\/passwd" must be a plain file name/);
  });

  test('config with inconsistent list lengths', () => {
    const dir = tmpDir();
    const cfg = JSON.parse(fs.readFileSync(tinyConfig(), 'utf8'));
    cfg.text_config.layer_types = cfg.text_config.layer_types.slice(0, 7);
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    expectUserError(['inspect', dir], file, /"layer_types" has 7 entries but num_hidden_layers is 10/);
    expectUserError(['inspect', file], file, /"layer_types" has 7 entries/);
    const out = path.join(dir, 'out');
    expectUserError(['create-random', '--config', file, '--out', out], file, /"layer_types" has 7 entries/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a directory that is not a checkpoint', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    expectUserError(
      ['inspect', dir],
      path.join(dir, 'config.json'),
      /not found: expected a Gemma 3n config\.json/,
    );
  });

  test('loose shards without an index', () => {
    const dir = tmpDir();
    fs.copyFileSync(tinyConfig(), path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'model-00001-of-00002.safetensors'), encodeHeader([]).bytes);
    expectUserError(['inspect', dir], dir, /not a checkpoint: expected model\.safetensors\.index\.json/);
  });

  test('bad flags for create-random', () => {
    const out = path.join(tmpDir(), 'x');
    const r = runCli(['create-random', '--config', tinyConfig(), '--out', out, '--max-shard-size', 'huge']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error: --max-shard-size: "huge" is not a size like 5GB, 500MB or a byte count$/m,
    );
    const s = runCli(['create-random', '--config', tinyConfig(), '--out', out, '--seed', '-3']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/^error: --seed must be a non-negative integer/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

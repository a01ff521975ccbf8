import * as fs from 'fs';
import * as path from 'path';
import {
  CheckpointError,
  SafetensorsFile,
  SafetensorsWriter,
  encodeHeader,
  writeSafetensors,
  numel,
  bf16ToF32,
  decodeFloat32,
  encodeFromFloat32,
  f16ToF32,
  f32ToBf16Bytes,
  Checkpoint,
  INDEX_FILE,
  parseIndex,
  validateShardName,
} from '../../src/formats';
import { describeIfShared, fixturesDir } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';

function findSafetensors(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findSafetensors(p));
    else if (e.name.endsWith('.safetensors')) out.push(p);
  }
  return out.sort();
}

describeIfShared('safetensors files written by Python', () => {
  const files = fs.existsSync(fixturesDir()) ? findSafetensors(fixturesDir()) : [];

  test('the fixtures hold safetensors files', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  test.each(files.map((f) => [path.relative(fixturesDir(), f), f]))(
    'rewrites %s byte-identically',
    async (_rel, file) => {
      const src = SafetensorsFile.open(file);
      const out = path.join(tmpDir(), 'copy.safetensors');
      try {
        // Same tensor order (by offset) and metadata must give the same header bytes as Python's writer.
        const specs = src.list().map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
        const { bytes } = encodeHeader(specs, src.metadata);
        const original = fs.readFileSync(file);
        expect(bytes.length).toBe(src.dataOffset);
        expect(Buffer.compare(bytes, original.subarray(0, src.dataOffset))).toBe(0);
        // Stream the data through the writer in odd-sized chunks that straddle tensor boundaries.
        const w = await SafetensorsWriter.create(out, specs, src.metadata);
        const total = src.fileBytes - src.dataOffset;
        const step = 7777;
        for (let off = 0; off < total; off += step) {
          await w.write(
            original.subarray(src.dataOffset + off, src.dataOffset + Math.min(total, off + step)),
          );
        }
        await w.close();
        expect(Buffer.compare(fs.readFileSync(out), original)).toBe(0);
      } finally {
        src.close();
      }
    },
  );

  test('bf16 fixture tensors decode exactly (bits << 16)', () => {
    const f = SafetensorsFile.open(
      path.join(fixturesDir(), 'gemma3n/tiny-e4b/model-00001-of-00008.safetensors'),
    );
    try {
      const t = f.list().find((x) => x.dtype === 'BF16' && x.shape.length === 2)!;
      const raw = f.readBytes(t.name);
      const dec = f.readFloat32(t.name);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const bits = new Uint32Array(dec.buffer, dec.byteOffset, dec.length);
      expect(dec.length).toBe(numel(t.shape));
      for (let i = 0; i < dec.length; i++) expect(bits[i]).toBe((dv.getUint16(2 * i, true) << 16) >>> 0);
    } finally {
      f.close();
    }
  });

  test('a sharded fixture opens through its index with every tensor in its named shard', () => {
    const dir = path.join(fixturesDir(), 'gemma3n/tiny-e4b');
    const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
    const ckpt = Checkpoint.open(dir);
    try {
      expect(ckpt.tensors.size).toBe(Object.keys(index.weight_map).length);
      expect(ckpt.shards.length).toBe(8);
      for (const [name, shard] of Object.entries(index.weight_map)) {
        expect(path.basename(ckpt.get(name).file.path)).toBe(shard);
      }
      expect(ckpt.dataBytes).toBe(index.metadata.total_size);
    } finally {
      ckpt.close();
    }
  });
});

describe('float decoding', () => {
  test('every bf16 bit pattern decodes to the float32 with those top 16 bits', () => {
    const pat = new Uint16Array(65536).map((_, i) => i);
    const f = bf16ToF32(new Uint8Array(pat.buffer));
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < 65536; i++) {
      if (u[i] !== (i << 16) >>> 0)
        throw new Error(`bf16 0x${i.toString(16)} decoded to 0x${u[i]!.toString(16)}`);
    }
  });

  test('bf16 encoding rounds to nearest even and round-trips every finite value', () => {
    const pat = new Uint16Array(65536).map((_, i) => i);
    const f = bf16ToF32(new Uint8Array(pat.buffer));
    const back = new Uint16Array(f32ToBf16Bytes(f).buffer);
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (!isNaN && back[i] !== i)
        throw new Error(`bf16 0x${i.toString(16)} re-encoded as 0x${back[i]!.toString(16)}`);
    }
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0).
    const enc = (x: number) => new Uint16Array(f32ToBf16Bytes(new Float32Array([x])).buffer)[0];
    expect(enc(1 + 2 ** -8)).toBe(0x3f80);
    expect(enc(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(enc(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
  });

  test('f16 decodes known values, subnormals, infinities and NaN exactly', () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3555, 0.333251953125],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const bytes = new Uint16Array(cases.map((c) => c[0]));
    const f = f16ToF32(new Uint8Array(bytes.buffer));
    cases.forEach(([, v], i) => expect(f[i]).toBe(v));
    expect(Object.is(f16ToF32(new Uint8Array(new Uint16Array([0x8000]).buffer))[0], -0)).toBe(true);
    expect(Number.isNaN(f16ToF32(new Uint8Array(new Uint16Array([0x7e00]).buffer))[0])).toBe(true);
  });

  test('every finite f16 value round-trips through float32', () => {
    const pat = new Uint16Array(65536).map((_, i) => i);
    const f = f16ToF32(new Uint8Array(pat.buffer));
    const back = new Uint16Array(encodeFromFloat32('F16', f).buffer);
    for (let i = 0; i < 65536; i++) {
      if ((i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0) continue; // NaN payloads are not preserved
      if (back[i] !== i) throw new Error(`f16 0x${i.toString(16)} re-encoded as 0x${back[i]!.toString(16)}`);
    }
  });

  test('f32 decodes exactly, also from an unaligned byte offset', () => {
    const vals = new Float32Array([1.5, -0, 3.4028234663852886e38, 1e-45, -7.25]);
    const buf = new Uint8Array(vals.byteLength + 1);
    buf.set(new Uint8Array(vals.buffer), 1);
    const dec = decodeFloat32('F32', buf.subarray(1));
    expect(Array.from(dec)).toEqual(Array.from(vals));
    expect(Object.is(dec[1], -0)).toBe(true);
  });
});

describe('row-range reads', () => {
  const rows = 10;
  const cols = 3;
  let file: string;
  beforeAll(async () => {
    file = path.join(tmpDir(), 'rows.safetensors');
    const a = Float32Array.from({ length: rows * cols }, (_, i) => i + 0.5);
    const b = Float32Array.from({ length: 4 * 2 }, (_, i) => -i);
    await writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [rows, cols], data: new Uint8Array(a.buffer) },
      { name: 'b', dtype: 'BF16', shape: [4, 2], data: f32ToBf16Bytes(b) },
      { name: 'scalar', dtype: 'F32', shape: [], data: new Uint8Array(new Float32Array([42]).buffer) },
    ]);
  });

  test('rows [2, 5) of an F32 tensor', () => {
    const f = SafetensorsFile.open(file);
    try {
      expect(Array.from(f.readFloat32('a', 2, 5))).toEqual([
        6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5,
      ]);
      expect(Array.from(f.readFloat32('a', 9))).toEqual([27.5, 28.5, 29.5]);
      expect(f.readFloat32('a', 4, 4).length).toBe(0);
      expect(Array.from(f.readFloat32('b', 3, 4))).toEqual([-6, -7]);
      expect(Array.from(f.readFloat32('scalar'))).toEqual([42]);
    } finally {
      f.close();
    }
  });

  test('out-of-range rows and unknown names are CheckpointErrors', () => {
    const f = SafetensorsFile.open(file);
    try {
      expect(() => f.readBytes('a', 8, 11)).toThrow(CheckpointError);
      expect(() => f.readBytes('a', 5, 4)).toThrow(CheckpointError);
      expect(() => f.readBytes('nope')).toThrow(CheckpointError);
    } finally {
      f.close();
    }
  });

  test('async range reads and chunk streaming return the same bytes', async () => {
    const f = SafetensorsFile.open(file);
    try {
      const t = f.info('a');
      const sync = f.readRange(t, 12, 24);
      const asyncBytes = await f.readRangeAsync(t, 12, 24, new Uint8Array(64));
      expect(Buffer.compare(Buffer.from(sync), Buffer.from(asyncBytes))).toBe(0);
      const parts: Buffer[] = [];
      for await (const c of f.streamTensor('a', 16)) parts.push(Buffer.from(c));
      expect(parts.length).toBe(Math.ceil((rows * cols * 4) / 16));
      expect(Buffer.compare(Buffer.concat(parts), Buffer.from(f.readBytes('a')))).toBe(0);
    } finally {
      f.close();
    }
  });
});

describe('offsets beyond 2 GB and 4 GB (sparse file)', () => {
  test('reads the last rows of a tensor that ends past 2^32 bytes', async () => {
    const file = path.join(tmpDir(), 'big.safetensors');
    const rowElems = 1024;
    const bigRows = 2 ** 20; // 2 GiB of BF16 after a 2 GiB + 8 byte pad: ends just past 2^32
    const specs = [
      { name: 'pad', dtype: 'U8' as const, shape: [2 ** 31 + 8] },
      { name: 'big', dtype: 'BF16' as const, shape: [bigRows, rowElems] },
      { name: 'tail', dtype: 'F32' as const, shape: [4, 4] },
    ];
    const { bytes, offsets } = encodeHeader(specs);
    const dataStart = bytes.length;
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, bytes, 0, bytes.length, 0);
      fs.ftruncateSync(fd, dataStart + offsets[2]![1]); // holes everywhere
      const lastRows = new Float32Array(2 * rowElems).map((_, i) => (i % 97) - 48);
      fs.writeSync(fd, f32ToBf16Bytes(lastRows), 0, undefined, dataStart + offsets[1]![1] - 2 * rowElems * 2);
      const tail = Float32Array.from({ length: 16 }, (_, i) => i * 0.25);
      fs.writeSync(fd, new Uint8Array(tail.buffer), 0, undefined, dataStart + offsets[2]![0]);
    } finally {
      fs.closeSync(fd);
    }
    expect(offsets[1]![1]).toBeGreaterThan(2 ** 32);
    const f = SafetensorsFile.open(file);
    try {
      expect(f.info('tail').begin).toBe(2 ** 31 + 8 + bigRows * rowElems * 2);
      const got = f.readFloat32('big', bigRows - 2, bigRows);
      expect(got.length).toBe(2 * rowElems);
      for (let i = 0; i < got.length; i++) expect(got[i]).toBe((i % 97) - 48);
      // A row in the middle of the hole reads back as zeros.
      expect(f.readFloat32('big', 2 ** 19, 2 ** 19 + 1).every((x) => x === 0)).toBe(true);
      expect(Array.from(f.readFloat32('tail', 3, 4))).toEqual([3, 3.25, 3.5, 3.75]);
      const asyncTail = await f.readRangeAsync(f.info('tail'), 0, 16, new Uint8Array(16));
      expect(Array.from(new Float32Array(asyncTail.slice().buffer))).toEqual([0, 0.25, 0.5, 0.75]);
    } finally {
      f.close();
    }
  });
});

describe('sharded index', () => {
  test.each([
    'a/b.safetensors',
    '../x.safetensors',
    '..',
    '.',
    '',
    'a\\b.safetensors',
    '/abs.safetensors',
    'x\0y',
  ])('rejects the shard name %j', (name) => {
    expect(() => validateShardName('idx.json', name)).toThrow(CheckpointError);
    const text = JSON.stringify({ weight_map: { t: name } });
    expect(() => parseIndex('idx.json', text)).toThrow(/plain file name|must be file names/);
  });

  test.each([42, null, ['a']])('rejects a non-string shard name %j', (name) => {
    expect(() => parseIndex('idx.json', JSON.stringify({ weight_map: { t: name } }))).toThrow(
      CheckpointError,
    );
  });

  test('accepts plain names, including ones with dots', () => {
    const idx = parseIndex(
      'idx.json',
      JSON.stringify({
        metadata: { total_size: 4 },
        weight_map: { t: 'model-00001-of-00002.safetensors', u: 'a..b' },
      }),
    );
    expect(idx.weightMap.get('t')).toBe('model-00001-of-00002.safetensors');
    expect(idx.weightMap.get('u')).toBe('a..b');
    expect(idx.metadata.total_size).toBe(4);
  });

  test.each(['[]', '{}', '{"weight_map": []}', 'not json'])('rejects the index %s', (text) => {
    expect(() => parseIndex('idx.json', text)).toThrow(CheckpointError);
  });

  test('a shard that lacks a tensor the index names is an error naming the shard', async () => {
    const dir = tmpDir();
    await writeSafetensors(path.join(dir, 's1.safetensors'), [
      { name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
    ]);
    fs.writeFileSync(
      path.join(dir, INDEX_FILE),
      JSON.stringify({ weight_map: { x: 's1.safetensors', y: 's1.safetensors' } }),
    );
    expect(() => Checkpoint.open(dir)).toThrow(/s1\.safetensors: index says it holds y/);
  });
});

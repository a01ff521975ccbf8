// Byte sources: coalescing of ranges, batched reads that return the same bytes with fewer requests,
// and the safetensors reader over a byte source agreeing with the local reader.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ByteSource,
  CoalescingByteSource,
  FileByteSource,
  coalesceRanges,
  rangesBytes,
} from '../../src/formats';
import { Checkpoint, SafetensorsFile, SafetensorsReader, writeSafetensors } from '../../src/formats';
import { tmpDir } from '../helpers/tmp';

class MemorySource implements ByteSource {
  readonly name = 'memory';
  reads: [number, number][] = [];
  constructor(private readonly data: Uint8Array) {}
  get size(): number {
    return this.data.byteLength;
  }
  async read(position: number, into: Uint8Array): Promise<Uint8Array> {
    this.reads.push([position, into.byteLength]);
    into.set(this.data.subarray(position, position + into.byteLength));
    return into;
  }
  close(): void {}
}

const data = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 251);

describe('coalesceRanges', () => {
  test('merges touching ranges, keeps gaps, drops empty ones', () => {
    expect(
      coalesceRanges([
        [0, 5],
        [5, 9],
        [12, 20],
        [20, 20],
        [21, 30],
      ]),
    ).toEqual([
      [0, 9],
      [12, 20],
      [21, 30],
    ]);
    expect(
      coalesceRanges(
        [
          [0, 5],
          [8, 9],
        ],
        3,
      ),
    ).toEqual([[0, 9]]);
    expect(
      rangesBytes([
        [0, 9],
        [12, 20],
      ]),
    ).toBe(17);
    expect(() =>
      coalesceRanges([
        [5, 6],
        [0, 1],
      ]),
    ).toThrow(/sorted/);
  });
});

describe('CoalescingByteSource', () => {
  test('serves small reads of one run from one request, with the same bytes', async () => {
    const mem = new MemorySource(data);
    const src = new CoalescingByteSource(mem, 4096);
    src.expect([
      [100, 3000],
      [5000, 9000],
    ]);
    const got: number[] = [];
    for (let p = 100; p < 3000; p += 100) {
      const b = await src.read(p, new Uint8Array(100));
      expect(b).toEqual(data.subarray(p, p + 100));
      got.push(p);
    }
    expect(mem.reads).toEqual([[100, 2900]]);
    // A read past a window's end takes what the window has and fetches only the rest.
    mem.reads = [];
    expect(await src.read(5000, new Uint8Array(10))).toEqual(data.subarray(5000, 5010));
    expect(await src.read(5005, new Uint8Array(4200))).toEqual(data.subarray(5005, 9205));
    expect(mem.reads).toEqual([
      [5000, 4000], // the window stops at the end of the run
      [9000, 205],
    ]);
    // Outside every run: exactly what was asked.
    mem.reads = [];
    expect(await src.read(3500, new Uint8Array(50))).toEqual(data.subarray(3500, 3550));
    expect(mem.reads).toEqual([[3500, 50]]);
    expect(src.requests).toBe(4);
  });
});

describe('SafetensorsReader over a byte source', () => {
  test('reads the same header and bytes as SafetensorsFile, also when the header needs a second read', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    // Many tensors: a header larger than the first 64 KiB read.
    const tensors = Array.from({ length: 1500 }, (_, i) => ({
      name: `model.language_model.layers.${i}.some_rather_long_tensor_name_for_a_big_header.weight`,
      dtype: 'U8' as const,
      shape: [3, 5],
      data: Uint8Array.from({ length: 15 }, (_, k) => (i + k) % 256),
    }));
    await writeSafetensors(file, tensors);
    const local = SafetensorsFile.open(file);
    expect(local.headerBytes).toBeGreaterThan(64 * 1024);
    const reader = await SafetensorsReader.open(FileByteSource.open(file));
    expect(reader.list()).toEqual(local.list());
    expect(reader.dataOffset).toBe(local.dataOffset);
    const t = reader.list()[777]!;
    expect(await reader.readRangeAsync(t, 2, 10, new Uint8Array(10))).toEqual(local.readRange(t, 2, 10));
    await expect(reader.readRangeAsync(t, 10, 10, new Uint8Array(10))).rejects.toThrow(/out of bounds/);
    local.close();
    reader.close();
    const ckpt = await Checkpoint.openWith(dir, async (name) =>
      SafetensorsReader.open(FileByteSource.open(path.join(dir, name))),
    );
    expect(ckpt.tensors.size).toBe(1500);
    ckpt.close();
    fs.rmSync(file);
    await expect(
      Checkpoint.openWith(dir, async (name) =>
        SafetensorsReader.open(FileByteSource.open(path.join(dir, name))),
      ),
    ).rejects.toThrow(/model\.safetensors: cannot open \(ENOENT\)/);
  });
});

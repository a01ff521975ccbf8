// The GGUF writer: header, every metadata type, tensor infos, alignment, streamed data, atomicity.
import * as fs from 'fs';
import * as path from 'path';
import {
  GgmlType,
  GgufError,
  GgufTensor,
  GgufType,
  alignUp,
  gguf,
  layoutGguf,
  readGgufHeader,
  writeGguf,
} from '../../src/formats';
import { tmpDir } from '../helpers/tmp';

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

describe('GGUF writer', () => {
  it('writes every metadata type and reads back the same values and types', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'all.gguf');
    const kvs = [
      { key: 'general.architecture', value: gguf.str('test') },
      { key: 'u8', value: gguf.u8(255) },
      { key: 'i8', value: gguf.i8(-128) },
      { key: 'u16', value: gguf.u16(65535) },
      { key: 'i16', value: gguf.i16(-32768) },
      { key: 'u32', value: gguf.u32(4294967295) },
      { key: 'i32', value: gguf.i32(-2147483648) },
      { key: 'f32', value: gguf.f32(-Infinity) },
      { key: 'bool', value: gguf.bool(true) },
      { key: 'u64', value: gguf.u64(2n ** 63n) },
      { key: 'i64', value: gguf.i64(-(2n ** 62n)) },
      { key: 'f64', value: gguf.f64(Math.PI) },
      { key: 'arr.str', value: gguf.array(GgufType.STRING, ['a', 'é', '▁x']) },
      { key: 'arr.i32', value: gguf.array(GgufType.INT32, [1, -2, 3]) },
      { key: 'arr.bool', value: gguf.array(GgufType.BOOL, [true, false]) },
    ];
    const data = f32([1, 2, 3, 4, 5, 6]);
    const tensors: GgufTensor[] = [
      { name: 'a.weight', dims: [3, 2], type: GgmlType.F32, data: () => chunks(data, 5) },
      { name: 'b', dims: [1], type: GgmlType.F16, data: () => chunks(new Uint8Array([0, 0x3c]), 1) },
    ];
    const layout = await writeGguf(file, kvs, tensors);
    const buf = fs.readFileSync(file);
    expect(buf.length).toBe(layout.fileBytes);
    const r = readGgufHeader(buf);
    expect(r.version).toBe(3);
    expect(r.kv.get('u8')).toBe(255);
    expect(r.kv.get('i8')).toBe(-128);
    expect(r.kv.get('i16')).toBe(-32768);
    expect(r.kv.get('u32')).toBe(4294967295);
    expect(r.kv.get('i32')).toBe(-2147483648);
    expect(r.kv.get('f32')).toBe(-Infinity);
    expect(r.kv.get('bool')).toBe(true);
    expect(r.kv.get('u64')).toBe(2n ** 63n);
    expect(r.kv.get('i64')).toBe(-(2n ** 62n));
    expect(r.kv.get('f64')).toBe(Math.PI);
    expect(r.kv.get('arr.str')).toEqual(['a', 'é', '▁x']);
    expect(r.types.get('arr.i32')).toEqual({ type: GgufType.ARRAY, itemType: GgufType.INT32 });
    expect(r.kv.get('arr.bool')).toEqual([true, false]);
    expect(r.tensors.map((t) => [t.name, t.dims, t.type, t.offset])).toEqual([
      ['a.weight', [3, 2], GgmlType.F32, 0],
      ['b', [1], GgmlType.F16, 32],
    ]);
    // Data section aligned to 32; each tensor padded to 32.
    expect(r.dataStart % 32).toBe(0);
    expect(new Float32Array(Uint8Array.from(buf.subarray(r.dataStart, r.dataStart + 24)).buffer)).toEqual(
      new Float32Array([1, 2, 3, 4, 5, 6]),
    );
    expect(buf.subarray(r.dataStart + 32, r.dataStart + 34)).toEqual(Buffer.from([0, 0x3c]));
    expect(buf.length).toBe(r.dataStart + 64);
  });

  it('honours general.alignment', () => {
    const l = layoutGguf(
      [{ key: 'general.alignment', value: gguf.u32(64) }],
      [{ name: 't', dims: [3], type: GgmlType.F32, data: () => chunks(new Uint8Array(12), 12) }],
    );
    expect(l.alignment).toBe(64);
    expect(l.head.length % 64).toBe(0);
    expect(l.fileBytes).toBe(l.head.length + alignUp(12, 64));
  });

  it.each([
    [
      'a duplicate key',
      [
        { key: 'k', value: gguf.u8(1) },
        { key: 'k', value: gguf.u8(2) },
      ],
      [],
      /given twice/,
    ],
    ['an out-of-range value', [{ key: 'k', value: gguf.u8(256) }], [], /not in \[0, 255\]/],
    ['a long tensor name', [], [{ name: 'x'.repeat(64), dims: [1], type: GgmlType.F32 }], /longer than 63/],
    ['a bad shape', [], [{ name: 't', dims: [0], type: GgmlType.F32 }], /positive dimensions/],
    ['a bad alignment', [{ key: 'general.alignment', value: gguf.u32(12) }], [], /multiple of 8/],
  ])('rejects %s', (_label, kvs, tensors, re) => {
    const ts = (tensors as Omit<GgufTensor, 'data'>[]).map((t) => ({
      ...t,
      data: () => chunks(new Uint8Array(0), 1),
    }));
    expect(() => layoutGguf(kvs as never, ts)).toThrow(re);
  });

  it('rejects empty arrays', () => {
    expect(() => gguf.array(GgufType.INT32, [])).toThrow(GgufError);
  });

  it('leaves nothing behind when a source gives the wrong number of bytes', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'short.gguf');
    await expect(
      writeGguf(
        file,
        [],
        [{ name: 't', dims: [4], type: GgmlType.F32, data: () => chunks(new Uint8Array(12), 4) }],
      ),
    ).rejects.toThrow(/gave 12 bytes, expected 16/);
    await expect(
      writeGguf(
        file,
        [],
        [{ name: 't', dims: [1], type: GgmlType.F32, data: () => chunks(new Uint8Array(8), 8) }],
      ),
    ).rejects.toThrow(/more than its 4 bytes/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

// A streaming GGUF v3 writer (the file format of ggml / llama.cpp), free of any model knowledge:
// typed key/value metadata, tensor infos, alignment, and tensor data pulled from async sources one
// chunk at a time, so memory stays bounded whatever the file size. The file is written beside its
// target and renamed into place at the end.
import * as fsp from 'node:fs/promises';
import { writeAtomically } from './atomic';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** llama.cpp's GGML_MAX_NAME: a tensor name must be shorter than this. */
export const GGUF_MAX_TENSOR_NAME = 64;

/** Metadata value types (ggml's `gguf_type`). */
export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** The ggml tensor types a float export uses. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  BF16 = 30,
}

export const GGML_TYPE_BYTES: Record<GgmlType, number> = {
  [GgmlType.F32]: 4,
  [GgmlType.F16]: 2,
  [GgmlType.BF16]: 2,
};

export type GgufScalarType = Exclude<GgufType, GgufType.ARRAY>;
export type GgufScalar = number | bigint | boolean | string;

export type GgufValue =
  | { readonly type: GgufScalarType; readonly value: GgufScalar }
  | {
      readonly type: GgufType.ARRAY;
      readonly itemType: GgufScalarType;
      readonly value: readonly GgufScalar[];
    };

export interface GgufKv {
  readonly key: string;
  readonly value: GgufValue;
}

export interface GgufTensor {
  readonly name: string;
  /** ggml order: ne[0] (the contiguous axis) first, i.e. a row-major [out, in] matrix is [in, out]. */
  readonly dims: readonly number[];
  readonly type: GgmlType;
  /** The tensor's bytes in order, in chunks of any size; the writer checks the total. */
  readonly data: () => AsyncIterable<Uint8Array>;
}

export class GgufError extends Error {
  override name = 'GgufError';
}

export function ggufTensorBytes(t: Pick<GgufTensor, 'dims' | 'type'>): number {
  return t.dims.reduce((a, d) => a * d, 1) * GGML_TYPE_BYTES[t.type];
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Little-endian bytes, appended to a growing buffer (metadata and tensor infos are small). */
class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }

  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }

  string(s: string): void {
    const body = Buffer.from(s, 'utf8');
    this.u64(body.length);
    this.push(body);
  }

  scalar(type: GgufScalarType, v: GgufScalar, key: string): void {
    const bad = (what: string) =>
      new GgufError(`metadata ${key}: ${JSON.stringify(String(v))} is not ${what}`);
    const int = (lo: number, hi: number) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(`in [${lo}, ${hi}]`);
      return v;
    };
    let b: Buffer;
    switch (type) {
      case GgufType.UINT8:
        b = Buffer.alloc(1);
        b.writeUInt8(int(0, 0xff));
        break;
      case GgufType.INT8:
        b = Buffer.alloc(1);
        b.writeInt8(int(-0x80, 0x7f));
        break;
      case GgufType.UINT16:
        b = Buffer.alloc(2);
        b.writeUInt16LE(int(0, 0xffff));
        break;
      case GgufType.INT16:
        b = Buffer.alloc(2);
        b.writeInt16LE(int(-0x8000, 0x7fff));
        break;
      case GgufType.UINT32:
        b = Buffer.alloc(4);
        b.writeUInt32LE(int(0, 0xffffffff));
        break;
      case GgufType.INT32:
        b = Buffer.alloc(4);
        b.writeInt32LE(int(-0x80000000, 0x7fffffff));
        break;
      case GgufType.UINT64:
      case GgufType.INT64: {
        if (typeof v !== 'bigint' && (typeof v !== 'number' || !Number.isSafeInteger(v)))
          throw bad('an integer');
        b = Buffer.alloc(8);
        if (type === GgufType.UINT64) {
          if (BigInt(v) < 0n) throw bad('unsigned');
          b.writeBigUInt64LE(BigInt(v));
        } else b.writeBigInt64LE(BigInt(v));
        break;
      }
      case GgufType.FLOAT32:
        if (typeof v !== 'number') throw bad('a number');
        b = Buffer.alloc(4);
        b.writeFloatLE(v);
        break;
      case GgufType.FLOAT64:
        if (typeof v !== 'number') throw bad('a number');
        b = Buffer.alloc(8);
        b.writeDoubleLE(v);
        break;
      case GgufType.BOOL:
        if (typeof v !== 'boolean') throw bad('a boolean');
        b = Buffer.from([v ? 1 : 0]);
        break;
      case GgufType.STRING:
        if (typeof v !== 'string') throw bad('a string');
        this.string(v);
        return;
    }
    this.push(b);
  }

  value(key: string, v: GgufValue): void {
    this.u32(v.type);
    if (v.type !== GgufType.ARRAY) {
      this.scalar(v.type, v.value, key);
      return;
    }
    this.u32(v.itemType);
    this.u64(v.value.length);
    for (const item of v.value) this.scalar(v.itemType, item, key);
  }

  zeros(n: number): void {
    if (n > 0) this.push(Buffer.alloc(n));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

export interface GgufLayout {
  /** Header, metadata and tensor infos, padded to the alignment: everything before the data. */
  readonly head: Buffer;
  /** Each tensor's offset relative to the start of the data section. */
  readonly offsets: readonly number[];
  readonly alignment: number;
  /** Total file size. */
  readonly fileBytes: number;
}

/** Checks names, keys and alignment, and encodes everything that precedes the tensor data. */
export function layoutGguf(kvs: readonly GgufKv[], tensors: readonly GgufTensor[]): GgufLayout {
  const keys = new Set<string>();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (const { key, value } of kvs) {
    if (keys.has(key)) throw new GgufError(`metadata key ${key} given twice`);
    keys.add(key);
    if (key === 'general.alignment') {
      if (
        value.type !== GgufType.UINT32 ||
        typeof value.value !== 'number' ||
        !(value.value > 0) ||
        value.value % 8
      )
        throw new GgufError('general.alignment must be a UINT32 multiple of 8');
      alignment = value.value;
    }
  }
  const names = new Set<string>();
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(kvs.length);
  for (const { key, value } of kvs) {
    s.string(key);
    s.value(key, value);
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`tensor ${t.name} given twice`);
    names.add(t.name);
    if (Buffer.byteLength(t.name) >= GGUF_MAX_TENSOR_NAME)
      throw new GgufError(`tensor name ${t.name} is longer than ${GGUF_MAX_TENSOR_NAME - 1} bytes`);
    if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isSafeInteger(d) || d < 1))
      throw new GgufError(
        `tensor ${t.name}: 1 to 4 positive dimensions expected, got [${t.dims.join(', ')}]`,
      );
    s.string(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(offset);
    offsets.push(offset);
    offset += alignUp(ggufTensorBytes(t), alignment);
  }
  s.zeros(alignUp(s.length, alignment) - s.length);
  const head = s.toBuffer();
  return { head, offsets, alignment, fileBytes: head.length + offset };
}

export interface WriteGgufOptions {
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/** Writes a GGUF file atomically; tensor data are pulled from each tensor's source in order. */
export async function writeGguf(
  file: string,
  kvs: readonly GgufKv[],
  tensors: readonly GgufTensor[],
  opts: WriteGgufOptions = {},
): Promise<GgufLayout> {
  const layout = layoutGguf(kvs, tensors);
  const total = layout.fileBytes;
  await writeAtomically(file, async (tmp) => {
    const fh = await fsp.open(tmp, 'wx');
    try {
      let pos = 0;
      const put = async (b: Uint8Array) => {
        let done = 0;
        while (done < b.byteLength) {
          const { bytesWritten } = await fh.write(b, done, b.byteLength - done, pos + done);
          done += bytesWritten;
        }
        pos += b.byteLength;
        opts.onProgress?.(pos, total);
        if (opts.signal?.aborted) throw new GgufError(`${file}: interrupted; nothing written`);
      };
      await put(layout.head);
      const dataStart = layout.head.length;
      for (const [i, t] of tensors.entries()) {
        const want = ggufTensorBytes(t);
        const start = pos;
        if (start - dataStart !== layout.offsets[i]) throw new GgufError(`tensor ${t.name}: offset drifted`);
        for await (const chunk of t.data()) {
          if (pos - start + chunk.byteLength > want)
            throw new GgufError(`tensor ${t.name}: source gave more than its ${want} bytes`);
          await put(chunk);
        }
        if (pos - start !== want)
          throw new GgufError(`tensor ${t.name}: source gave ${pos - start} bytes, expected ${want}`);
        const pad = alignUp(want, layout.alignment) - want;
        if (pad > 0) await put(new Uint8Array(pad));
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
  return layout;
}

// Value constructors, so tables of keys read like the converter's `add_*` calls.
export const gguf = {
  u8: (value: number): GgufValue => ({ type: GgufType.UINT8, value }),
  i8: (value: number): GgufValue => ({ type: GgufType.INT8, value }),
  u16: (value: number): GgufValue => ({ type: GgufType.UINT16, value }),
  i16: (value: number): GgufValue => ({ type: GgufType.INT16, value }),
  u32: (value: number): GgufValue => ({ type: GgufType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufType.INT32, value }),
  u64: (value: number | bigint): GgufValue => ({ type: GgufType.UINT64, value }),
  i64: (value: number | bigint): GgufValue => ({ type: GgufType.INT64, value }),
  f32: (value: number): GgufValue => ({ type: GgufType.FLOAT32, value }),
  f64: (value: number): GgufValue => ({ type: GgufType.FLOAT64, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufType.STRING, value }),
  array: (itemType: GgufScalarType, value: readonly GgufScalar[]): GgufValue => {
    if (value.length === 0) throw new GgufError('GGUF arrays must not be empty');
    return { type: GgufType.ARRAY, itemType, value };
  },
};

/** A small reader for what this writer produces (tests, `--verify` sanity checks). */
export interface GgufRead {
  readonly version: number;
  readonly kv: Map<string, GgufScalar | GgufScalar[]>;
  readonly types: Map<string, { type: GgufType; itemType?: GgufType }>;
  readonly tensors: { name: string; dims: number[]; type: number; offset: number }[];
  readonly dataStart: number;
  readonly alignment: number;
}

export function readGgufHeader(buf: Buffer): GgufRead {
  let p = 0;
  const need = (n: number) => {
    if (p + n > buf.length) throw new GgufError('GGUF header truncated');
  };
  const u32 = () => (need(4), (p += 4), buf.readUInt32LE(p - 4));
  const u64 = () => (need(8), (p += 8), Number(buf.readBigUInt64LE(p - 8)));
  const str = () => {
    const n = u64();
    need(n);
    p += n;
    return buf.toString('utf8', p - n, p);
  };
  const scalar = (t: GgufType): GgufScalar => {
    const sizes: Partial<Record<GgufType, number>> = {
      0: 1,
      1: 1,
      2: 2,
      3: 2,
      4: 4,
      5: 4,
      6: 4,
      7: 1,
      10: 8,
      11: 8,
      12: 8,
    };
    if (t === GgufType.STRING) return str();
    const n = sizes[t];
    if (n === undefined) throw new GgufError(`unknown GGUF value type ${t}`);
    need(n);
    const at = p;
    p += n;
    switch (t) {
      case GgufType.UINT8:
        return buf.readUInt8(at);
      case GgufType.INT8:
        return buf.readInt8(at);
      case GgufType.UINT16:
        return buf.readUInt16LE(at);
      case GgufType.INT16:
        return buf.readInt16LE(at);
      case GgufType.UINT32:
        return buf.readUInt32LE(at);
      case GgufType.INT32:
        return buf.readInt32LE(at);
      case GgufType.FLOAT32:
        return buf.readFloatLE(at);
      case GgufType.BOOL:
        return buf.readUInt8(at) !== 0;
      case GgufType.UINT64:
        return buf.readBigUInt64LE(at);
      case GgufType.INT64:
        return buf.readBigInt64LE(at);
      default:
        return buf.readDoubleLE(at);
    }
  };
  if (u32() !== GGUF_MAGIC) throw new GgufError('not a GGUF file (bad magic)');
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, GgufScalar | GgufScalar[]>();
  const types = new Map<string, { type: GgufType; itemType?: GgufType }>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32() as GgufType;
    if (type === GgufType.ARRAY) {
      const itemType = u32() as GgufType;
      const n = u64();
      const values: GgufScalar[] = [];
      for (let k = 0; k < n; k++) values.push(scalar(itemType));
      kv.set(key, values);
      types.set(key, { type, itemType });
    } else {
      kv.set(key, scalar(type));
      types.set(key, { type });
    }
  }
  const tensors: GgufRead['tensors'] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const n = u32();
    const dims: number[] = [];
    for (let k = 0; k < n; k++) dims.push(u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const a = kv.get('general.alignment');
  const alignment = typeof a === 'number' ? a : GGUF_DEFAULT_ALIGNMENT;
  return { version, kv, types, tensors, dataStart: alignUp(p, alignment), alignment };
}

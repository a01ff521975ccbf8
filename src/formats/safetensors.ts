// Streaming safetensors: positional reads over a file descriptor and a sequential writer.
// Nothing here holds a whole file in memory, and offsets are plain numbers (exact up to 2^53),
// so files far beyond 2 GB work.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { UserInputError } from './errors';
import { fileProblem } from './files';
import { DType, decodeFloat32, dtypeBytes, isDType, isFloatDecodable } from './dtype';
import type { ByteSource } from './byte-source';

/** A user-facing problem with a checkpoint file: the message is one line naming the file. */
export class CheckpointError extends UserInputError {
  override name = 'CheckpointError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data section. */
  readonly begin: number;
  readonly end: number;
}

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** Largest header we accept; real ones are well under 1 MB (E4B's largest shard: ~120 KB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensorBytes(spec: TensorSpec): number {
  return numel(spec.shape) * dtypeBytes(spec.dtype);
}

export interface ParsedHeader {
  readonly tensors: TensorInfo[];
  readonly metadata: Record<string, string> | null;
}

/**
 * Validates a header as the reference implementation does: known dtypes, shape × size equal to the byte
 * range, and ranges that tile the data section exactly (sorted, contiguous, non-overlapping, in bounds).
 */
export function parseHeader(file: string, headerText: string, dataBytes: number): ParsedHeader {
  let json: unknown;
  try {
    json = JSON.parse(headerText);
  } catch {
    throw new CheckpointError(file, 'header is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError(file, 'header must be a JSON object of tensor entries');
  }
  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new CheckpointError(file, '__metadata__ must be an object of strings');
      }
      for (const v of Object.values(entry)) {
        if (typeof v !== 'string') throw new CheckpointError(file, '__metadata__ values must be strings');
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    tensors.push(parseEntry(file, name, entry));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin !== cursor) {
      throw new CheckpointError(
        file,
        t.begin < cursor
          ? `tensor ${t.name} overlaps the previous tensor (starts at byte ${t.begin}, expected ${cursor})`
          : `gap before tensor ${t.name} (starts at byte ${t.begin}, expected ${cursor})`,
      );
    }
    if (t.end > dataBytes) {
      throw new CheckpointError(
        file,
        `tensor ${t.name} ends at data byte ${t.end} but the file holds only ${dataBytes} data bytes (truncated?)`,
      );
    }
    cursor = t.end;
  }
  if (cursor !== dataBytes) {
    throw new CheckpointError(file, `tensors cover ${cursor} data bytes but the file holds ${dataBytes}`);
  }
  return { tensors, metadata };
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(file: string, name: string, entry: unknown): TensorInfo {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new CheckpointError(file, `entry for ${name} must be an object`);
  }
  const e = entry as Record<string, unknown>;
  if (!isDType(e.dtype)) {
    throw new CheckpointError(file, `tensor ${name} has unknown dtype ${JSON.stringify(e.dtype)}`);
  }
  if (!Array.isArray(e.shape) || !e.shape.every(isIndex)) {
    throw new CheckpointError(file, `tensor ${name} needs a shape of non-negative integers`);
  }
  const offs = e.data_offsets;
  if (
    !Array.isArray(offs) ||
    offs.length !== 2 ||
    !isIndex(offs[0]) ||
    !isIndex(offs[1]) ||
    offs[1] < offs[0]
  ) {
    throw new CheckpointError(file, `tensor ${name} needs data_offsets [begin, end] with begin <= end`);
  }
  const shape = e.shape as number[];
  const expected = numel(shape) * dtypeBytes(e.dtype);
  if (!Number.isSafeInteger(expected) || expected !== offs[1] - offs[0]) {
    throw new CheckpointError(
      file,
      `tensor ${name}: shape [${shape.join(', ')}] × ${e.dtype} is ${expected} bytes but data_offsets span ${offs[1] - offs[0]}`,
    );
  }
  return { name, dtype: e.dtype, shape, begin: offs[0], end: offs[1] };
}

/** The header length of a file of `size` bytes from its first 8 bytes, checked against the limits. */
function headerLength(file: string, first8: Uint8Array, size: number): number {
  const len = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  if (len > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(file, `header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerBytes = Number(len);
  if (8 + headerBytes > size) {
    throw new CheckpointError(
      file,
      `header length ${headerBytes} runs past the end of the ${size}-byte file`,
    );
  }
  return headerBytes;
}

/**
 * One shard as the slicer and `inspect` see it: a local SafetensorsFile, or a SafetensorsReader over any
 * ByteSource (HTTP range requests).
 */
export interface TensorShard {
  readonly path: string;
  readonly fileBytes: number;
  /** Start of the data section in the file. */
  readonly dataOffset: number;
  readonly metadata: Record<string, string> | null;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Tensors in file order. */
  list(): TensorInfo[];
  /** Raw bytes at [begin, begin + length) of one tensor's data. */
  readRangeAsync(t: TensorInfo, begin: number, length: number, into: Uint8Array): Promise<Uint8Array>;
  close(): void;
}

/**
 * Bytes read first when opening a header from a ByteSource: small shards' headers fit whole; a larger
 * one (E4B's reach ~120 KB) takes a second request for the rest.
 */
export const HEADER_PREFETCH_BYTES = 64 * 1024;

/** A safetensors file read asynchronously through a ByteSource: a header read, then only the ranges asked for. */
export class SafetensorsReader implements TensorShard {
  readonly tensors: ReadonlyMap<string, TensorInfo>;

  private constructor(
    readonly source: ByteSource,
    readonly headerBytes: number,
    readonly metadata: Record<string, string> | null,
    list: TensorInfo[],
  ) {
    this.tensors = new Map(list.map((t) => [t.name, t]));
  }

  get path(): string {
    return this.source.name;
  }

  get fileBytes(): number {
    return this.source.size;
  }

  get dataOffset(): number {
    return 8 + this.headerBytes;
  }

  static async open(source: ByteSource): Promise<SafetensorsReader> {
    const file = source.name;
    const size = source.size;
    if (size < 8)
      throw new CheckpointError(file, `file is ${size} bytes, too short for a safetensors header`);
    const first = await source.read(0, new Uint8Array(Math.min(size, HEADER_PREFETCH_BYTES)));
    const headerBytes = headerLength(file, first, size);
    let head: Uint8Array;
    if (8 + headerBytes <= first.byteLength) head = first.subarray(8, 8 + headerBytes);
    else {
      head = new Uint8Array(headerBytes);
      head.set(first.subarray(8));
      await source.read(first.byteLength, head.subarray(first.byteLength - 8));
    }
    const parsed = parseHeader(file, Buffer.from(head).toString('utf8'), size - 8 - headerBytes);
    return new SafetensorsReader(source, headerBytes, parsed.metadata, parsed.tensors);
  }

  list(): TensorInfo[] {
    return [...this.tensors.values()].sort((a, b) => a.begin - b.begin);
  }

  async readRangeAsync(t: TensorInfo, begin: number, length: number, into: Uint8Array): Promise<Uint8Array> {
    if (begin < 0 || begin + length > t.end - t.begin) {
      throw new CheckpointError(
        this.path,
        `byte range [${begin}, ${begin + length}) out of bounds for ${t.name}`,
      );
    }
    return this.source.read(this.dataOffset + t.begin + begin, into.subarray(0, length));
  }

  close(): void {
    this.source.close();
  }
}

/** One safetensors file, read positionally. Open it, read what you need, close it. */
export class SafetensorsFile implements TensorShard {
  readonly tensors: ReadonlyMap<string, TensorInfo>;

  private constructor(
    readonly path: string,
    private fd: number,
    readonly headerBytes: number,
    readonly fileBytes: number,
    readonly metadata: Record<string, string> | null,
    list: TensorInfo[],
  ) {
    this.tensors = new Map(list.map((t) => [t.name, t]));
  }

  /** Start of the data section in the file. */
  get dataOffset(): number {
    return 8 + this.headerBytes;
  }

  static open(path: string): SafetensorsFile {
    const problem = fileProblem(path);
    if (problem) throw new CheckpointError(path, problem);
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new CheckpointError(path, `cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8)
        throw new CheckpointError(path, `file is ${size} bytes, too short for a safetensors header`);
      const lenBuf = Buffer.alloc(8);
      readFully(fd, lenBuf, 0, path);
      const headerBytes = headerLength(path, lenBuf, size);
      const head = Buffer.alloc(headerBytes);
      readFully(fd, head, 8, path);
      const parsed = parseHeader(path, head.toString('utf8'), size - 8 - headerBytes);
      return new SafetensorsFile(path, fd, headerBytes, size, parsed.metadata, parsed.tensors);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(this.path, `no tensor named ${name}`);
    return t;
  }

  /** Tensors in file order. */
  list(): TensorInfo[] {
    return [...this.tensors.values()].sort((a, b) => a.begin - b.begin);
  }

  rowBytes(t: TensorInfo): number {
    return t.shape.length === 0 ? t.end - t.begin : (t.end - t.begin) / Math.max(1, t.shape[0] ?? 1);
  }

  /** Raw bytes of rows [rowStart, rowEnd) along the first axis (the whole tensor by default). */
  readBytes(name: string, rowStart = 0, rowEnd?: number, into?: Uint8Array): Uint8Array {
    const t = this.info(name);
    const rows = t.shape[0] ?? 1;
    const end = rowEnd ?? rows;
    if (rowStart < 0 || end > rows || rowStart > end) {
      throw new CheckpointError(
        this.path,
        `row range [${rowStart}, ${end}) out of bounds for ${name} (${rows} rows)`,
      );
    }
    const rb = this.rowBytes(t);
    const n = (end - rowStart) * rb;
    const buf = into && into.byteLength >= n ? into.subarray(0, n) : new Uint8Array(n);
    readFully(this.fd, buf, this.dataOffset + t.begin + rowStart * rb, this.path);
    return buf;
  }

  /** Raw bytes at [begin, begin + length) of one tensor's data, for streaming in arbitrary chunks. */
  readRange(t: TensorInfo, begin: number, length: number, into?: Uint8Array): Uint8Array {
    const buf = into && into.byteLength >= length ? into.subarray(0, length) : new Uint8Array(length);
    readFully(this.fd, buf, this.dataOffset + t.begin + begin, this.path);
    return buf;
  }

  async readRangeAsync(t: TensorInfo, begin: number, length: number, into: Uint8Array): Promise<Uint8Array> {
    const buf = into.subarray(0, length);
    let done = 0;
    while (done < length) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.read(this.fd, buf, done, length - done, this.dataOffset + t.begin + begin + done, (err, bytes) =>
          err ? reject(err) : resolve(bytes),
        ),
      );
      if (n === 0) throw new CheckpointError(this.path, 'unexpected end of file (truncated?)');
      done += n;
    }
    return buf;
  }

  /**
   * A tensor's bytes in order, `chunkBytes` at a time, read asynchronously into one reused buffer: copy a
   * chunk if you keep it past the next iteration.
   */
  async *streamTensor(
    name: string,
    chunkBytes = 64 * 1024 * 1024,
    buffer?: Uint8Array,
  ): AsyncGenerator<Uint8Array> {
    const t = this.info(name);
    const size = t.end - t.begin;
    if (!(chunkBytes > 0)) throw new Error(`chunkBytes must be positive, got ${chunkBytes}`);
    const buf =
      buffer && buffer.byteLength > 0 ? buffer : new Uint8Array(Math.min(chunkBytes, Math.max(1, size)));
    const step = Math.min(chunkBytes, buf.byteLength);
    for (let done = 0; done < size; done += step) {
      yield await this.readRangeAsync(t, done, Math.min(step, size - done), buf);
    }
  }

  /** Rows decoded to float32 (BF16/F16/F32 only). */
  readFloat32(name: string, rowStart = 0, rowEnd?: number): Float32Array {
    const t = this.info(name);
    if (!isFloatDecodable(t.dtype)) {
      throw new CheckpointError(this.path, `tensor ${name} is ${t.dtype}; expected BF16, F16 or F32`);
    }
    return decodeFloat32(t.dtype, this.readBytes(name, rowStart, rowEnd));
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

function readFully(fd: number, buf: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    // Chunks of at most 1 GiB: one read(2) call is capped near 2 GiB on Linux.
    const want = Math.min(buf.byteLength - done, 1 << 30);
    const n = fs.readSync(fd, buf, done, want, position + done);
    if (n === 0) throw new CheckpointError(file, 'unexpected end of file (truncated?)');
    done += n;
  }
}

/** The exact header bytes (8-byte length + JSON padded with spaces to 8 bytes) for tensors in this order. */
export function encodeHeader(
  specs: readonly TensorSpec[],
  metadata: Record<string, string> | null = { format: 'pt' },
): { bytes: Buffer; offsets: [number, number][] } {
  // A null-prototype object: names such as "constructor" or "__proto__" are ordinary keys here.
  const obj: Record<string, unknown> = Object.create(null);
  if (metadata) obj.__metadata__ = metadata;
  const offsets: [number, number][] = [];
  let cursor = 0;
  for (const s of specs) {
    if (s.name === '__metadata__' || Object.prototype.hasOwnProperty.call(obj, s.name)) {
      throw new Error(`duplicate tensor name ${s.name}`);
    }
    const n = tensorBytes(s);
    offsets.push([cursor, cursor + n]);
    obj[s.name] = { dtype: s.dtype, shape: [...s.shape], data_offsets: [cursor, cursor + n] };
    cursor += n;
  }
  let json = JSON.stringify(obj);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const body = Buffer.from(json, 'utf8');
  const bytes = Buffer.alloc(8 + body.length);
  bytes.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(bytes, 8);
  return { bytes, offsets };
}

/**
 * Writes one safetensors file sequentially: the header is fixed up front from the specs, then each
 * tensor's bytes are appended in spec order, in as many chunks as the caller likes.
 */
export class SafetensorsWriter {
  private index = 0;
  private writtenInTensor = 0;
  private position: number;

  private constructor(
    readonly path: string,
    private handle: fsp.FileHandle,
    private readonly specs: readonly TensorSpec[],
    headerLength: number,
  ) {
    this.position = headerLength;
  }

  static async create(
    path: string,
    specs: readonly TensorSpec[],
    metadata: Record<string, string> | null = { format: 'pt' },
  ): Promise<SafetensorsWriter> {
    const { bytes } = encodeHeader(specs, metadata);
    const handle = await fsp.open(path, 'w');
    await handle.write(bytes, 0, bytes.length, 0);
    const w = new SafetensorsWriter(path, handle, specs, bytes.length);
    w.skipEmpty();
    return w;
  }

  /** The tensor the next bytes belong to, or null when all are written. */
  get current(): TensorSpec | null {
    return this.specs[this.index] ?? null;
  }

  async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const spec = this.current;
      if (!spec) throw new Error(`${this.path}: more bytes written than the header declares`);
      const room = tensorBytes(spec) - this.writtenInTensor;
      const n = Math.min(room, chunk.byteLength - offset);
      await writeAll(this.handle, chunk.subarray(offset, offset + n), this.position);
      this.position += n;
      this.writtenInTensor += n;
      offset += n;
      if (this.writtenInTensor === tensorBytes(spec)) {
        this.index++;
        this.writtenInTensor = 0;
        this.skipEmpty();
      }
    }
  }

  private skipEmpty(): void {
    while (this.current && tensorBytes(this.current) === 0) this.index++;
  }

  async close(): Promise<void> {
    if (this.current) {
      await this.handle.close();
      throw new Error(`${this.path}: closed before tensor ${this.current.name} was fully written`);
    }
    await this.handle.sync();
    await this.handle.close();
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

async function writeAll(handle: fsp.FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await handle.write(data, done, data.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Writes a small set of in-memory tensors in one go (tests, reference outputs, logits). */
export async function writeSafetensors(
  path: string,
  tensors: readonly { name: string; dtype: DType; shape: readonly number[]; data: Uint8Array }[],
  metadata: Record<string, string> | null = { format: 'pt' },
): Promise<void> {
  const w = await SafetensorsWriter.create(path, tensors, metadata);
  try {
    for (const t of tensors) await w.write(t.data);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

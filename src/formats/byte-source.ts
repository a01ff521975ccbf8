// Positional reads from anything that holds a file's bytes: a local file, or HTTP range requests
// (src/hub). The safetensors reader and the slicer read through this, so a remote checkpoint is read
// exactly like a local one, only the bytes it needs.
import * as fs from 'node:fs';
import { UserInputError } from './errors';

export interface ByteSource {
  /** A path or URL, for messages. */
  readonly name: string;
  readonly size: number;
  /** Fills `into` with the bytes at [position, position + into.byteLength) and returns it. */
  read(position: number, into: Uint8Array): Promise<Uint8Array>;
  close(): void;
}

/** A local file, read with positional reads. */
export class FileByteSource implements ByteSource {
  private constructor(
    readonly name: string,
    private fd: number,
    readonly size: number,
  ) {}

  static open(path: string): FileByteSource {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new UserInputError(
        `${path}: cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
    return new FileByteSource(path, fd, fs.fstatSync(fd).size);
  }

  async read(position: number, into: Uint8Array): Promise<Uint8Array> {
    let done = 0;
    while (done < into.byteLength) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.read(this.fd, into, done, into.byteLength - done, position + done, (err, bytes) =>
          err ? reject(err) : resolve(bytes),
        ),
      );
      if (n === 0) throw new UserInputError(`${this.name}: unexpected end of file (truncated?)`);
      done += n;
    }
    return into;
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Sorted, non-overlapping byte ranges [begin, end) of one file. */
export type ByteRanges = readonly (readonly [number, number])[];

/**
 * Merges sorted ranges that touch or lie at most `maxGap` bytes apart: one request then fetches both
 * (and the gap). Over HTTP a request costs a round trip, worth far more than a few kilobytes.
 */
export function coalesceRanges(ranges: Iterable<readonly [number, number]>, maxGap = 0): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of ranges) {
    if (b <= a) continue;
    const last = out[out.length - 1];
    if (last && a < last[0]) throw new Error('coalesceRanges: ranges must be sorted by start');
    if (last && a - last[1] <= maxGap) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export function rangesBytes(ranges: ByteRanges): number {
  return ranges.reduce((n, [a, b]) => n + (b - a), 0);
}

interface Window {
  readonly begin: number;
  readonly bytes: Uint8Array;
}

/**
 * Turns many small reads into few large ones. Told which runs of the file will be read (`expect`), a
 * read inside a run fetches ahead to the end of the run (at most `windowBytes`) and later reads are
 * served from that window. Reads of a window's size or more go straight through. A few windows are
 * kept, because several shard writers may read different parts of one source file at once.
 */
export class CoalescingByteSource implements ByteSource {
  private runs: ByteRanges = [];
  private readonly windows: Window[] = [];
  /** Bytes asked of the underlying source, and how many requests. */
  fetchedBytes = 0;
  requests = 0;

  constructor(
    private readonly inner: ByteSource,
    private readonly windowBytes = 16 * 1024 * 1024,
    private readonly maxWindows = 4,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get size(): number {
    return this.inner.size;
  }

  /** The runs that will be read (sorted, coalesced); reads outside them still work, unbatched. */
  expect(runs: ByteRanges): void {
    this.runs = runs;
  }

  private runEnd(position: number): number {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = this.runs[mid]!;
      if (position < a) hi = mid - 1;
      else if (position >= b) lo = mid + 1;
      else return b;
    }
    return position;
  }

  private async fetch(position: number, into: Uint8Array): Promise<Uint8Array> {
    this.fetchedBytes += into.byteLength;
    this.requests++;
    return this.inner.read(position, into);
  }

  async read(position: number, into: Uint8Array): Promise<Uint8Array> {
    const end = position + into.byteLength;
    let done = 0;
    // Whatever a kept window already holds from the start of the read.
    for (let again = true; again && done < into.byteLength;) {
      again = false;
      const p = position + done;
      for (const [k, w] of this.windows.entries()) {
        const wEnd = w.begin + w.bytes.byteLength;
        if (p >= w.begin && p < wEnd) {
          const n = Math.min(end, wEnd) - p;
          into.set(w.bytes.subarray(p - w.begin, p - w.begin + n), done);
          done += n;
          // Readers go forward: a window read to its end is not needed again.
          if (p + n === wEnd) this.windows.splice(k, 1);
          again = true;
          break;
        }
      }
    }
    if (done === into.byteLength) return into;
    const p = position + done;
    const rest = into.subarray(done);
    if (rest.byteLength >= this.windowBytes) {
      await this.fetch(p, rest);
      return into;
    }
    const ahead = Math.min(this.inner.size, Math.max(end, Math.min(this.runEnd(p), p + this.windowBytes)));
    if (ahead === end) {
      await this.fetch(p, rest);
      return into;
    }
    const bytes = await this.fetch(p, new Uint8Array(ahead - p));
    this.windows.push({ begin: p, bytes });
    if (this.windows.length > this.maxWindows) this.windows.shift();
    rest.set(bytes.subarray(0, rest.byteLength));
    return into;
  }

  close(): void {
    this.windows.length = 0;
    this.inner.close();
  }
}

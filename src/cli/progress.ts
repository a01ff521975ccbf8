// A one-line progress bar on stderr for long commands (slice: bytes and MB/s; eval: questions and q/s). On a
// terminal it redraws in place; elsewhere (logs, CI, tests) it prints a plain line now and then.
import { formatBytes } from '../formats';

export interface ProgressOptions {
  readonly stream?: NodeJS.WriteStream;
  readonly label?: string;
  /** Seconds between plain lines when the stream is not a TTY. */
  readonly plainEverySeconds?: number;
  /** What follows the percentage (default: bytes done/total and MB/s). */
  readonly stats?: (done: number, total: number, seconds: number) => string;
}

function byteStats(done: number, total: number, seconds: number): string {
  return `${formatBytes(done)}/${formatBytes(total)} ${(done / seconds / 1e6).toFixed(0)} MB/s`;
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly started = Date.now();
  private last = 0;
  private drawn = false;

  constructor(
    private readonly total: number,
    private readonly opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  private line(done: number): string {
    const secs = Math.max((Date.now() - this.started) / 1000, 1e-3);
    const frac = this.total > 0 ? done / this.total : 1;
    const eta = done > 0 ? Math.max(0, ((this.total - done) * secs) / done) : 0;
    const label = this.opts.label ?? 'slicing';
    const stats = `${(frac * 100).toFixed(0).padStart(3)}% ${(this.opts.stats ?? byteStats)(done, this.total, secs)}`;
    if (!this.tty) return `${label}: ${stats}`;
    const width = 30;
    const fill = Math.round(frac * width);
    return `${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${stats} ETA ${eta.toFixed(0)}s`;
  }

  update(done: number): void {
    const now = Date.now();
    const every = this.tty ? 100 : (this.opts.plainEverySeconds ?? 10) * 1000;
    if (now - this.last < every && done < this.total) return;
    if (!this.tty && done >= this.total) return; // the final line comes from finish()
    this.last = now;
    if (this.tty) {
      this.stream.write(`\r${this.line(done)}\x1b[K`);
      this.drawn = true;
    } else if (now - this.started >= every) {
      this.stream.write(`${this.line(done)}\n`);
    }
  }

  /** Ends the bar: a final line on a TTY, nothing extra elsewhere (the caller prints a summary). */
  finish(): void {
    if (this.tty && this.drawn) this.stream.write(`\r${this.line(this.total)}\x1b[K\n`);
  }

  /** Clears a half-drawn bar before an error message. */
  clear(): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
  }
}

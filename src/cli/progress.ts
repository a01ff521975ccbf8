// Progress bars on stderr for long commands (slice: bytes and MB/s; eval: questions and q/s; sweep: overall
// and per round), drawn by cli-progress. On a terminal they redraw in place; elsewhere (logs, CI, tests) a
// plain line comes now and then.
import { MultiBar, Presets, SingleBar, type Options } from 'cli-progress';
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

function barOptions(opts: ProgressOptions, format: string): Options {
  return {
    stream: opts.stream ?? process.stderr,
    format,
    barsize: 30,
    hideCursor: false,
    // The commands handle Ctrl-C themselves (slice removes its temporary folder, sweep stops after a batch).
    gracefulExit: false,
    clearOnComplete: false,
    // Off a terminal: a plain line every few seconds, never the first instant (short runs stay quiet).
    noTTYOutput: true,
    notTTYSchedule: (opts.plainEverySeconds ?? 10) * 1000,
    etaBuffer: 50,
    fps: 10,
  };
}

export class ProgressBar {
  private readonly bar: SingleBar;
  private readonly started = Date.now();
  /** Off a terminal the bar starts only once the work has run a while: short runs print nothing. */
  private running = false;
  private readonly quietMs: number;

  constructor(
    private readonly total: number,
    private readonly opts: ProgressOptions = {},
  ) {
    const label = opts.label ?? 'slicing';
    this.quietMs = (opts.stream ?? process.stderr).isTTY ? 0 : (opts.plainEverySeconds ?? 10) * 1000;
    this.bar = new SingleBar(
      barOptions(opts, `${label} [{bar}] {percentage}% {stats} ETA {eta_formatted}`),
      Presets.legacy,
    );
    if (this.quietMs === 0) this.start();
  }

  private start(): void {
    this.bar.start(Math.max(this.total, 1), 0, { stats: '' });
    this.running = true;
  }

  update(done: number): void {
    const ms = Date.now() - this.started;
    if (!this.running && ms < this.quietMs) return;
    if (!this.running) this.start();
    this.bar.update(done, {
      stats: (this.opts.stats ?? byteStats)(done, this.total, Math.max(ms / 1000, 1e-3)),
    });
  }

  /** Ends the bar (its last state stays on a terminal). */
  finish(): void {
    if (this.running) this.bar.stop();
    this.running = false;
  }

  /** Ends a half-drawn bar before an error message. */
  clear(): void {
    this.finish();
  }
}

/** Several bars redrawn together: one overall, one for the part in progress (a sweep's round). */
export class ProgressBars {
  private readonly multi: MultiBar;

  constructor(opts: ProgressOptions = {}) {
    this.multi = new MultiBar(
      barOptions(opts, '{label} [{bar}] {percentage}% {value}/{total} {stats} ETA {eta_formatted}'),
      Presets.legacy,
    );
  }

  add(
    label: string,
    total: number,
  ): { update: (done: number, stats?: string) => void; setTotal: (n: number) => void } {
    const bar = this.multi.create(Math.max(total, 1), 0, { label: label.padEnd(8), stats: '' });
    return {
      update: (done, stats = '') => bar.update(done, { stats }),
      setTotal: (n) => bar.setTotal(Math.max(n, 1)),
    };
  }

  stop(): void {
    this.multi.stop();
  }
}

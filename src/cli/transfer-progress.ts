// The transfer bar of `download`, `download-data` and `slice hf://`: bytes, rate and ETA on stderr, drawn
// by cli-progress (redrawn in place on a terminal, a plain line every 10 s elsewhere).
import { Presets, SingleBar } from 'cli-progress';
import { formatBytes } from '../formats';

export class TransferProgress {
  private readonly bar: SingleBar;
  private readonly started = Date.now();
  private running = false;

  constructor(label: string, stream: NodeJS.WriteStream = process.stderr) {
    this.bar = new SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {done}/{size} {rate} ETA {eta_formatted}`,
        stream,
        barsize: 30,
        hideCursor: false,
        clearOnComplete: false,
        noTTYOutput: true,
        notTTYSchedule: 10_000,
        etaBuffer: 200,
        etaAsynchronousUpdate: true,
        fps: 10,
      },
      Presets.legacy,
    );
  }

  private payload(done: number, total: number): Record<string, string> {
    const secs = Math.max((Date.now() - this.started) / 1000, 1e-3);
    return {
      done: formatBytes(done),
      size: formatBytes(total),
      rate: `${formatBytes(Math.round(done / secs))}/s`,
    };
  }

  update(done: number, total: number): void {
    if (!this.running) {
      this.bar.start(total, done, this.payload(done, total));
      this.running = true;
      return;
    }
    this.bar.setTotal(total);
    this.bar.update(done, this.payload(done, total));
  }

  /** Ends the bar (a final line on a terminal). */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.bar.stop();
  }
}

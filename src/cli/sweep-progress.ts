// A sweep's progress: the round's candidate × question pairs (rate, ETA), how many candidates are complete,
// and one bar per candidate in flight (its questions, rate, ETA). A round of a hundred candidates shows the
// first few incomplete ones; when one completes, the next incomplete one takes its line.
import { type BarHandle, type ProgressOptions, ProgressBars } from './progress';

export interface CandidateProgress {
  readonly key: string;
  readonly label: string;
  /** Questions of the round scored for it in this session, and how many it lacked. */
  readonly done: number;
  readonly total: number;
}

export interface RoundProgress {
  readonly round: number;
  readonly done: number;
  readonly total: number;
  readonly subject: string;
  readonly candidates: readonly CandidateProgress[];
}

/** Candidate bars shown at once. */
export const CANDIDATE_BARS = 6;
const LABEL_WIDTH = 24;

export class SweepProgressBars {
  private bars: ProgressBars | null = null;
  private round = -1;
  private overall: BarHandle | null = null;
  private complete: BarHandle | null = null;
  private readonly shown = new Map<string, BarHandle>();
  private started = 0;

  constructor(private readonly opts: ProgressOptions & { readonly candidateBars?: number } = {}) {}

  update(p: RoundProgress): void {
    const now = Date.now();
    if (p.round !== this.round || !this.bars) {
      this.stop();
      this.bars = new ProgressBars(this.opts);
      this.round = p.round;
      this.started = now;
      this.overall = this.bars.add(`round ${p.round}`, p.total, LABEL_WIDTH);
      this.complete = this.bars.add('candidates complete', p.candidates.length, LABEL_WIDTH);
    }
    const bars = this.bars;
    // Shared evaluation moves every candidate of a batch at once: rates are over the round's time so far.
    const rate = (done: number) => (done / Math.max((now - this.started) / 1000, 1e-3)).toFixed(1);
    this.overall!.update(p.done, `pairs, ${rate(p.done)}/s${p.subject ? ` (${p.subject})` : ''}`);
    this.complete!.update(p.candidates.filter((c) => c.done >= c.total).length);
    // Lines of completed candidates go to the next incomplete ones; new lines while there are fewer than max.
    const max = this.opts.candidateBars ?? CANDIDATE_BARS;
    const waiting = p.candidates.filter((c) => c.done < c.total && !this.shown.has(c.key));
    for (const c of p.candidates) {
      const bar = this.shown.get(c.key);
      if (!bar || c.done < c.total) continue;
      const next = waiting.shift();
      if (!next) continue;
      this.shown.delete(c.key);
      bar.restart(next.label, next.total, next.done);
      this.shown.set(next.key, bar);
    }
    for (const c of waiting) {
      if (this.shown.size >= max) break;
      this.shown.set(c.key, bars.add(c.label, c.total, LABEL_WIDTH));
    }
    for (const c of p.candidates) this.shown.get(c.key)?.update(c.done, `questions, ${rate(c.done)}/s`);
  }

  stop(): void {
    this.bars?.stop();
    this.bars = null;
    this.shown.clear();
  }
}

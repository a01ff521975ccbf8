// The sweep's progress bars: overall, candidates complete, and one bar per candidate in flight (at most a few;
// a completed candidate's bar gives way to the next). Rendered off a terminal, as plain lines.
import { Writable } from 'node:stream';
import { SweepProgressBars } from '../../src/cli/sweep-progress';

function capture(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

const cands = (done: readonly number[]) =>
  done.map((d, i) => ({ key: `h${i}`, label: `candidate ${i}`, done: d, total: 4 }));

describe('SweepProgressBars', () => {
  it('a bar per candidate in flight, at most candidateBars; a completed one gives its line to the next', () => {
    const out = capture();
    const bars = new SweepProgressBars({ stream: out.stream, candidateBars: 2 });
    bars.update({ round: 0, done: 2, total: 12, subject: 'anatomy', candidates: cands([1, 1, 0]) });
    bars.update({ round: 0, done: 7, total: 12, subject: 'anatomy', candidates: cands([4, 2, 1]) });
    bars.stop();
    // Off a terminal the final state is printed once: candidate 0 finished, its line went to candidate 2.
    const lines = out.text().split('\n').filter(Boolean);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^round 0 +\[[=-]+\] 58% 7\/12 pairs, [\d.]+\/s \(anatomy\)/);
    expect(lines[1]).toMatch(/^candidates complete +\[[=-]+\] 33% 1\/3 /);
    expect(lines[2]).toMatch(/^candidate 2 +\[[=-]+\] 25% 1\/4 questions, [\d.]+\/s ETA/);
    expect(lines[3]).toMatch(/^candidate 1 +\[[=-]+\] 50% 2\/4 questions/);
    expect(out.text()).not.toMatch(/candidate 0 /);
  });

  it('a new round starts new bars; long labels are cut to the column', () => {
    const out = capture();
    const bars = new SweepProgressBars({ stream: out.stream });
    bars.update({ round: 0, done: 4, total: 4, subject: 'a', candidates: cands([4]) });
    const long = [{ key: 'x', label: 'skip 1-3 ffn 48x2,64x3,32x2 and more', done: 1, total: 3 }];
    bars.update({ round: 1, done: 1, total: 3, subject: 'b', candidates: long });
    bars.stop();
    const lines = out.text().split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('round 0'))).toHaveLength(1);
    expect(lines.at(-3)).toMatch(/^round 1 +\[[=-]+\] 33% 1\/3 pairs/);
    expect(lines.at(-1)).toMatch(/^skip 1-3 ffn 48x2,64x3,… \[/);
  });
});

// download-data mmlu against a local fake of cais/mmlu: only the all/ parquet files of dev, validation
// and test are fetched, the row counts are checked, and the folder loads as `eval --mmlu`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MMLU_ROW_COUNTS, SPLITS, loadMmlu, questionsOf } from '../../src/eval';
import { runCliAsync } from '../helpers/cli';
import { FakeHub } from '../helpers/fake-hub';
import { tmpDir } from '../helpers/tmp';
import { MMLU_DATA, describeWith } from '../eval/helpers/shared';
import { ParquetMmluRow, writeMmluParquet } from '../eval/helpers/parquet-writer';

function rows(split: number, short?: string): ParquetMmluRow[] {
  const out: ParquetMmluRow[] = [];
  for (const [subject, counts] of Object.entries(MMLU_ROW_COUNTS)) {
    const n = counts[split]! - (subject === short ? 1 : 0);
    for (let i = 0; i < n; i++) {
      out.push({ question: `${subject} q${i}?`, subject, choices: ['a', 'b', 'c', 'd'], answer: i % 4 });
    }
  }
  return out;
}

/** The cais/mmlu layout: all/<split>-00000-of-00001.parquet, per-subject folders, auxiliary_train. */
function caisFiles(short?: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  ['dev', 'validation', 'test'].forEach((s, i) =>
    files.set(`all/${s}-00000-of-00001.parquet`, writeMmluParquet(rows(i, short))),
  );
  files.set('all/auxiliary_train-00000-of-00001.parquet', writeMmluParquet(rows(0).slice(0, 3)));
  files.set('abstract_algebra/test-00000-of-00001.parquet', writeMmluParquet(rows(2).slice(0, 100)));
  files.set('README.md', Buffer.from('---\nlicense: mit\n---\n'));
  return files;
}

let hub: FakeHub;
beforeAll(async () => {
  hub = await FakeHub.start([{ type: 'dataset', name: 'cais/mmlu', files: caisFiles() }]);
});
afterAll(() => hub.close());

describe('download-data mmlu', () => {
  test('fetches the three all/ splits, checks the counts, and the folder works as eval --mmlu', async () => {
    const out = path.join(tmpDir(), 'mmlu');
    const r = await runCliAsync(['download-data', 'mmlu', '--out', out], {
      env: { HF_ENDPOINT: hub.url, HF_TOKEN: '' },
    });
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'mmlu: 57 subjects, 285 dev, 1531 val, 14042 test rows, as the evaluator expects',
    );
    expect(fs.readdirSync(out)).toEqual(['all']);
    expect(fs.readdirSync(path.join(out, 'all')).sort()).toEqual([
      'dev-00000-of-00001.parquet',
      'test-00000-of-00001.parquet',
      'validation-00000-of-00001.parquet',
    ]);
    expect(hub.requests.some((q) => q.path.startsWith('/datasets/cais/mmlu/resolve/'))).toBe(true);
    const ds = await loadMmlu(out);
    expect(questionsOf(ds, 'test', 'virology')).toHaveLength(166);
  });

  test('a copy with other row counts is refused in one line, exit 2', async () => {
    const bad = await FakeHub.start([{ type: 'dataset', name: 'cais/mmlu', files: caisFiles('virology') }]);
    try {
      const out = path.join(tmpDir(), 'mmlu');
      const r = await runCliAsync(['download-data', 'mmlu', '--out', out], {
        env: { HF_ENDPOINT: bad.url, HF_TOKEN: '' },
      });
      expect(r.code).toBe(2);
      // The progress line (non-TTY: one at the start), then the one error line.
      expect(r.stderr.split('\n').filter((l) => l.startsWith('error:'))).toEqual([
        `error: ${out}: virology has 4 dev rows, the evaluator expects 5 (not the released MMLU?)`,
      ]);
      expect(r.stderr).toMatch(/\(not the released MMLU\?\)\n$/);
    } finally {
      await bad.close();
    }
  });
});

describeWith([MMLU_DATA], 'expected MMLU row counts', () => {
  test('are those of the released CSVs', async () => {
    const ds = await loadMmlu(MMLU_DATA);
    for (const [subject, counts] of Object.entries(MMLU_ROW_COUNTS)) {
      SPLITS.forEach((s, i) =>
        expect([subject, s, questionsOf(ds, s, subject).length]).toEqual([subject, s, counts[i]]),
      );
    }
  });
});

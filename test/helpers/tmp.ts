// Temporary folders that are removed after the test file finishes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const created: string[] = [];

export function tmpDir(prefix = 'matformer-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

afterAll(() => {
  for (const d of created.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

// The notebook runs top to bottom in a real Jupyter (nbconvert + nbclient) on the tslab kernel; any cell error,
// a TypeScript compile error included, fails the test. Skipped, with the reason printed, where Jupyter's
// nbconvert is not installed.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { repoRoot } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

const NOTEBOOK = path.join(repoRoot, 'notebooks', 'matformer-lab.ipynb');
const NBCONVERT = process.env.JUPYTER_NBCONVERT ?? 'jupyter-nbconvert';

const probe = spawnSync(NBCONVERT, ['--version'], { encoding: 'utf8' });
const reason =
  probe.status === 0
    ? null
    : `skipping the notebook test: ${NBCONVERT} not found (apt-get install jupyter-nbconvert python3-nbclient)`;
if (reason) console.warn(reason);
const maybe = reason ? describe.skip : describe;

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
}
const text = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join('') : (v ?? ''));

maybe('notebooks/matformer-lab.ipynb', () => {
  test('executes every cell without an error and plots the frontier', () => {
    const dir = tmpDir('matformer-notebook-test-');
    // A private kernelspec for tslab from this checkout, so the test needs no `tslab install` and leaves
    // the user's Jupyter alone.
    const kernels = path.join(dir, 'jupyter', 'kernels', 'tslab');
    fs.mkdirSync(kernels, { recursive: true });
    const tslab = path.join(repoRoot, 'node_modules', 'tslab', 'bin', 'tslab');
    fs.writeFileSync(
      path.join(kernels, 'kernel.json'),
      JSON.stringify({
        argv: [process.execPath, tslab, 'kernel', '--config-path', '{connection_file}'],
        display_name: 'TypeScript',
        language: 'typescript',
      }),
    );
    const out = path.join(dir, 'executed.ipynb');
    const r = spawnSync(
      NBCONVERT,
      [
        '--to',
        'notebook',
        '--execute',
        NOTEBOOK,
        '--output',
        out,
        '--ExecutePreprocessor.kernel_name=tslab',
        '--ExecutePreprocessor.timeout=600',
      ],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          JUPYTER_PATH: path.join(dir, 'jupyter'),
          JUPYTER_RUNTIME_DIR: path.join(dir, 'runtime'),
        },
        timeout: 900_000,
      },
    );
    expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr.slice(-3000) }).toEqual({
      status: 0,
      stderr: '',
    });
    const nb = JSON.parse(fs.readFileSync(out, 'utf8')) as {
      cells: { cell_type: string; outputs?: Output[] }[];
    };
    const outputs = nb.cells.filter((c) => c.cell_type === 'code').flatMap((c) => c.outputs ?? []);
    expect(outputs.filter((o) => o.output_type === 'error')).toEqual([]);
    // tslab prints compile errors on stderr; nothing else in the notebook writes there.
    expect(outputs.filter((o) => o.name === 'stderr').map((o) => text(o.text))).toEqual([]);
    const printed = outputs.map((o) => text(o.text)).join('');
    expect(printed).toMatch(/35 layers, hidden 64/);
    expect(printed).toMatch(/elastic view: accuracy [\d.]+% of 9/);
    expect(printed).toMatch(/frontier/);
    const html = outputs.map((o) => text(o.data?.['text/html'])).join('');
    expect(html).toContain('id=&#34;plot-pareto&#34;');
  });
});

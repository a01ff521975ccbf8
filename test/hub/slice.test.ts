// Slicing and inspecting straight from a (local, fake) Hub: shard headers by range requests, only the
// planned byte ranges fetched, and a result bit-identical to slicing the downloaded copy.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '../../src/formats';
import { spawn } from 'node:child_process';
import { cliPath, runCliAsync } from '../helpers/cli';
import { FakeHub, LoggedRequest, filesOf } from '../helpers/fake-hub';
import { tmpDir } from '../helpers/tmp';
import { makeTinyCheckpoint } from './tiny';

let hub: FakeHub;
let src: string;
const REPO = 'test-org/tiny-gemma';
const SPEC = ['--skip', '2', '--ffn', '64x5,128x4', '--max-shard-size', '1MB'];

beforeAll(async () => {
  src = await makeTinyCheckpoint(tmpDir());
  hub = await FakeHub.start([{ type: 'model', name: REPO, files: filesOf(src) }]);
});
afterAll(() => hub.close());

const env = () => ({ HF_ENDPOINT: hub.url, HF_TOKEN: '', MATFORMER_HUB_RETRIES: '2' });

/** Served byte ranges [a, b) of shard files, from the CDN requests in the log. */
function servedRanges(log: readonly LoggedRequest[], shard: string): [number, number][] {
  return log
    .filter((q) => q.path.startsWith('/cdn/') && q.status === 206 && hub.fileOfCdn(q.path) === shard)
    .map((q) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(q.range!)!;
      return [Number(m[1]), Number(m[1]) + q.bytes] as [number, number];
    });
}

/** Absolute byte ranges of the tensors matching `pick`, per shard file. */
function tensorRanges(pick: (name: string) => boolean): Map<string, [number, number][]> {
  const ckpt = Checkpoint.open(src);
  const out = new Map<string, [number, number][]>();
  for (const [name, t] of ckpt.tensors) {
    if (!pick(name)) continue;
    const shard = path.basename(t.file.path);
    out.set(shard, [
      ...(out.get(shard) ?? []),
      [t.file.dataOffset + t.info.begin, t.file.dataOffset + t.info.end],
    ]);
  }
  ckpt.close();
  return out;
}

const overlaps = (a: [number, number], b: [number, number]) => a[0] < b[1] && b[0] < a[1];

describe('slice hf://', () => {
  test('is bit-identical to slicing the local copy and fetches no dropped bytes', async () => {
    const base = tmpDir();
    const local = await runCliAsync([
      'slice',
      src,
      '--out',
      path.join(base, 'local'),
      '--text-only',
      ...SPEC,
    ]);
    expect(local.stderr).toBe('');
    expect(local.code).toBe(0);
    hub.requests.length = 0;
    // A connection dropped part-way through one shard must not change a byte.
    const shards = Object.values(
      JSON.parse(fs.readFileSync(path.join(src, 'model.safetensors.index.json'), 'utf8')).weight_map,
    ) as string[];
    const first = [...new Set(shards)].sort(
      (x, y) => fs.statSync(path.join(src, y)).size - fs.statSync(path.join(src, x)).size,
    )[0]!;
    hub.dropAfter.set(first, 100_000); // past the 64 KiB header read: during the data

    const remote = await runCliAsync(
      ['slice', `hf://${REPO}`, '--out', path.join(base, 'remote'), '--text-only', ...SPEC],
      { env: env() },
    );
    expect(remote.code).toBe(0);
    expect(hub.dropAfter.has(first)).toBe(false);
    expect(remote.stderr).toMatch(/warning: .*connection dropped after/);
    expect(remote.stdout).toMatch(
      /fetched .* from hf:\/\/test-org\/tiny-gemma@[0-9a-f]{40} in \d+ range requests/,
    );
    const a = filesOf(path.join(base, 'local'));
    const b = filesOf(path.join(base, 'remote'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) if (k !== 'README.md') expect(b.get(k)!.equals(v)).toBe(true);
    expect(b.get('README.md')!.toString()).toContain(`hf://${REPO}@${hub.commitOf('model', REPO)}`);

    // Nothing of the towers (--text-only), of the skipped layer 2 or of the cut FFN rows was fetched.
    const log = [...hub.requests];
    const dropped = tensorRanges(
      (n) =>
        /^model\.(vision_tower|audio_tower|embed_vision|embed_audio)\./.test(n) || /\.layers\.2\./.test(n),
    );
    let towers = 0;
    for (const [shard, ranges] of dropped) {
      towers += ranges.length;
      for (const served of servedRanges(log, shard)) {
        // The header read at the start may cover a tiny shard's first bytes; everything after is planned.
        if (served[0] === 0) continue;
        for (const r of ranges) expect(overlaps(served, r)).toBe(false);
      }
    }
    expect(towers).toBeGreaterThan(0);
    const cutRows = new Map<string, [number, number][]>();
    for (const [shard, ranges] of tensorRanges((n) => /\.layers\.[0-4]\.mlp\.(gate|up)_proj\./.test(n))) {
      // Layers 0, 1, 3, 4 keep rows [0, 64) of 128: the second half of each is never fetched.
      cutRows.set(
        shard,
        ranges.filter(([x]) => x > 0).map(([x, y]) => [(x + y) / 2, y] as [number, number]),
      );
    }
    for (const [shard, ranges] of cutRows) {
      for (const served of servedRanges(log, shard)) {
        if (served[0] === 0) continue;
        for (const r of ranges) expect(overlaps(served, r)).toBe(false);
      }
    }
    // Fewer requests than tensors read: adjacent ranges went out as one request.
    const sliced = Object.keys(
      JSON.parse(a.get('model.safetensors.index.json')!.toString()).weight_map,
    ).length;
    expect(log.filter((q) => q.path.startsWith('/cdn/')).length).toBeLessThan(sliced / 2);
  });

  test('Ctrl-C twice during a stalled read leaves neither the staging folder nor the output temporary', async () => {
    const base = tmpDir();
    const childTmp = path.join(base, 'tmp'); // the child's os.tmpdir(): where the staging folder goes
    fs.mkdirSync(childTmp);
    const biggest = [...filesOf(src)]
      .filter(([k]) => k.endsWith('.safetensors'))
      .sort((x, y) => y[1].length - x[1].length)[0]![0];
    hub.stallAfter.set(biggest, 70_000); // the 64 KiB header read completes, the data read stalls
    hub.requests.length = 0;
    let child: ReturnType<typeof spawn> | null = null;
    try {
      const proc = spawn(
        process.execPath,
        [cliPath, 'slice', `hf://${REPO}`, '--out', path.join(base, 'out'), '--text-only', ...SPEC],
        { env: { ...process.env, ...env(), TMPDIR: childTmp }, stdio: 'ignore' },
      );
      child = proc;
      const closed = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
      // Stalled past its header: a data read of the biggest shard has started.
      const stalled = () =>
        hub.requests.some((q) => hub.fileOfCdn(q.path) === biggest && !/^bytes=0-/.test(q.range ?? ''));
      for (let i = 0; i < 1200 && !stalled(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(stalled()).toBe(true);
      expect(fs.readdirSync(childTmp)).toHaveLength(1);
      proc.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 300));
      proc.kill('SIGINT');
      expect(await closed).toBe(130);
    } finally {
      hub.stallAfter.delete(biggest);
      if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(fs.readdirSync(childTmp)).toEqual([]);
    expect(fs.readdirSync(base).sort()).toEqual(['tmp']);
  });

  test('--dry-run reads headers only and reports the bytes a slice reads', async () => {
    const r = await runCliAsync(['slice', `hf://${REPO}`, '--dry-run', '--text-only', ...SPEC], {
      env: env(),
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/reads [\d.]+ [kM]B of the parent's [\d.]+ MB \(\d+\.\d%\) in \d+ byte ranges/);
  });
});

describe('inspect hf://', () => {
  test('reports the same as the local folder from the config and shard headers', async () => {
    hub.requests.length = 0;
    const remote = await runCliAsync(['inspect', `hf://${REPO}@main`, '--json'], { env: env() });
    expect(remote.stderr).toBe('');
    expect(remote.code).toBe(0);
    const local = await runCliAsync(['inspect', src, '--json']);
    const strip = (j: Record<string, unknown>) => ({ ...j, source: null, config_path: null });
    const rj = JSON.parse(remote.stdout);
    expect(strip(rj)).toEqual(strip(JSON.parse(local.stdout)));
    expect(rj.source).toBe(`hf://${REPO}@${hub.commitOf('model', REPO)}`);
    expect(rj.config_path).toBe(`hf://${REPO}@${hub.commitOf('model', REPO)}/config.json`);
    // Headers only: one read of at most 64 KiB per shard, far less than the weights.
    const shardBytes = hub.requests.filter((q) => q.path.startsWith('/cdn/')).map((q) => q.bytes);
    expect(shardBytes.length).toBe(3);
    expect(Math.max(...shardBytes)).toBeLessThanOrEqual(64 * 1024);
    const total = [...filesOf(src)]
      .filter(([k]) => k.endsWith('.safetensors'))
      .reduce((n, [, v]) => n + v.length, 0);
    expect(shardBytes.reduce((x, y) => x + y, 0)).toBeLessThan(total / 2);
  });

  test('a repository without weights or config is named in one line, exit 2', async () => {
    const files = filesOf(src);
    const configOnly = new Map([['config.json', files.get('config.json')!]]);
    const other = await FakeHub.start([
      { type: 'model', name: 'test-org/config-only', files: configOnly },
      { type: 'model', name: 'test-org/empty', files: new Map([['README.md', Buffer.from('hi')]]) },
    ]);
    try {
      const e = { ...env(), HF_ENDPOINT: other.url };
      const a = await runCliAsync(['inspect', 'hf://test-org/config-only'], { env: e });
      expect([a.code, a.stderr]).toEqual([
        2,
        'error: test-org/config-only: not a checkpoint: expected model.safetensors.index.json or model.safetensors at main\n',
      ]);
      const b = await runCliAsync(['slice', 'hf://test-org/empty', '--ffn', '64', '--dry-run'], { env: e });
      expect([b.code, b.stderr]).toEqual([2, 'error: test-org/empty: has no config.json at main\n']);
    } finally {
      await other.close();
    }
  });

  test('a gated repository without a token is refused in one line', async () => {
    const gatedHub = await FakeHub.start([{ type: 'model', name: REPO, files: filesOf(src), gated: true }]);
    try {
      const r = await runCliAsync(['inspect', `hf://${REPO}`], {
        env: { ...env(), HF_ENDPOINT: gatedHub.url },
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /^error: test-org\/tiny-gemma: gated model, and no token was given: accept its license at http:\/\/127\.0\.0\.1:\d+\/test-org\/tiny-gemma, then pass --token or set HF_TOKEN\n$/,
      );
    } finally {
      await gatedHub.close();
    }
  });
});

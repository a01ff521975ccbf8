// download against a local server that speaks the Hub's file API: complete files, resume after a dropped
// connection and after a killed run, checksum failures, gated repositories, one-line errors from the CLI.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  HubAccessError,
  HubTransferError,
  downloadFiles,
  selectFiles,
  snapshotRepo,
  CHECKPOINT_FILES,
} from '../../src/hub';
import type { HubOptions, RepoRef } from '../../src/hub';
import { spawn } from 'node:child_process';
import { cliPath, runCliAsync } from '../helpers/cli';
import { FakeHub, filesOf } from '../helpers/fake-hub';
import { tmpDir } from '../helpers/tmp';
import { makeTinyCheckpoint } from './tiny';

let hub: FakeHub;
let src: string;
const model: RepoRef = { type: 'model', name: 'test-org/tiny-gemma', revision: 'main' };
const gated: RepoRef = { type: 'model', name: 'test-org/gated-gemma', revision: 'main' };
const SHARD = 'model-00001-of-00003.safetensors';

beforeAll(async () => {
  src = await makeTinyCheckpoint(tmpDir());
  const files = filesOf(src);
  files.set('README.md', Buffer.from('# tiny\n'));
  hub = await FakeHub.start([
    { type: 'model', name: model.name, files },
    { type: 'model', name: gated.name, files, gated: true, accepted: ['hf_accepted'] },
  ]);
});
afterAll(() => hub.close());

const opts = (extra: Partial<HubOptions> = {}): HubOptions => ({ hubUrl: hub.url, retryBaseMs: 1, ...extra });

async function download(ref: RepoRef, out: string, extra: Partial<HubOptions> = {}) {
  const snap = await snapshotRepo(ref, opts(extra));
  return downloadFiles(snap, selectFiles(snap, CHECKPOINT_FILES), { ...opts(extra), outDir: out });
}

function expectSameFiles(out: string): void {
  const want = filesOf(src);
  const got = filesOf(out);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [k, v] of want) expect(got.get(k)!.equals(v)).toBe(true);
}

describe('download', () => {
  test('fetches the checkpoint files of one commit, checksummed, and skips them when complete', async () => {
    const out = tmpDir();
    hub.requests.length = 0;
    const r = await download(model, out);
    expect(r.commit).toBe(hub.commitOf('model', model.name));
    expectSameFiles(out); // README.md is not a checkpoint file
    expect(r.files.every((f) => f.outcome === 'downloaded')).toBe(true);
    // The listing was paged (Link: rel=next) and files came from the resolved commit, not "main".
    expect(hub.requests.filter((q) => q.path.includes('/tree/')).length).toBeGreaterThan(2);
    expect(hub.requests.some((q) => q.path.includes(`/resolve/${r.commit}/config.json`))).toBe(true);
    const again = await download(model, out);
    expect(again.files.every((f) => f.outcome === 'present')).toBe(true);
    expect(again.receivedBytes).toBe(0);
  });

  test('a connection dropped half-way is retried from the byte where it stopped', async () => {
    const out = tmpDir();
    const size = fs.statSync(path.join(src, SHARD)).size;
    hub.dropAfter.set(SHARD, Math.floor(size / 2));
    hub.requests.length = 0;
    const retries: string[] = [];
    await download(model, out, { onRetry: (m) => retries.push(m) });
    expectSameFiles(out);
    expect(retries.some((m) => m.includes(SHARD) && m.includes('connection'))).toBe(true);
    const ranges = hub.requests.filter((q) => q.path.startsWith('/cdn/') && q.range).map((q) => q.range);
    expect(ranges).toContain(`bytes=${Math.floor(size / 2)}-${size - 1}`);
  });

  test('a killed run leaves a partial file that the next run resumes', async () => {
    const out = tmpDir();
    const size = fs.statSync(path.join(src, SHARD)).size;
    const cut = Math.floor(size / 3);
    hub.dropAfter.set(SHARD, cut);
    // One attempt only: the first run gives up like a killed one, after writing `cut` bytes.
    await expect(download(model, out, { attempts: 1 })).rejects.toThrow(HubTransferError);
    expect(fs.existsSync(path.join(out, SHARD))).toBe(false);
    expect(fs.statSync(path.join(out, `.${SHARD}.part`)).size).toBe(cut);
    hub.requests.length = 0;
    const r = await download(model, out);
    expect(r.files.find((f) => f.path === SHARD)!.outcome).toBe('resumed');
    expect(hub.fileRequests(SHARD).some((q) => q.range === `bytes=${cut}-${size - 1}`)).toBe(true);
    expectSameFiles(out);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('bytes that do not match the sha256 are refused and removed', async () => {
    const out = tmpDir();
    hub.corrupt.add(SHARD);
    try {
      await expect(download(model, out)).rejects.toThrow(/sha256 mismatch.*partial file was removed/);
    } finally {
      hub.corrupt.delete(SHARD);
    }
    expect(fs.existsSync(path.join(out, SHARD))).toBe(false);
    expect(fs.readdirSync(out).filter((f) => f.includes(SHARD))).toEqual([]);
  });

  test('a corrupted small (git) file fails its git blob id check', async () => {
    const out = tmpDir();
    hub.corrupt.add('config.json');
    try {
      await expect(download(model, out)).rejects.toThrow(/config\.json: git blob id mismatch/);
    } finally {
      hub.corrupt.delete('config.json');
    }
    expect(fs.existsSync(path.join(out, 'config.json'))).toBe(false);
  });

  test('gated: no token, a token without the license, and one with it', async () => {
    const page = `${hub.url}/${gated.name}`;
    await expect(download(gated, tmpDir())).rejects.toThrow(
      new HubAccessError(
        `${gated.name}: gated model, and no token was given: accept its license at ${page}, then pass --token or set HF_TOKEN`,
      ),
    );
    await expect(download(gated, tmpDir(), { token: 'hf_other' })).rejects.toThrow(
      new HubAccessError(
        `${gated.name}: gated model, and the account of this token has not accepted its license: accept it at ${page}`,
      ),
    );
    const out = tmpDir();
    await download(gated, out, { token: 'hf_accepted' });
    expectSameFiles(out);
  });

  test('an existing file that differs is kept unless --force', async () => {
    const out = tmpDir();
    fs.writeFileSync(path.join(out, 'config.json'), '{}');
    await expect(download(model, out)).rejects.toThrow(/config\.json: exists and differs.*--force/);
    expect(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).toBe('{}');
    const snap = await snapshotRepo(model, opts());
    await downloadFiles(snap, selectFiles(snap, ['config.json']), { ...opts(), outDir: out, force: true });
    expect(
      fs.readFileSync(path.join(out, 'config.json')).equals(fs.readFileSync(path.join(src, 'config.json'))),
    ).toBe(true);
  });

  test('unknown repositories, revisions and globs are named in one line', async () => {
    await expect(snapshotRepo({ ...model, name: 'test-org/nope' }, opts())).rejects.toThrow(
      `test-org/nope: no such model on ${hub.url} (if it is private, pass --token or set HF_TOKEN)`,
    );
    await expect(snapshotRepo({ ...model, revision: 'v9' }, opts())).rejects.toThrow(
      `--revision: v9 not found in ${model.name}`,
    );
    const snap = await snapshotRepo(model, opts());
    expect(() => selectFiles(snap, ['*.bin'])).toThrow(
      `--include: *.bin matches no file of ${model.name} at main`,
    );
  });
});

describe('download (CLI)', () => {
  const env = () => ({ HF_ENDPOINT: hub.url, HF_TOKEN: '', MATFORMER_HUB_RETRIES: '1' });

  test('downloads with --include, prints a summary, exit 0', async () => {
    const out = path.join(tmpDir(), 'dl');
    const r = await runCliAsync(
      ['download', model.name, '--out', out, '--include', 'config.json', '*.index.json'],
      { env: env() },
    );
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^downloaded test-org\/tiny-gemma@[0-9a-f]{12} in .*: 2 files/);
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors.index.json']);
  });

  test('a killed download resumes where it stopped when run again; a second one meanwhile refuses', async () => {
    const out = path.join(tmpDir(), 'k');
    const size = fs.statSync(path.join(src, SHARD)).size;
    const cut = Math.floor(size / 2);
    hub.stallAfter.set(SHARD, cut);
    const child = spawn(process.execPath, [cliPath, 'download', model.name, '--out', out], {
      env: { ...process.env, ...env() },
      stdio: 'ignore',
    });
    const part = path.join(out, `.${SHARD}.part`);
    for (let i = 0; i < 600 && !(fs.existsSync(part) && fs.statSync(part).size === cut); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // While it runs, a second download into the same folder refuses instead of sharing its partial files.
    const second = await runCliAsync(['download', model.name, '--out', out], { env: env() });
    expect([second.code, second.stderr]).toEqual([
      2,
      expect.stringMatching(
        new RegExp(`^error: --out: ${out} is being written by another run \\(process ${child.pid}\\)`),
      ),
    ]);
    child.kill('SIGTERM');
    await new Promise((r) => child.on('close', r));
    hub.stallAfter.delete(SHARD);
    expect(fs.existsSync(path.join(path.dirname(out), '.k.lock'))).toBe(false);
    expect(fs.statSync(part).size).toBe(cut);
    expect(fs.existsSync(path.join(out, SHARD))).toBe(false);
    hub.requests.length = 0;
    const r = await runCliAsync(['download', model.name, '--out', out], { env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\(\d+ downloaded, [1-9]\d* resumed, \d+ already complete\)/);
    expect(hub.fileRequests(SHARD).map((q) => q.range)).toContain(`bytes=${cut}-${size - 1}`);
    expectSameFiles(out);
  });

  test('a repository name that is not one: exit 2', async () => {
    const r = await runCliAsync(['download', '../etc', '--out', tmpDir()], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: repo: "../etc" is not a Hub repository name like google/gemma-3n-E4B\n');
  });

  test('gated without a token: one line saying so and where to accept, exit 2', async () => {
    const r = await runCliAsync(['download', gated.name, '--out', path.join(tmpDir(), 'g')], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `error: ${gated.name}: gated model, and no token was given: accept its license at ${hub.url}/${gated.name}, then pass --token or set HF_TOKEN\n`,
    );
  });

  test('an unreachable Hub: one line without a stack after the retries, exit 1', async () => {
    const closed = await FakeHub.start([]);
    const url = closed.url;
    await closed.close(); // nothing listens there now
    const r = await runCliAsync(['download', model.name, '--out', path.join(tmpDir(), 'n')], {
      env: { ...env(), HF_ENDPOINT: url },
    });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(
      /^error: test-org\/tiny-gemma: GET .*ECONNREFUSED.*gave up after 2 attempts/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

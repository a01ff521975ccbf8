// The promises of the README's "Commands" section, one class of fault at a time, through the built CLI on
// inputs made here: nothing mixed, nothing overwritten, nothing half-left, one line (no stack) per mistake.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRandomCheckpoint } from '../../src/gemma3n';
import { SafetensorsFile } from '../../src/formats';
import { writeEditedCheckpoint } from '../helpers/checkpoints';
import { type CliResult, cliPath, repoRoot, runCli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

jest.setTimeout(300_000);

const tinyConfig = path.join(repoRoot, 'configs/tiny/config.json');
const mmlu = path.join(repoRoot, 'examples/mini-mmlu');
const evalArgs = ['--mmlu', mmlu, '--shots', '0', '--backend', 'cpu', '--subjects', 'world_religions'];

/** Exit 2 (or `code`), exactly one stderr line matching `re`, no stack trace. */
function expectOneLine(r: CliResult, re: RegExp, code = 2): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect({ code: r.code, lines }).toEqual({ code, lines: [expect.stringMatching(re)] });
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A run that printed progress first: its last stderr line is the one error, and no stack trace. */
function expectLastLine(r: CliResult, re: RegExp, code = 2): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect({ code: r.code, last: lines[lines.length - 1] }).toEqual({ code, last: expect.stringMatching(re) });
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

const started: ChildProcess[] = [];
// A failed assertion must not leave a paused child behind.
afterAll(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function startCli(args: string[]): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [cliPath, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })),
  );
  return { child, done };
}

async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const predictionLines = (journal: string) =>
  fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').split('\n').filter(Boolean).length - 1 : 0;

let dir: string;
let ckpt: string;
beforeAll(async () => {
  dir = tmpDir();
  ckpt = path.join(dir, 'demo');
  await createRandomCheckpoint({ config: tinyConfig, out: ckpt, seed: 3 });
});

describe('no command writes over its own inputs', () => {
  it('logits, eval, slice and create-random refuse an output in (or containing) an input', () => {
    const weights = path.join(ckpt, 'model.safetensors');
    const before = sha(weights);
    expectOneLine(
      runCli(['logits', ckpt, '--ids', '2,3', '--out', weights, '--force', '--backend', 'cpu']),
      /^error: --out: .*model\.safetensors is inside the input checkpoint .*; choose another path$/,
    );
    expect(sha(weights)).toBe(before);
    expectOneLine(
      runCli(['eval', ckpt, ...evalArgs, '--out', path.join(ckpt, 'r.json')]),
      /^error: --out: .* is inside the input checkpoint/,
    );
    expectOneLine(
      runCli([
        'eval',
        ckpt,
        ...evalArgs,
        '--out',
        path.join(dir, 'r.json'),
        '--predictions',
        path.join(mmlu, 'p.jsonl'),
      ]),
      /^error: --predictions: .* is inside the input --mmlu/,
    );
    const same = path.join(dir, 'same.json');
    expectOneLine(
      runCli(['eval', ckpt, ...evalArgs, '--out', same, '--predictions', `${dir}/./same.json`]),
      /^error: --predictions: .* names the same file as --out$/,
    );
    expectOneLine(
      runCli(['slice', ckpt, '--out', path.join(ckpt, 'sub'), '--ffn', '64']),
      /^error: --out: .* is inside the input source checkpoint/,
    );
    expectOneLine(
      runCli(['create-random', '--config', path.join(ckpt, 'config.json'), '--out', ckpt, '--force']),
      /^error: --out: .* contains the input --config/,
    );
    expect(sha(weights)).toBe(before);
    expect(fs.readdirSync(ckpt).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
    ]);
  });
});

describe('--force is the only way anything is replaced; one writer per output', () => {
  it('an existing output is refused without --force and replaced with it', () => {
    const out = path.join(dir, 'logits.safetensors');
    fs.writeFileSync(out, 'mine');
    const args = ['logits', ckpt, '--ids', '2,3', '--out', out, '--backend', 'cpu'];
    expectOneLine(runCli(args), /^error: --out: .* already exists; pass --force to replace it$/);
    expect(fs.readFileSync(out, 'utf8')).toBe('mine');
    const r = runCli([...args, '--force']);
    expect(r.code).toBe(0);
    expect(SafetensorsFile.open(out).tensors.get('logits')!.shape).toEqual([2, 262400]);
  });

  it('a second run on the same output refuses (lock); what appears at the target meanwhile is kept', async () => {
    const out = path.join(dir, 'race.json');
    const journal = path.join(dir, '.race.json.partial.jsonl');
    const first = startCli(['eval', ckpt, ...evalArgs, '--batch-size', '1', '--out', out]);
    await until(() => predictionLines(journal) >= 1, 'the first run to start scoring');
    // Paused mid-run (alive, holding its lock), so the steps below happen during it on any machine.
    first.child.kill('SIGSTOP');
    // The user's file appears while the first run scores; a second run (even with --force) is refused.
    fs.writeFileSync(out, 'the user wrote this');
    expectOneLine(
      runCli(['eval', ckpt, ...evalArgs, '--out', out, '--force']),
      new RegExp(`^error: --out: .* is being written by another run \\(process ${first.child.pid}\\)`),
    );
    first.child.kill('SIGCONT');
    const r = await first.done;
    expectLastLine(
      r,
      /^error: --out: .*race\.json appeared while this run was writing; it was left untouched and this run's output is at .*race\.json\.incoming-\d+ \(pass --force to replace\)$/,
    );
    expect(fs.readFileSync(out, 'utf8')).toBe('the user wrote this');
    const kept = fs.readdirSync(dir).find((n) => n.startsWith('race.json.incoming-'))!;
    expect(JSON.parse(fs.readFileSync(path.join(dir, kept), 'utf8')).overall.n).toBe(6);
    // The journal stays (nothing scored is lost); the lock and temporaries are gone.
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.race.json'))).toEqual([
      '.race.json.partial.jsonl',
    ]);
  });

  it('a lock of a process that is gone is removed, and said so', () => {
    const out = path.join(dir, 'stale-lock.safetensors');
    const pid = deadPid();
    fs.writeFileSync(path.join(dir, '.stale-lock.safetensors.lock'), `${pid}\n`);
    const r = runCli(['logits', ckpt, '--ids', '2', '--out', out, '--backend', 'cpu']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`^removed the stale lock .* of process ${pid} \\(no longer running\\)$`, 'm'),
    );
    expect(fs.existsSync(path.join(dir, '.stale-lock.safetensors.lock'))).toBe(false);
  });
});

describe('interrupted runs leave nothing large behind', () => {
  it('temporaries of dead processes are removed by the next writer beside them; live ones are kept', () => {
    const where = tmpDir();
    const dead = deadPid();
    const stale = path.join(where, `.old-slice.tmp-${dead}-0badcafe`);
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, 'model.safetensors'), Buffer.alloc(1 << 20));
    const live = path.join(where, `.other.tmp-${process.pid}-0badcafe`);
    fs.writeFileSync(live, 'in use');
    const r = runCli(['slice', ckpt, '--out', path.join(where, 'sub'), '--ffn', '64']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`removed ${stale}, left by process ${dead} (no longer running)\n`);
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.readFileSync(live, 'utf8')).toBe('in use');
  });

  it('create-random cleans up on Ctrl-C like slice', async () => {
    const where = tmpDir();
    const cfg = JSON.parse(fs.readFileSync(tinyConfig, 'utf8'));
    cfg.text_config.hidden_size = 2048; // ~1 GB of embeddings: seconds of writing
    fs.writeFileSync(path.join(where, 'config.json'), JSON.stringify(cfg));
    const out = path.join(where, 'big');
    const run = startCli(['create-random', '--config', path.join(where, 'config.json'), '--out', out]);
    await until(() => fs.readdirSync(where).some((n) => n.startsWith('.big.tmp-')), 'the temporary folder');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect([r.code, r.stderr]).toEqual([130, 'interrupted: create-random interrupted; no output written\n']);
    expect(fs.readdirSync(where)).toEqual(['config.json']);
  });
});

describe('file-system and resource errors are one line', () => {
  let mounts: string[] = [];
  afterAll(() => {
    for (const m of mounts.reverse()) spawnSync('umount', [m]);
    mounts = [];
  });
  /** Mounts and returns a folder, or null (with the reason printed) where mounting is not permitted. */
  function mount(args: string[], label: string): string | null {
    const at = tmpDir(`mnt-${label}-`);
    const r = spawnSync('mount', [...args, at], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.warn(
        `skipping the ${label} case: mount not permitted here (${(r.stderr || String(r.error)).trim()})`,
      );
      return null;
    }
    mounts.push(at);
    return at;
  }

  it('a read-only target', () => {
    const ro = mount(['-o', 'bind,ro', tmpDir()], 'read-only') ?? '/sys'; // sysfs refuses new files even to root
    expectOneLine(
      runCli(['create-random', '--config', tinyConfig, '--out', path.join(ro, 'ck')]),
      /^error: --out: cannot write in .*: (read-only file system \(EROFS\)|permission denied \(EACCES\))$/,
    );
  });

  it('a full disk, up front and in the middle of a run', async () => {
    const small = mount(['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs'], 'disk-full');
    if (!small) return;
    expectOneLine(
      runCli(['create-random', '--config', tinyConfig, '--out', path.join(small, 'ck')]),
      /^error: --out: .* has [\d.]+ MB free; the output needs about 17\.8\d MB$/,
    );
    expect(fs.readdirSync(small)).toEqual([]);
    // The check passes, then the disk fills up while eval journals its answers.
    const out = path.join(small, 'r.json');
    const run = startCli(['eval', ckpt, ...evalArgs, '--batch-size', '1', '--out', out]);
    await until(() => predictionLines(path.join(small, '.r.json.partial.jsonl')) >= 1, 'the first answers');
    run.child.kill('SIGSTOP');
    spawnSync('dd', ['if=/dev/zero', `of=${path.join(small, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
    run.child.kill('SIGCONT');
    expectLastLine(await run.done, /^error: .*: no space left on the device \(ENOSPC\)$/);
  });

  it('a folder, a FIFO or a device where a file is expected (no hang), a mount point as --out', () => {
    const d = tmpDir();
    const fifo = path.join(d, 'pipe.jsonl');
    spawnSync('mkfifo', [fifo]);
    const t = { timeoutMs: 60_000 };
    expectOneLine(
      runCli(['compare', fifo, fifo], t),
      /^error: .*pipe\.jsonl: is a FIFO \(named pipe\), expected a regular file$/,
    );
    expectOneLine(runCli(['compare', d, fifo], t), /^error: .*: is a folder, expected a regular file$/);
    const spec = path.join(d, 'spec.json');
    spawnSync('mkfifo', [spec]);
    expectOneLine(
      runCli(['slice', ckpt, '--spec', spec, '--dry-run'], t),
      /^error: --spec .*spec\.json: is a FIFO/,
    );
    const withPipe = path.join(d, 'pipe-tokenizer');
    fs.cpSync(ckpt, withPipe, { recursive: true });
    spawnSync('mkfifo', [path.join(withPipe, 'tokenizer.json')]);
    expectOneLine(
      runCli(['eval', withPipe, ...evalArgs, '--out', path.join(d, 'r.json')], t),
      /^error: .*tokenizer\.json: is a FIFO \(named pipe\), expected a regular file$/,
    );
    const fake = path.join(d, 'fake-ckpt');
    fs.mkdirSync(fake);
    spawnSync('mkfifo', [path.join(fake, 'config.json')]);
    expectOneLine(
      runCli(['inspect', fake], t),
      /^error: .*config\.json: is a FIFO \(named pipe\), expected a regular file$/,
    );
    expectOneLine(
      runCli(['logits', ckpt, '--ids', '2', '--out', fifo, '--force', '--backend', 'cpu'], t),
      /^error: --out: .*pipe\.jsonl is a FIFO \(named pipe\); expected a file path$/,
    );
    expectOneLine(
      runCli(['logits', ckpt, '--ids', '2', '--out', '/dev/null', '--force', '--backend', 'cpu'], t),
      /^error: --out: \/dev\/null is a device; expected a file path$/,
    );
    expectOneLine(
      runCli(['eval', ckpt, ...evalArgs, '--out', d, '--force'], t),
      /^error: --out: .* is a folder; expected a file path$/,
    );
    expectOneLine(
      runCli(['create-random', '--config', tinyConfig, '--out', '/proc', '--force'], t),
      /^error: --out: \/proc is a mount point; name a new folder inside it instead$/,
    );
  });

  it('absurd --buffer-size and --max-shard-size values are bounded both ways', () => {
    const out = path.join(dir, 'never');
    for (const [flag, v] of [
      ['--buffer-size', '1'],
      ['--buffer-size', '100GB'],
      ['--max-shard-size', '10'],
      ['--max-shard-size', '5000TB'],
    ]) {
      expectOneLine(
        runCli(['slice', ckpt, '--out', out, '--ffn', '64', flag!, v!]),
        new RegExp(`^error: ${flag}: ${v} is outside \\S+\\.\\.\\S+$`),
      );
    }
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('inputs are checked before the model loads', () => {
  it('--shots, --seed, --batch-size and choice flags', () => {
    const out = ['--out', path.join(dir, 'x.json')];
    const cases: [string[], RegExp][] = [
      [['--shots', '9'], /^error: --shots: expected an integer from 0 to 5, got 9$/],
      [['--shots', '1.5'], /^error: --shots: expected an integer from 0 to 5, got 1\.5$/],
      [['--seed', '-1'], /^error: --seed must be a non-negative integer, got -1$/],
      [['--seed', 'abc'], /^error: --seed must be a non-negative integer, got NaN$/],
      [['--batch-size', '1e9'], /^error: --batch-size: expected an integer from 1 to 4096, got 1000000000$/],
      [['--split', 'train'], /^error: --split: "train" is not one of "test", "val", "dev"$/],
      [['--backend', 'tpu'], /^error: --backend: "tpu" is not one of "auto", .*"cpu"/],
    ];
    for (const [args, re] of cases) {
      const r = runCli(['eval', ckpt, '--mmlu', mmlu, ...out, ...args]);
      expectOneLine(r, re);
    }
  });

  it('a prompt longer than max_position_embeddings is refused up front (no huge allocation)', () => {
    const data = path.join(tmpDir(), 'long.jsonl');
    const row = (split: string, q: string) =>
      JSON.stringify({ subject: 'virology', split, question: q, choices: ['a', 'b', 'c', 'd'], answer: 0 });
    fs.writeFileSync(
      data,
      [row('dev', 'short?'), row('test', 'fine?'), row('test', 'x '.repeat(500_000))].join('\n'),
    );
    const r = runCli([
      'eval',
      ckpt,
      '--mmlu',
      data,
      '--shots',
      '0',
      '--backend',
      'cpu',
      '--out',
      path.join(dir, 'long.json'),
    ]);
    expectOneLine(
      r,
      /^error: .*long\.jsonl: virology test question #1 has a \d+-token 0-shot prompt; the model takes at most 32768 \(max_position_embeddings\)$/,
    );
    const ids = Array(40_000).fill(2).join(',');
    expectOneLine(
      runCli(['logits', ckpt, '--ids', ids, '--out', path.join(dir, 'l.safetensors'), '--backend', 'cpu']),
      /^error: --ids: 40000 tokens exceed the model's max_position_embeddings \(32768\)$/,
    );
    expectOneLine(
      runCli(['generate', ckpt, '--ids', '2,262150', '--backend', 'cpu']),
      /^error: --ids: token id 262150 is outside the text vocabulary \[0, 262144\)$/,
    );
  });

  it('slice refuses a broken source checkpoint as inspect does', async () => {
    const broken = path.join(tmpDir(), 'broken');
    await writeEditedCheckpoint(tinyConfig, broken, (ts) =>
      ts.filter((t) => !t.name.endsWith('layers.3.mlp.gate_proj.weight')),
    );
    const out = path.join(dir, 'from-broken');
    expectOneLine(
      runCli(['slice', broken, '--out', out, '--ffn', '64']),
      /^error: .*broken: checkpoint does not match its config: 1 missing and 0 wrong-shape text tensors \(first: model\.language_model\.layers\.3\.mlp\.gate_proj\.weight\); run inspect for the full list$/,
    );
    const empty = path.join(tmpDir(), 'empty-index');
    fs.mkdirSync(empty);
    fs.copyFileSync(tinyConfig, path.join(empty, 'config.json'));
    fs.writeFileSync(path.join(empty, 'model.safetensors.index.json'), JSON.stringify({ weight_map: {} }));
    expectOneLine(
      runCli(['slice', empty, '--out', out, '--ffn', '64']),
      /^error: .*empty-index: checkpoint does not match its config: \d+ missing/,
    );
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('eval --resume never mixes runs; compare refuses duplicates', () => {
  const journalOf = (out: string) => path.join(path.dirname(out), `.${path.basename(out)}.partial.jsonl`);

  it('a killed run resumes only with the same checkpoint content, submodel, subset and shots', async () => {
    const full = path.join(dir, 'full.json');
    expect(runCli(['eval', ckpt, ...evalArgs, '--out', full, '--predictions', `${full}l`]).code).toBe(0);
    const out = path.join(dir, 'killed.json');
    const journal = journalOf(out);
    const run = startCli(['eval', ckpt, ...evalArgs, '--batch-size', '1', '--out', out]);
    await until(() => predictionLines(journal) >= 2, 'two scored questions');
    run.child.kill('SIGKILL');
    await run.done;
    const scored = predictionLines(journal);
    const journalText = fs.readFileSync(journal, 'utf8');

    const other = path.join(dir, 'other-seed');
    await createRandomCheckpoint({ config: tinyConfig, out: other, seed: 4 });
    const resume = (ck: string, extra: string[] = []) =>
      runCli(['eval', ck, ...evalArgs, '--out', out, '--resume', ...extra]);
    // The killed run's lock is stale: the first run after it says it removed it.
    const first = resume(ckpt, ['--ffn', '64']);
    expect(first.stderr).toMatch(
      /^removed the stale lock .*killed\.json\.lock of process \d+ \(no longer running\)$/m,
    );
    expectLastLine(
      first,
      /^error: --resume: .* was written by a different run \(spec \{"skip":\[\],"ffn":\[128,.*\]\} vs now \{"skip":\[\],"ffn":\[64,.*\]\}\); pass --force to start over$/,
    );
    expectOneLine(
      resume(other),
      /^error: --resume: .* was written by a different run \(checkpoint [0-9a-f]{12} vs now [0-9a-f]{12}\); pass --force/,
    );
    expectOneLine(
      runCli([
        'eval',
        ckpt,
        ...evalArgs.slice(0, 2),
        ...evalArgs.slice(4),
        '--shots',
        '1',
        '--out',
        out,
        '--resume',
      ]),
      /^error: --resume: .* different run \(subset \S+ vs now \S+; shots 0 vs now 1\)/,
    );
    expectOneLine(
      runCli(['eval', ckpt, ...evalArgs, '--out', out]),
      /^error: .*killed\.json\.partial\.jsonl: an interrupted run left this journal; pass --resume to continue it or --force to start over$/,
    );
    expect(fs.readFileSync(journal, 'utf8')).toBe(journalText);

    // A duplicated or contradictory line is refused, not counted twice.
    const lines = journalText.split('\n').filter(Boolean);
    fs.writeFileSync(journal, [...lines, lines[1]].join('\n') + '\n');
    expectOneLine(
      resume(ckpt),
      /^error: .*:\d+: question \(world_religions, \d+\) again \(duplicated line; first at .*:2\)$/,
    );
    const changed = { ...JSON.parse(lines[1]!), pred: 'D', logprobs: [-9, -9, -9, -0.1] };
    fs.writeFileSync(journal, [...lines, JSON.stringify(changed)].join('\n') + '\n');
    expectOneLine(
      resume(ckpt),
      /^error: .*: question \(world_religions, \d+\) again \(contradictory line; first at .*:2\)$/,
    );

    // The same bytes at another path are the same checkpoint: resumed, and the results equal a full run.
    fs.writeFileSync(journal, journalText);
    const copy = path.join(dir, 'copy');
    fs.cpSync(ckpt, copy, { recursive: true });
    const r = resume(copy, ['--predictions', `${out}l`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^resuming: ${scored} questions already scored`, 'm'));
    const got = JSON.parse(fs.readFileSync(out, 'utf8'));
    const want = JSON.parse(fs.readFileSync(full, 'utf8'));
    expect(got.timing.resumed_questions).toBe(scored);
    expect([got.overall, got.subjects]).toEqual([want.overall, want.subjects]);
    expect(fs.readFileSync(`${out}l`, 'utf8')).toBe(fs.readFileSync(`${full}l`, 'utf8'));
    expect(fs.existsSync(journal)).toBe(false);

    const dup = path.join(dir, 'dup.jsonl');
    const pl = fs.readFileSync(`${full}l`, 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(dup, [...pl, pl[0]].join('\n') + '\n');
    expectOneLine(
      runCli(['compare', `${full}l`, dup]),
      /^error: .*dup\.jsonl:7: question \(world_religions, 0\) again \(duplicated line; first at .*dup\.jsonl:1\)$/,
    );
  });
});

describe('generation stays in the text vocabulary', () => {
  it('greedy decoding never picks a vision/audio id, even where it has the largest logit', () => {
    const ck = path.join(tmpDir(), 'loud-vision');
    fs.cpSync(ckpt, ck, { recursive: true });
    // Rows 262144+ of the tied embedding become 64× copies of text rows: their logits dominate.
    const file = path.join(ck, 'model.safetensors');
    const st = SafetensorsFile.open(file);
    const info = st.tensors.get('model.language_model.embed_tokens.weight')!;
    const base = st.dataOffset + info.begin;
    st.close();
    const [V, H] = info.shape as [number, number];
    const buf = fs.readFileSync(file);
    for (let v = 262144; v < V; v++) {
      for (let j = 0; j < H; j++) {
        const bits = buf.readUInt16LE(base + ((v - 262144) * H + j) * 2);
        const exp = (bits >> 7) & 0xff;
        buf.writeUInt16LE(exp === 0 || exp > 240 ? bits : bits + (6 << 7), base + (v * H + j) * 2);
      }
    }
    fs.writeFileSync(file, buf);
    const logits = path.join(dir, 'loud.safetensors');
    expect(runCli(['logits', ck, '--ids', '2,818', '--out', logits, '--backend', 'cpu']).code).toBe(0);
    const l = SafetensorsFile.open(logits);
    const last = new Float32Array(Uint8Array.from(l.readBytes('logits', 1, 2)).buffer);
    l.close();
    const argmax = last.reduce((b, x, i) => (x > last[b]! ? i : b), 0);
    expect(argmax).toBeGreaterThanOrEqual(262144); // the setup: unmasked, greedy would emit a vision id
    const r = runCli([
      'generate',
      ck,
      '--ids',
      '2,818',
      '-n',
      '3',
      '--no-stop-at-eos',
      '--json',
      '--backend',
      'cpu',
    ]);
    expect(r.code).toBe(0);
    const ids = JSON.parse(r.stdout).ids as number[];
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(id).toBeLessThan(262144);
  });
});

// `export-best --format gguf` end to end through the CLI: a sweep on a llama.cpp-shaped 35-layer model with
// Gemma's tokenizer cut to 1,024 entries (create-random --tokenizer gemma), then the frontier exported as
// GGUF. A candidate llama.cpp cannot run is skipped with its reason (none runnable: one line, exit 2,
// nothing written); what is written is byte for byte what `export` writes for the same spec, its card
// carries the sweep's measured results; an existing output is replaced only with --force.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readGgufHeader } from '../../src/formats';
import { type CliResult, repoRoot, runCli as run } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';
import { tinyConfig } from './tiny';

const MMLU = path.join(repoRoot, 'examples/mini-mmlu');
const runCli = (args: string[]): CliResult => run(args, { timeoutMs: 600_000 });

interface Candidate {
  id: string;
  origin: string;
  spec: { skip: number[]; ffn: number[] };
  pareto: boolean;
  result: { categories: Record<string, { acc: number; n: number }> };
}

describe('export-best --format gguf', () => {
  let dir: string;
  let model: string;
  let db: string;
  const sweep = (name: string, candidates: unknown[]) => {
    const f = path.join(dir, `${name}.json`);
    const body = { model, data: { mmlu: MMLU, limit_per_subject: 1 }, shots: 0, backend: 'wasm' };
    fs.writeFileSync(f, JSON.stringify({ ...body, metric: 'agreement', candidates }));
    const r = runCli(['sweep', f, '--db', db]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
  };
  const candidates = (run: number): Candidate[] =>
    (
      JSON.parse(runCli(['results', db, '--run', String(run), '--json']).stdout) as {
        candidates: Candidate[];
      }
    ).candidates;

  beforeAll(() => {
    dir = tmpDir('matformer-best-gguf-');
    const cfg = tinyConfig() as { text_config: Record<string, unknown> };
    cfg.text_config.vocab_size = 1024;
    cfg.text_config.vocab_size_per_layer_input = 1024;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    model = path.join(dir, 'm35');
    const made = runCli([
      'create-random',
      '--config',
      path.join(dir, 'config.json'),
      '--tokenizer',
      'gemma',
      '--out',
      model,
      '--seed',
      '5',
    ]);
    expect(made.code).toBe(0);
    expect(
      JSON.parse(fs.readFileSync(path.join(model, 'tokenizer.json'), 'utf8')).model.vocab,
    ).toHaveProperty('▁A');
    db = path.join(dir, 'sweeps.sqlite');
    // Run 1: only a layer-level Mix-n-Match candidate (two FFN widths): llama.cpp cannot run it.
    sweep('mixed', [{ ffn: '96x20,64x15' }]);
    // Run 2: an E2B-like candidate (skip 20-24, one width), which llama.cpp runs.
    sweep('e2b', [{ skip: '20-24', ffn: 64 }]);
  }, 900_000);

  it('refuses a run whose frontier llama.cpp cannot run: one line, exit 2, nothing written', () => {
    const out = path.join(dir, 'none');
    const r = runCli(['export-best', db, '--run', '1', '--top', '1', '--format', 'gguf', '--out', out]);
    expect(r.code).toBe(2);
    const mixed = candidates(1).find((c) => c.origin !== 'parent')!;
    expect(r.stderr).toContain(`skipped ${mixed.id}`);
    expect(r.stderr).toMatch(
      /^error: --format gguf: none of run 1's 1 frontier candidate\(s\) can be exported for llama\.cpp \(best: llama\.cpp cannot run this model: .*FFN width/m,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('--dtype and --pad-ffn only with --format gguf', () => {
    const r = runCli(['export-best', db, '--top', '1', '--dtype', 'f32', '--out', path.join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --dtype: only with --format gguf$/m);
  });

  it('writes the runnable frontier as GGUF, the bytes `export` writes, the sweep results in its card', () => {
    const best = path.join(dir, 'best');
    const c = candidates(2).find((x) => x.origin !== 'parent')!;
    expect(c.pareto).toBe(true);
    // results --json (and so the report) carries accuracy per MMLU category: 1 question of each subject.
    expect(Object.keys(c.result.categories).sort()).toEqual(['humanities', 'stem']);
    expect(c.result.categories.stem!.n).toBe(2);
    let r = runCli(['export-best', db, '--top', '3', '--format', 'gguf', '--dtype', 'f32', '--out', best]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: --top 3: only 1 frontier candidate\(s\) of run 2 run in llama\.cpp/);
    const file = path.join(best, `01-${c.id}.gguf`);
    expect(fs.readdirSync(best).sort()).toEqual([`01-${c.id}.gguf`, `01-${c.id}.md`]);
    expect(r.stdout).toContain(`${file}:`);
    const head = Buffer.alloc(1 << 20);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    const h = readGgufHeader(head);
    expect(h.kv.get('gemma3n.block_count')).toBe(30);
    expect(h.kv.get('tokenizer.ggml.tokens')).toHaveLength(1024);
    const card = fs.readFileSync(path.join(best, `01-${c.id}.md`), 'utf8');
    expect(card).toMatch(/## Measured \(matformer-lab sweep\)[\s\S]*agreement \| [\d.]+% \(95% CI/);
    expect(card).toMatch(/\| llama\.cpp \| yes \|/);

    // The card's reproduce command is plain `export`; it writes the same bytes.
    const command = /```sh\n(matformer-lab export .*)\n```/.exec(card)![1]!;
    expect(command).toContain('--skip 20-24 --ffn 64x30 --dtype f32');
    const ref = path.join(dir, 'ref.gguf');
    const e = runCli(['export', model, '--skip', '20-24', '--ffn', '64x30', '--dtype', 'f32', '--out', ref]);
    expect(e.code).toBe(0);
    expect(fs.readFileSync(ref).equals(fs.readFileSync(file))).toBe(true);

    // An existing output is refused without --force (nothing touched), replaced with it.
    const before = fs.statSync(file).mtimeMs;
    r = runCli(['export-best', db, '--top', '1', '--format', 'gguf', '--dtype', 'f32', '--out', best]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already exists; pass --force/);
    expect(fs.statSync(file).mtimeMs).toBe(before);
    r = runCli(['export-best', db, '--top', '1', '--format', 'gguf', '--out', best, '--force']);
    expect(r.code).toBe(0);
    expect(fs.statSync(file).size).toBeLessThan(fs.statSync(ref).size); // bf16 now
    expect(fs.readdirSync(best).filter((f) => f.startsWith('.'))).toEqual([]);
  }, 600_000);
});

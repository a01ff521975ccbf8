// End to end: export a tiny Gemma 3n with llama.cpp's fixed dimensions (parent and an E2B-like
// submodel cut straight from it), load both in llama.cpp through node-llama-cpp, and require our
// engine run with llama.cpp's semantics (N-1 standard deviation in the Gaussian top-k) to agree.
//
// Tolerance: llama.cpp's CPU GELU goes through an f16 lookup table and AltUp amplifies such rounding on
// a random model, so even with N-1 emulated the centred last-position logits differ by a few 1e-2
// (measured 3e-2 to 2.4e-1 relative RMS here). We require: top-1 agreement over all positions >= 90%,
// relative RMS < 0.3, and N-1 semantics always closer to llama.cpp than transformers' N semantics.
import * as fs from 'fs';
import * as path from 'path';
import { encodeSentencePieceModel, exportModel, type FidelityReport } from '../../src/export';
import { readGgufHeader } from '../../src/formats';
import { runCli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';
import { TINY_VOCAB, makeTinyCheckpoint, tinyPieces } from './tiny';

const PROMPTS = ['The capital of France is', 'Monday, Tuesday, Wednesday,'];

function expectAgreement(f: FidelityReport): void {
  const ours = f.rows.filter((r) => r.semantics === 'llama.cpp');
  const theirs = f.rows.filter((r) => r.semantics === 'transformers');
  expect(ours).toHaveLength(PROMPTS.length);
  const positions = ours.reduce((a, r) => a + r.tokens, 0);
  const agreeing = ours.reduce((a, r) => a + r.top1_agreement * r.tokens, 0);
  expect(agreeing / positions).toBeGreaterThanOrEqual(0.9);
  ours.forEach((r, i) => {
    expect(r.last_logits_rel_rms).toBeLessThan(0.3);
    expect(r.last_logits_rel_rms).toBeLessThan(theirs[i]!.last_logits_rel_rms);
    expect(r.greedy_llama_cpp).toHaveLength(4);
  });
}

function header(file: string) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(Math.min(fs.fstatSync(fd).size, 1 << 20));
  fs.readSync(fd, buf, 0, buf.length, 0);
  fs.closeSync(fd);
  return readGgufHeader(buf);
}

describe('GGUF export run by llama.cpp', () => {
  let src: string;
  let out: string;
  beforeAll(async () => {
    const dir = tmpDir('matformer-gguf-');
    src = path.join(dir, 'tiny');
    out = path.join(dir, 'out');
    fs.mkdirSync(out);
    await makeTinyCheckpoint(src, TINY_VOCAB);
  });

  it('exports the parent; llama.cpp agrees with our engine in N-1 mode', async () => {
    const file = path.join(out, 'parent.gguf');
    const r = await exportModel({
      src,
      out: file,
      format: 'gguf',
      dtype: 'f32',
      flags: {},
      verify: { prompts: PROMPTS, greedyTokens: 4 },
      backend: 'wasm',
      threads: 1,
    });
    const h = header(file);
    expect(h.kv.get('gemma3n.block_count')).toBe(35);
    expect(h.tensors).toHaveLength(7 + 35 * 24);
    expectAgreement(r.fidelity!);
    const card = fs.readFileSync(path.join(out, 'parent.md'), 'utf8');
    expect(card).toMatch(
      /## Fidelity[\s\S]*\| "The capital of France is" \| \d+ \| llama\.cpp semantics \| \d\.\d\de-\d \|/,
    );
    expect(card).toMatch(/\| llama\.cpp \| yes \|/);
  });

  it('exports an E2B-like submodel (skip 20-24, half width) from the CLI; llama.cpp agrees', async () => {
    const file = path.join(out, 'e2b.gguf');
    const r = runCli(['export', src, '--skip', '20-24', '--ffn', '64', '--dtype', 'f32', '--out', file]);
    expect(r.stderr).not.toMatch(/error|warning/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote .*e2b\.gguf/);
    const h = header(file);
    expect(h.kv.get('gemma3n.block_count')).toBe(30);
    expect(h.kv.get('gemma3n.attention.shared_kv_layers')).toBe(10);
    expect(h.kv.get('matformer_lab.spec')).toBe(
      JSON.stringify({ skip: [20, 21, 22, 23, 24], ffn: new Array(30).fill(64) }),
    );
    // Refuses to replace without --force; --verify on the existing file's parent measures it.
    const again = runCli(['export', src, '--skip', '20-24', '--ffn', '64', '--out', file]);
    expect([again.code, again.stderr]).toEqual([
      2,
      `error: --out: ${file} already exists; pass --force to replace it\n`,
    ]);
    const v = await exportModel({
      src,
      out: file,
      format: 'gguf',
      dtype: 'f32',
      flags: { skip: '20-24', ffn: '64' },
      force: true,
      verify: { prompts: PROMPTS, greedyTokens: 4 },
      backend: 'wasm',
      threads: 1,
    });
    expectAgreement(v.fidelity!);
  });

  it.each([
    [
      ['--skip', '21'],
      /llama\.cpp cannot run this model: skips 21: the kept layers must keep llama\.cpp's fixed 4 sliding : 1 full pattern/,
    ],
    [
      ['--skip', '12'],
      /llama\.cpp cannot run this model: skips layer 12; llama\.cpp hard-codes 20 KV-producing layers/,
    ],
    [
      ['--ffn', '128x20,64x15'],
      /llama\.cpp cannot run this model: FFN widths 128, 64; .*one uniform width needed/,
    ],
    [
      ['--ffn', '128,64,128x33', '--pad-ffn'],
      /--pad-ffn: layer 1 \(parent layer 1\) is narrower than 128 and has activation sparsity 0\.95/,
    ],
  ])('refuses %j with one line, exit 2, nothing written', (args, re) => {
    const file = path.join(out, 'refused.gguf');
    const r = runCli(['export', src, ...args, '--out', file]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(re);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.') || f.startsWith('refused'))).toEqual([]);
  });

  it('refuses an output inside the source checkpoint (the output guard), writing nothing there', () => {
    const before = fs.readdirSync(src).sort();
    const r = runCli(['export', src, '--out', path.join(src, 'model.gguf'), '--force']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: --out: .*inside/);
    expect(fs.readdirSync(src).sort()).toEqual(before);
  });

  it('--pad-ffn makes late narrow layers loadable (exact: no sparsity there)', () => {
    const file = path.join(out, 'padded.gguf');
    const r = runCli(['export', src, '--ffn', '128x20,64x15', '--pad-ffn', '--out', file]);
    expect(r.code).toBe(0);
    const h = header(file);
    expect(h.kv.get('gemma3n.feed_forward_length')).toEqual(new Array(35).fill(128));
    expect(h.tensors.find((t) => t.name === 'blk.30.ffn_down.weight')!.dims).toEqual([128, 64]);
    expect(fs.readFileSync(path.join(out, 'padded.md'), 'utf8')).toMatch(
      /zero-padded to 128 \(--pad-ffn: exact, saves no memory\)/,
    );
  });

  it('refuses a vocabulary with duplicate token strings (llama.cpp would abort)', () => {
    const dup = path.join(path.dirname(src), 'dup');
    fs.cpSync(src, dup, { recursive: true });
    const pieces = tinyPieces();
    pieces[500] = { ...pieces[400]! };
    fs.writeFileSync(path.join(dup, 'tokenizer.model'), encodeSentencePieceModel(pieces));
    const file = path.join(out, 'dup.gguf');
    const r = runCli(['export', dup, '--out', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /tokenizer\.model: token ".*" appears twice \(ids 400 and 500\); llama\.cpp aborts on duplicate token strings/,
    );
    expect(fs.existsSync(file)).toBe(false);
  });

  it('--check prints the matrix (JSON too); --format hf writes the slicer output with its card', () => {
    const text = runCli(['export', src, '--skip', '20-24', '--ffn', '64x10,128x20', '--check']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/llama\.cpp +no +FFN widths 64, 128/);
    expect(text.stdout).toMatch(/mlx-lm +yes/);
    const json = JSON.parse(runCli(['export', src, '--skip', '20-24', '--check', '--json']).stdout);
    expect(json.targets['llama.cpp']).toEqual({ runs: true, reasons: [] });
    const inspect = JSON.parse(
      runCli(['inspect', path.join(src, 'config.json'), '--skip', '12', '--json']).stdout,
    );
    expect(inspect.compatibility['llama.cpp'].reasons[0]).toMatch(/skips layer 12/);
    expect(inspect.compatibility['transformers-5'].runs).toBe(true);
    const hf = path.join(out, 'hf');
    const r = runCli(['export', src, '--format', 'hf', '--skip', '20-24', '--ffn', '64', '--out', hf]);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(hf)).toEqual(
      expect.arrayContaining(['config.json', 'README.md', 'tokenizer.model']),
    );
    expect(
      JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')).text_config.num_hidden_layers,
    ).toBe(30);
  });
});

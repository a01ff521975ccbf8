// Gemma's tokenizer cut to a small vocabulary (create-random --tokenizer gemma): dense ids below the size,
// Gemma's special ids kept, any text still encodes and decodes exactly, the answer letters single tokens.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { choiceTokenIds, cutGemmaTokenizer, loadTokenizer } from '../../src/eval';
import { tmpDir } from '../helpers/tmp';

describe("Gemma's tokenizer cut to a small vocabulary", () => {
  it('keeps specials and bytes, ids dense below the size; text round-trips; A-D are single tokens', async () => {
    const files = cutGemmaTokenizer(4096);
    const json = JSON.parse(files['tokenizer.json']) as {
      model: { vocab: Record<string, number>; merges: [string, string][] };
      added_tokens: { id: number; content: string }[];
    };
    const ids = Object.values(json.model.vocab).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 4096 }, (_, i) => i));
    expect(new Set(Object.keys(json.model.vocab)).size).toBe(4096);
    expect(json.model.vocab['<pad>']).toBe(0);
    expect(json.model.vocab['<eos>']).toBe(1);
    expect(json.model.vocab['<bos>']).toBe(2);
    expect(json.model.vocab['<0x00>']).toBeDefined();
    expect(json.model.vocab['<0xFF>']).toBeDefined();
    for (const [a, b] of json.model.merges) expect(json.model.vocab[a + b]).toBeDefined();
    expect(json.added_tokens.every((t) => json.model.vocab[t.content] === t.id)).toBe(true);

    const dir = tmpDir('matformer-cut-');
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const tok = await loadTokenizer(dir);
    expect(tok.source).toBe(path.join(dir, 'tokenizer.json'));
    const text = 'What does the S in HTTPS stand for? Ünïcödé and 数学 fall back to bytes.\nAnswer:';
    const enc = tok.encode(text, true);
    expect(enc[0]).toBe(2);
    expect(Math.max(...enc)).toBeLessThan(4096);
    expect(tok.decode(enc)).toBe(`<bos>${text}`);
    // English takes merged pieces, not characters or bytes.
    const english = 'The following are multiple choice questions (with answers) about world religions.';
    expect(tok.encode(english, false).length).toBeLessThan(english.length / 3);
    expect(choiceTokenIds(tok)).toHaveLength(4);
  }, 120_000);

  it('refuses a vocabulary too small to cut, naming where the size came from', () => {
    expect(() => cutGemmaTokenizer(512, 'cfg.json')).toThrow(/^cfg\.json: .*at least 1024, got 512$/);
  });
});

// The vocabulary a GGUF carries (`tokenizer.ggml.*`), built as llama.cpp's converter builds it for
// Gemma 3n: SentencePiece pieces, scores and types from `tokenizer.model`, placeholders up to
// `vocab_size`, then the added tokens of `added_tokens.json` / `tokenizer_config.json`; else the
// vocabulary of a `tokenizer.json`. Special token ids, add-bos/eos flags and the chat template follow
// gguf-py's SpecialVocab for the files Gemma checkpoints carry.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserInputError } from '../formats';

export class VocabError extends UserInputError {
  override name = 'VocabError';
}

/** llama.cpp's token types (the same numbering as SentencePiece's piece types). */
export enum TokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  /** SentencePiece's type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
  readonly type: number;
}

/** A small protobuf wire-format reader: only what SentencePiece's ModelProto needs. */
class ProtoReader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly file: string,
    private readonly end = buf.length,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  private fail(): never {
    throw new VocabError(`${this.file}: not a SentencePiece model (malformed protobuf at byte ${this.pos})`);
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail();
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    this.fail();
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) this.fail();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  float(): number {
    if (this.pos + 4 > this.end) this.fail();
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail();
    if (this.pos > this.end) this.fail();
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The pieces of a SentencePiece `ModelProto` (field 1: repeated {piece = 1, score = 2, type = 3}). */
export function parseSentencePieceModel(bytes: Uint8Array, file: string): SentencePiece[] {
  const r = new ProtoReader(bytes, file);
  const pieces: SentencePiece[] = [];
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field !== 1 || wire !== 2) {
      r.skip(wire);
      continue;
    }
    const body = r.bytes();
    const p = new ProtoReader(body, file);
    let piece = '';
    let score = 0;
    let type = TokenType.NORMAL;
    while (!p.done) {
      const t = p.varint();
      const f = Math.floor(t / 8);
      const w = t & 7;
      if (f === 1 && w === 2) {
        try {
          piece = utf8.decode(p.bytes());
        } catch {
          throw new VocabError(`${file}: piece ${pieces.length} is not valid UTF-8`);
        }
      } else if (f === 2 && w === 5) score = p.float();
      else if (f === 3 && w === 0) type = p.varint();
      else p.skip(w);
    }
    pieces.push({ piece, score, type });
  }
  if (pieces.length === 0) throw new VocabError(`${file}: not a SentencePiece model (no pieces)`);
  return pieces;
}

/** Encodes pieces as a SentencePiece ModelProto (BPE, byte fallback): tests and tiny models. */
export function encodeSentencePieceModel(pieces: readonly SentencePiece[]): Uint8Array {
  const out: number[] = [];
  const varint = (v: number) => {
    while (v >= 0x80) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
  };
  const field = (f: number, body: number[] | Uint8Array) => {
    varint(f * 8 + 2);
    varint(body.length);
    for (const b of body) out.push(b);
  };
  for (const p of pieces) {
    const inner: number[] = [];
    const text = Buffer.from(p.piece, 'utf8');
    inner.push(0x0a);
    let n = text.length;
    while (n >= 0x80) {
      inner.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    inner.push(n, ...text);
    const f = Buffer.alloc(4);
    f.writeFloatLE(p.score);
    inner.push(0x15, ...f);
    inner.push(0x18, p.type);
    field(1, inner);
  }
  // trainer_spec { model_type: BPE (2), byte_fallback: true (field 35) }
  field(2, [0x18, 2, 0x98, 0x02, 1]);
  // normalizer_spec { name: "identity", add_dummy_prefix: false }
  field(3, [0x0a, 8, ...Buffer.from('identity'), 0x18, 0]);
  return new Uint8Array(out);
}

export interface GgufVocab {
  /** Where the vocabulary came from. */
  readonly source: string;
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
  /** Special token ids by kind (bos, eos, unk, sep, pad, cls, mask), in the order they were found. */
  readonly special: ReadonlyMap<string, number>;
  /** add_bos / add_eos ... flags by kind. */
  readonly addSpecial: ReadonlyMap<string, boolean>;
  readonly chatTemplate: string | null;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json | null {
  if (!fs.existsSync(file)) return null;
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw new VocabError(`${file}: is not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new VocabError(`${file}: expected a JSON object`);
  return v as Json;
}

const SPECIAL_KINDS = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'] as const;

/** gguf-py's `does_token_look_special` (the Gemma-relevant cases). */
function looksSpecial(t: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) ||
    (t.startsWith('<|') && t.endsWith('|>')) ||
    (t.startsWith('<｜') && t.endsWith('｜>')) ||
    (t.startsWith('<unused') && t.endsWith('>'))
  );
}

function fromSentencePiece(file: string, vocabSize: number, dir: string | null) {
  const pieces = parseSentencePieceModel(fs.readFileSync(file), file);
  const tokens = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const scores = new Array<number>(vocabSize).fill(-10000);
  const types = new Array<number>(vocabSize).fill(TokenType.UNUSED);
  pieces.slice(0, vocabSize).forEach((p, id) => {
    tokens[id] = p.piece;
    scores[id] = p.score;
    // The converter asks IsUnknown/IsControl/IsUnused/IsByte; anything else (user-defined too) is normal.
    types[id] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.UNUSED, TokenType.BYTE].includes(p.type)
      ? p.type
      : TokenType.NORMAL;
  });
  if (dir) {
    const added = readJson(path.join(dir, 'added_tokens.json'));
    for (const [key, id] of Object.entries(added ?? {})) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) continue;
      tokens[id] = key;
      scores[id] = -1000;
      types[id] = TokenType.USER_DEFINED;
    }
    const tc = readJson(path.join(dir, 'tokenizer_config.json'));
    const decoder = tc?.added_tokens_decoder;
    if (typeof decoder === 'object' && decoder !== null) {
      for (const [idText, data] of Object.entries(decoder as Json)) {
        const id = Number(idText);
        const d = data as Json;
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize || typeof d?.content !== 'string') continue;
        let token = d.content;
        if (d.special === true || looksSpecial(token)) types[id] = TokenType.CONTROL;
        else {
          token = token.replace(/\u2581/g, ' ');
          types[id] = TokenType.USER_DEFINED;
        }
        scores[id] = -1000;
        tokens[id] = token;
      }
    }
  }
  return { tokens, scores, types };
}

/** A tokenizer.json vocabulary (model.vocab plus added_tokens), scored by id as SentencePiece BPE does. */
function fromTokenizerJson(file: string, vocabSize: number) {
  const j = readJson(file)!;
  const model = j.model as Json | undefined;
  const vocab = model?.vocab;
  if (typeof vocab !== 'object' || vocab === null)
    throw new VocabError(`${file}: expected "model": {"vocab": ...}`);
  const tokens = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const scores = new Array<number>(vocabSize).fill(-10000);
  const types = new Array<number>(vocabSize).fill(TokenType.UNUSED);
  const entries: [string, unknown][] = Array.isArray(vocab)
    ? (vocab as unknown[]).map((e, i) => [String((e as unknown[])[0]), i])
    : Object.entries(vocab as Json);
  for (const [piece, id] of entries) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) continue;
    tokens[id] = piece;
    scores[id] = -id;
    types[id] = /^<0x[0-9A-F]{2}>$/.test(piece) ? TokenType.BYTE : TokenType.NORMAL;
  }
  const unk = model?.unk_token;
  for (const a of (j.added_tokens as Json[] | undefined) ?? []) {
    const id = a.id;
    if (typeof id !== 'number' || id < 0 || id >= vocabSize || typeof a.content !== 'string') continue;
    tokens[id] = a.content;
    scores[id] = a.content === unk ? 0 : -1000;
    types[id] =
      a.content === unk
        ? TokenType.UNKNOWN
        : a.special === true || looksSpecial(a.content)
          ? TokenType.CONTROL
          : TokenType.USER_DEFINED;
  }
  return { tokens, scores, types };
}

export interface VocabOptions {
  /** `vocab_size` of the model: the vocabulary is padded (or cut) to it. */
  readonly vocabSize: number;
  /** An explicit tokenizer.model or tokenizer.json (`--tokenizer`). */
  readonly tokenizerFile?: string;
}

/** Reads the vocabulary for a checkpoint folder; refuses duplicate token strings (llama.cpp aborts on them). */
export function loadGgufVocab(dir: string, opts: VocabOptions): GgufVocab {
  const spm = path.join(dir, 'tokenizer.model');
  const hfJson = path.join(dir, 'tokenizer.json');
  let source: string;
  let built: { tokens: string[]; scores: number[]; types: number[] };
  const explicit = opts.tokenizerFile;
  if (explicit !== undefined) {
    if (!fs.existsSync(explicit)) throw new VocabError(`--tokenizer: ${explicit} does not exist`);
    source = explicit;
    built = explicit.endsWith('.json')
      ? fromTokenizerJson(explicit, opts.vocabSize)
      : fromSentencePiece(explicit, opts.vocabSize, null);
  } else if (fs.existsSync(spm)) {
    source = spm;
    built = fromSentencePiece(spm, opts.vocabSize, dir);
  } else if (fs.existsSync(hfJson)) {
    source = hfJson;
    built = fromTokenizerJson(hfJson, opts.vocabSize);
  } else {
    throw new VocabError(
      `${dir}: no tokenizer.model or tokenizer.json; pass --tokenizer <tokenizer.model|tokenizer.json>`,
    );
  }
  const seen = new Map<string, number>();
  built.tokens.forEach((t, id) => {
    const first = seen.get(t);
    if (first !== undefined) {
      throw new VocabError(
        `${source}: token ${JSON.stringify(t)} appears twice (ids ${first} and ${id}); llama.cpp aborts on duplicate token strings`,
      );
    }
    seen.set(t, id);
  });
  const { special, addSpecial, chatTemplate } = specialTokens(dir, built.tokens.length);
  return { source, ...built, special, addSpecial, chatTemplate };
}

/** gguf-py SpecialVocab: tokenizer.json / tokenizer_config.json first, then config.json ids. */
function specialTokens(dir: string, nVocab: number) {
  const special = new Map<string, number>();
  const addSpecial = new Map<string, boolean>();
  const set = (kind: string, id: unknown) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= nVocab || special.has(kind))
      return;
    special.set(kind, id);
  };
  const tj = readJson(path.join(dir, 'tokenizer.json'));
  const tc = readJson(path.join(dir, 'tokenizer_config.json'));
  let chatTemplate: string | null = null;
  if (tj) {
    const pp = tj.post_processor as Json | undefined;
    const bos = tc?.bos_token;
    for (const proc of ((pp?.processors as Json[] | undefined) ?? (pp ? [pp] : [])) as Json[]) {
      if (proc.type !== 'TemplateProcessing') continue;
      const single = (proc.single as Json[] | undefined) ?? [];
      const first = (single[0]?.SpecialToken as Json | undefined)?.id;
      if (single.length > 1 && typeof first === 'string') addSpecial.set('bos', first === bos);
    }
  }
  if (tc) {
    const jinja = path.join(dir, 'chat_template.jinja');
    const alt = fs.existsSync(jinja)
      ? fs.readFileSync(jinja, 'utf8')
      : ((readJson(path.join(dir, 'chat_template.json'))?.chat_template as string | undefined) ?? null);
    const t = tc.chat_template ?? alt;
    chatTemplate = typeof t === 'string' ? t : null;
    const added = (tj?.added_tokens as Json[] | undefined) ?? [];
    for (const kind of SPECIAL_KINDS) {
      const flag = tc[`add_${kind}_token`];
      if (typeof flag === 'boolean') addSpecial.set(kind, flag);
      const entry = tc[`${kind}_token`];
      const content =
        typeof entry === 'string'
          ? entry
          : typeof (entry as Json)?.content === 'string'
            ? (entry as Json).content
            : null;
      if (content === null) continue;
      set(kind, added.find((a) => a.content === content)?.id);
    }
  }
  const cfg = readJson(path.join(dir, 'config.json'));
  if (cfg) {
    for (const kind of SPECIAL_KINDS) {
      let id = cfg[`${kind}_token_id`];
      if (
        (id === undefined || id === null) &&
        typeof cfg.text_config === 'object' &&
        cfg.text_config !== null
      )
        id = (cfg.text_config as Json)[`${kind}_token_id`];
      set(kind, id);
    }
  }
  return { special, addSpecial, chatTemplate };
}

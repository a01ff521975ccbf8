// Writes the sliced config.json by editing the parent's text, not by re-serialising it: JavaScript
// numbers lose the float/int distinction (`30.0` would come back as `30`), and newer transformers
// validate config fields strictly by Python type. Only the updated keys change; every other byte stays.

interface Span {
  readonly start: number;
  readonly end: number;
}

interface ObjectSpans {
  /** Span of the object itself, braces included. */
  readonly span: Span;
  /** Value span of each direct key. */
  readonly keys: Map<string, Span>;
}

class Scanner {
  pos = 0;
  found: ObjectSpans | null = null;

  constructor(
    readonly text: string,
    readonly target: readonly string[],
  ) {}

  fail(what: string): never {
    throw new Error(`config.json: ${what} at offset ${this.pos}`);
  }

  ws(): void {
    while (/\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  string(): string {
    const start = this.pos;
    if (this.text[this.pos] !== '"') this.fail('expected a string');
    this.pos++;
    while (this.pos < this.text.length && this.text[this.pos] !== '"') {
      this.pos += this.text[this.pos] === '\\' ? 2 : 1;
    }
    if (this.pos >= this.text.length) this.fail('unterminated string');
    this.pos++;
    return JSON.parse(this.text.slice(start, this.pos)) as string;
  }

  value(path: string[]): void {
    this.ws();
    const ch = this.text[this.pos];
    if (ch === '{') this.object(path);
    else if (ch === '[') {
      this.pos++;
      this.ws();
      if (this.text[this.pos] === ']') {
        this.pos++;
        return;
      }
      while (true) {
        this.value([...path, '[]']);
        this.ws();
        const c = this.text[this.pos++];
        if (c === ']') return;
        if (c !== ',') this.fail('expected , or ] in a list');
      }
    } else if (ch === '"') this.string();
    else {
      const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null|NaN|-?Infinity)/.exec(
        this.text.slice(this.pos),
      );
      if (!m) this.fail('unexpected character');
      this.pos += m[0].length;
    }
  }

  object(path: string[]): void {
    const start = this.pos;
    const keys = new Map<string, Span>();
    this.pos++;
    this.ws();
    if (this.text[this.pos] === '}') this.pos++;
    else {
      while (true) {
        this.ws();
        const key = this.string();
        this.ws();
        if (this.text[this.pos++] !== ':') this.fail('expected :');
        this.ws();
        const vs = this.pos;
        this.value([...path, key]);
        keys.set(key, { start: vs, end: this.pos });
        this.ws();
        const c = this.text[this.pos++];
        if (c === '}') break;
        if (c !== ',') this.fail('expected , or } in an object');
      }
    }
    if (path.length === this.target.length && path.every((p, i) => p === this.target[i])) {
      this.found = { span: { start, end: this.pos }, keys };
    }
  }
}

/** Python-compatible JSON for a value; `floats` forces a decimal point on integral numbers (0 → 0.0). */
function encode(v: unknown, floats: boolean): string {
  return floats && typeof v === 'number' && Number.isInteger(v) ? `${v}.0` : JSON.stringify(v);
}

function lineIndent(text: string, pos: number): string {
  const lineStart = text.lastIndexOf('\n', pos - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))![0];
}

/**
 * Replaces (or adds) keys of the object at `objectPath` (e.g. ['text_config'], or [] for the top level)
 * in a JSON text. `floatKeys` are written with float syntax. Lists keep the one-item-per-line layout
 * when the old value had it.
 */
export function editJsonObject(
  text: string,
  objectPath: readonly string[],
  updates: Record<string, unknown>,
  floatKeys: ReadonlySet<string> = new Set(),
): string {
  const s = new Scanner(text, objectPath);
  s.value([]);
  s.ws();
  if (s.pos !== text.length) s.fail('trailing characters');
  if (!s.found) throw new Error(`config.json: no object at ${objectPath.join('.') || 'top level'}`);
  const { span, keys } = s.found;
  const edits: { start: number; end: number; text: string }[] = [];
  const additions: string[] = [];
  const firstKey = keys.values().next();
  const memberIndent = firstKey.done ? '  ' : lineIndent(text, firstKey.value.start);
  for (const [key, value] of Object.entries(updates)) {
    const old = keys.get(key);
    const floats = floatKeys.has(key);
    const items = Array.isArray(value) ? value.map((v: unknown) => encode(v, floats)) : [];
    const multiline = old ? text.slice(old.start, old.end).includes('\n') : Array.isArray(value);
    const indent = old ? lineIndent(text, old.start) : memberIndent;
    const rendered = !Array.isArray(value)
      ? encode(value, floats)
      : items.length === 0
        ? '[]'
        : multiline
          ? `[\n${items.map((i) => `${indent}  ${i}`).join(',\n')}\n${indent}]`
          : `[${items.join(', ')}]`;
    if (old) edits.push({ start: old.start, end: old.end, text: rendered });
    else additions.push(`${indent}${JSON.stringify(key)}: ${rendered}`);
  }
  if (additions.length > 0) {
    // New keys go after the last member, with the layout of the existing ones.
    const last = [...keys.values()].reduce((a, b) => (b.end > a ? b.end : a), span.start + 1);
    const closeIndent = lineIndent(text, span.end - 1);
    const sep = keys.size > 0 ? ',' : '';
    const tail = keys.size > 0 ? '' : `\n${closeIndent}`;
    edits.push({ start: last, end: last, text: `${sep}\n${additions.join(',\n')}${tail}` });
  }
  let out = text;
  for (const e of edits.sort((a, b) => b.start - a.start))
    out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

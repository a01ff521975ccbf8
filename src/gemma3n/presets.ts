// Google's published Mix-n-Match configurations of Gemma 3n E4B (google/gemma3n-slicing-configs,
// configs.csv), parsed into plain numbers. The tool ships a copy in configs/gemma3n-e4b-published.csv.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { evaluate } from 'mathjs';
import { UserInputError, parseCsv } from '../formats';

export const PUBLISHED_CONFIGS_FILE = 'gemma3n-e4b-published.csv';

export class PresetError extends UserInputError {
  override name = 'PresetError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

export interface PublishedConfig {
  readonly name: string;
  /** Number of kept layers (`# Layers`). */
  readonly layers: number;
  /** `# Effective Params (B)` as published (billions). */
  readonly effectiveParamsB: number;
  /** `MMLU PT accuracy` in percent (62.3 for "62.30%"). */
  readonly mmluPct: number;
  /** FFN width of each kept layer. */
  readonly ffn: number[];
  /** Skipped parent layer indices (0-based, sorted). */
  readonly skip: number[];
}

/**
 * Evaluates one width expression such as `2_048 * 8` with mathjs (never eval). Python's `_` digit
 * separator is not mathjs syntax (it would read `2_048` as 2 times the symbol `_048`), so underscores
 * between digits are removed first.
 */
export function evaluateWidth(expr: string): number {
  const cleaned = expr.trim().replace(/(?<=\d)_(?=\d)/g, '');
  if (cleaned === '') throw new Error('empty expression');
  const v: unknown = evaluate(cleaned);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(`"${expr.trim()}" is not a positive integer`);
  }
  return v;
}

/** Splits a Python-style list `[a, b, c]` into its item strings (items here hold no commas). */
function listItems(text: string): string[] {
  const t = text.trim();
  if (t === '') return [];
  if (!t.startsWith('[') || !t.endsWith(']'))
    throw new Error(`expected a [..] list, got ${JSON.stringify(t)}`);
  const inner = t.slice(1, -1).trim();
  return inner === '' ? [] : inner.split(',').map((x) => x.trim());
}

const COLUMNS = {
  name: 'name',
  layers: '# Layers',
  params: '# Effective Params (B)',
  mmlu: 'MMLU PT accuracy',
  ffn: 'FFN Hidden Dims',
  skip: 'Layers Skipped',
} as const;

/** Parses configs.csv's text. `file` only labels error messages. */
export function parsePublishedConfigs(csvText: string, file = PUBLISHED_CONFIGS_FILE): PublishedConfig[] {
  let rows: string[][];
  try {
    rows = parseCsv(csvText, file).map((r) => r.fields);
  } catch (err) {
    // Same one-line message, as a PresetError: "<file>:<line>: what" becomes "<file>: line <line>: what".
    const m = /:(\d+): (.*)$/.exec((err as Error).message);
    throw new PresetError(file, m ? `line ${m[1]}: ${m[2]}` : (err as Error).message);
  }
  const first = rows[0];
  if (first === undefined) throw new PresetError(file, 'is empty; expected a header row');
  const header = first.map((h) => h.trim());
  const col = {} as Record<keyof typeof COLUMNS, number>;
  for (const [k, title] of Object.entries(COLUMNS) as [keyof typeof COLUMNS, string][]) {
    const idx = header.indexOf(title);
    if (idx < 0) throw new PresetError(file, `header lacks the column "${title}"`);
    col[k] = idx;
  }
  return rows.slice(1).map((r, i) => {
    const line = `row ${i + 2}`;
    try {
      const name = (r[col.name] ?? '').trim();
      if (!name) throw new Error('empty name');
      const layers = Number(r[col.layers]);
      if (!Number.isInteger(layers) || layers <= 0)
        throw new Error(`"# Layers" ${JSON.stringify(r[col.layers])}`);
      const effectiveParamsB = Number(r[col.params]);
      if (!Number.isFinite(effectiveParamsB)) throw new Error(`bad "# Effective Params (B)"`);
      const m = /^\s*([0-9.]+)\s*%\s*$/.exec(r[col.mmlu] ?? '');
      if (!m) throw new Error(`"MMLU PT accuracy" ${JSON.stringify(r[col.mmlu])} is not a percentage`);
      const ffn = listItems(r[col.ffn] ?? '').map(evaluateWidth);
      const skip = listItems(r[col.skip] ?? '').map((x) => {
        const n = Number(x);
        if (!Number.isInteger(n) || n < 0) throw new Error(`layer index ${JSON.stringify(x)}`);
        return n;
      });
      skip.sort((a, b) => a - b);
      if (new Set(skip).size !== skip.length) throw new Error('a layer is skipped twice');
      if (ffn.length !== layers) throw new Error(`${ffn.length} FFN widths for ${layers} layers`);
      return { name, layers, effectiveParamsB, mmluPct: Number(m[1]), ffn, skip };
    } catch (err) {
      if (err instanceof PresetError) throw err;
      throw new PresetError(file, `${line}: ${(err as Error).message}`);
    }
  });
}

/** Where the shipped configs/ folder is: beside src/ in the repo, or beside dist/ when bundled. */
export function configsDir(): string {
  const candidates = [path.resolve(__dirname, '../../configs'), path.resolve(__dirname, '../configs')];
  for (const c of candidates) if (fs.existsSync(path.join(c, PUBLISHED_CONFIGS_FILE))) return c;
  throw new PresetError(
    PUBLISHED_CONFIGS_FILE,
    `not found in ${candidates.join(' or ')} (incomplete install?)`,
  );
}

/** The published configurations shipped with the tool. */
export function loadPublishedConfigs(): PublishedConfig[] {
  const file = path.join(configsDir(), PUBLISHED_CONFIGS_FILE);
  return parsePublishedConfigs(fs.readFileSync(file, 'utf8'), file);
}

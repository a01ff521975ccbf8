import { UserInputError } from './errors';

export interface CsvRecord {
  fields: string[];
  /** 1-based physical line on which the record starts (records may span lines inside quotes). */
  line: number;
}

/**
 * CSV for the MMLU files and the published configs table. RFC 4180 CSV with the line-ending tolerance of Python's csv module (the reference reader): records end at
 * CRLF, LF or a lone CR outside quotes; inside quotes anything goes (the MMLU files have newlines and a few CRs
 * inside fields) and `""` is a literal quote. Blank lines are skipped; a missing final newline is fine.
 * Stricter than Python where it would silently guess: text after a closing quote or an unterminated quote
 * is an error.
 */
export function parseCsv(text: string, file: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  // A byte-order mark (spreadsheet exports) is not part of the first field.
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  const endRecord = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ fields, line: recordLine });
    fields = [];
    field = '';
  };
  while (i < n) {
    const c = text[i];
    if (c === '"' && field === '') {
      // Quoted field: scan to the closing quote, unescaping doubled quotes.
      const startLine = line;
      i++;
      for (;;) {
        if (i >= n) throw new UserInputError(`${file}:${startLine}: unterminated quoted field`);
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n' || (q === '\r' && text[i + 1] !== '\n')) line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (i < n && next !== ',' && next !== '\n' && next !== '\r') {
        throw new UserInputError(
          `${file}:${line}: expected ',' or end of line after a closing quote, got ${JSON.stringify(next)}`,
        );
      }
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      endRecord();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      recordLine = line;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || fields.length > 0) endRecord();
  return records;
}

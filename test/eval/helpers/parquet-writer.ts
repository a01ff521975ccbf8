/**
 * Minimal Parquet writer for tests (no writer is installed): one row group, uncompressed PLAIN data pages v1,
 * Thrift compact footer. Writes the `cais/mmlu` columns: question, subject (UTF8), choices (LIST of UTF8),
 * answer (INT64). All fields are required, so only the list column carries repetition/definition levels.
 */
export interface ParquetMmluRow {
  question: string;
  subject: string;
  choices: string[];
  answer: number;
}

// Thrift compact protocol, just what FileMetaData needs.
type TValue =
  | { t: 'i32'; v: number }
  | { t: 'i64'; v: number }
  | { t: 'bin'; v: string }
  | { t: 'list'; elem: 'i32' | 'bin' | 'struct'; v: TValue[] }
  | { t: 'struct'; v: [number, TValue][] };
const TYPE_ID = { i32: 5, i64: 6, bin: 8, list: 9, struct: 12 } as const;

function varint(out: number[], n: number): void {
  let x = BigInt(n);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
}
const zigzag = (n: number) => (n >= 0 ? 2 * n : -2 * n - 1);

function writeValue(out: number[], val: TValue): void {
  switch (val.t) {
    case 'i32':
    case 'i64':
      return varint(out, zigzag(val.v));
    case 'bin': {
      const bytes = Buffer.from(val.v, 'utf8');
      varint(out, bytes.length);
      out.push(...bytes);
      return;
    }
    case 'list':
      if (val.v.length < 15) out.push((val.v.length << 4) | TYPE_ID[val.elem]);
      else {
        out.push(0xf0 | TYPE_ID[val.elem]);
        varint(out, val.v.length);
      }
      val.v.forEach((e) => writeValue(out, e));
      return;
    case 'struct': {
      let last = 0;
      for (const [id, f] of val.v) {
        out.push(((id - last) << 4) | TYPE_ID[f.t]);
        last = id;
        writeValue(out, f);
      }
      out.push(0);
    }
  }
}
const i32 = (v: number): TValue => ({ t: 'i32', v });
const i64 = (v: number): TValue => ({ t: 'i64', v });
const bin = (v: string): TValue => ({ t: 'bin', v });
const struct = (...v: [number, TValue][]): TValue => ({ t: 'struct', v });
const list = (elem: 'i32' | 'bin' | 'struct', v: TValue[]): TValue => ({ t: 'list', elem, v });
const thrift = (val: TValue) => {
  const out: number[] = [];
  writeValue(out, val);
  return Buffer.from(out);
};

/** RLE/bit-packed hybrid with RLE runs only, bit width 1, prefixed by its 4-byte length (data page v1). */
function levels(values: number[]): Buffer {
  const out: number[] = [];
  for (let i = 0; i < values.length;) {
    let j = i;
    while (j < values.length && values[j] === values[i]) j++;
    varint(out, (j - i) << 1);
    out.push(values[i]!);
    i = j;
  }
  const len = Buffer.alloc(4);
  len.writeUInt32LE(out.length);
  return Buffer.concat([len, Buffer.from(out)]);
}

const plainStrings = (xs: string[]) =>
  Buffer.concat(
    xs.map((s) => {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    }),
  );

export function writeMmluParquet(rows: ParquetMmluRow[]): Buffer {
  const BYTE_ARRAY = 6;
  const INT64 = 2;
  const answers = Buffer.alloc(8 * rows.length);
  rows.forEach((r, i) => answers.writeBigInt64LE(BigInt(r.answer), 8 * i));
  const leaves = rows.flatMap((r) => r.choices);
  const columns = [
    { path: ['question'], type: BYTE_ARRAY, n: rows.length, body: plainStrings(rows.map((r) => r.question)) },
    { path: ['subject'], type: BYTE_ARRAY, n: rows.length, body: plainStrings(rows.map((r) => r.subject)) },
    {
      path: ['choices', 'list', 'element'],
      type: BYTE_ARRAY,
      n: leaves.length,
      body: Buffer.concat([
        levels(rows.flatMap((r) => r.choices.map((_, k) => (k === 0 ? 0 : 1)))),
        levels(leaves.map(() => 1)),
        plainStrings(leaves),
      ]),
    },
    { path: ['answer'], type: INT64, n: rows.length, body: answers },
  ];
  const parts: Buffer[] = [Buffer.from('PAR1')];
  let offset = 4;
  const chunks: TValue[] = [];
  for (const c of columns) {
    const header = thrift(
      struct(
        [1, i32(0)],
        [2, i32(c.body.length)],
        [3, i32(c.body.length)],
        [5, struct([1, i32(c.n)], [2, i32(0)], [3, i32(3)], [4, i32(3)])],
      ),
    );
    const size = header.length + c.body.length;
    const meta = struct(
      [1, i32(c.type)],
      [2, list('i32', [i32(0), i32(3)])],
      [3, list('bin', c.path.map(bin))],
      [4, i32(0)],
      [5, i64(c.n)],
      [6, i64(size)],
      [7, i64(size)],
      [9, i64(offset)],
    );
    chunks.push(struct([2, i64(offset)], [3, meta]));
    parts.push(header, c.body);
    offset += size;
  }
  const REQUIRED = 0;
  const REPEATED = 2;
  const UTF8 = 0;
  const LIST = 3;
  const schema = [
    struct([4, bin('schema')], [5, i32(4)]),
    struct([1, i32(BYTE_ARRAY)], [3, i32(REQUIRED)], [4, bin('question')], [6, i32(UTF8)]),
    struct([1, i32(BYTE_ARRAY)], [3, i32(REQUIRED)], [4, bin('subject')], [6, i32(UTF8)]),
    struct([3, i32(REQUIRED)], [4, bin('choices')], [5, i32(1)], [6, i32(LIST)]),
    struct([3, i32(REPEATED)], [4, bin('list')], [5, i32(1)]),
    struct([1, i32(BYTE_ARRAY)], [3, i32(REQUIRED)], [4, bin('element')], [6, i32(UTF8)]),
    struct([1, i32(INT64)], [3, i32(REQUIRED)], [4, bin('answer')]),
  ];
  const footer = thrift(
    struct(
      [1, i32(1)],
      [2, list('struct', schema)],
      [3, i64(rows.length)],
      [4, list('struct', [struct([1, list('struct', chunks)], [2, i64(offset - 4)], [3, i64(rows.length)])])],
    ),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(footer.length);
  parts.push(footer, len, Buffer.from('PAR1'));
  return Buffer.concat(parts);
}

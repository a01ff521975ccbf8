// Property-based fuzzing of everything that parses untrusted files: mutated safetensors headers, index
// files and configs either parse to a self-consistent result or fail with our own error type, never
// with a TypeError/RangeError (which the CLI would report as a crash).
import * as fs from 'fs';
import * as path from 'path';
import fc from 'fast-check';
import {
  CheckpointError,
  SafetensorsFile,
  encodeHeader,
  numel,
  parseHeader,
  DTYPES,
  DType,
  dtypeBytes,
  parseIndex,
} from '../../src/formats';
import { ConfigError, parseConfig } from '../../src/gemma3n';
import { tmpDir } from '../helpers/tmp';

const DTYPE_NAMES = Object.keys(DTYPES) as DType[];

const tensorArb = fc.record({
  name: fc.string({ minLength: 1, maxLength: 12 }),
  dtype: fc.constantFrom(...DTYPE_NAMES),
  shape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 }),
});

/** A valid header: its JSON text, the data size it describes, and the object form. */
const validHeaderArb = fc
  .record({
    tensors: fc.uniqueArray(tensorArb, { selector: (t) => t.name, maxLength: 6 }),
    metadata: fc.option(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
    ),
  })
  .filter((h) => h.tensors.every((t) => t.name !== '__metadata__'))
  .map((h) => {
    const { bytes, offsets } = encodeHeader(h.tensors, h.metadata);
    const text = bytes.subarray(8).toString('utf8');
    const dataBytes = offsets.length ? offsets[offsets.length - 1]![1] : 0;
    return { text, dataBytes, obj: JSON.parse(text) as Record<string, unknown> };
  });

/** Checks what parseHeader promises: offsets tile [0, dataBytes) and every size matches its shape. */
function checkConsistent(text: string, dataBytes: number): void {
  let parsed;
  try {
    parsed = parseHeader('fuzz.safetensors', text, dataBytes);
  } catch (err) {
    if (err instanceof CheckpointError) return;
    throw err;
  }
  let cursor = 0;
  const names = new Set<string>();
  for (const t of [...parsed.tensors].sort((a, b) => a.begin - b.begin)) {
    if (t.begin !== cursor) throw new Error(`gap/overlap at ${t.name}`);
    if (!DTYPE_NAMES.includes(t.dtype)) throw new Error(`bad dtype ${t.dtype}`);
    if (numel(t.shape) * dtypeBytes(t.dtype) !== t.end - t.begin) throw new Error(`size mismatch ${t.name}`);
    if (names.has(t.name)) throw new Error(`duplicate ${t.name}`);
    names.add(t.name);
    cursor = t.end;
  }
  if (cursor !== dataBytes) throw new Error('does not cover the data section');
  if (parsed.metadata !== null) {
    for (const v of Object.values(parsed.metadata))
      if (typeof v !== 'string') throw new Error('metadata value');
  }
}

type Mutation = (obj: Record<string, unknown>) => void;

const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(-1, 1.5, 2 ** 53, 2 ** 64, 1e308, -0, '', 'F16', [0], [1, 0], [-1, 2], [0, 2 ** 60]),
);

const jsonMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // Replace one field of one entry with anything.
  fc
    .tuple(fc.nat(), fc.constantFrom('dtype', 'shape', 'data_offsets', 'extra'), anyValue)
    .map(([i, field, v]) => (o: Record<string, unknown>) => {
      const keys = Object.keys(o);
      if (keys.length === 0) return;
      const e = o[keys[i % keys.length]!];
      if (e && typeof e === 'object' && !Array.isArray(e)) (e as Record<string, unknown>)[field] = v;
      else o[keys[i % keys.length]!] = v;
    }),
  // Delete a field or a whole entry.
  fc
    .tuple(fc.nat(), fc.constantFrom('dtype', 'shape', 'data_offsets', null))
    .map(([i, field]): Mutation => (o) => {
      const keys = Object.keys(o);
      if (keys.length === 0) return;
      const k = keys[i % keys.length]!;
      const e = o[k] as Record<string, unknown>;
      if (field === null || typeof e !== 'object' || e === null) delete o[k];
      else delete e[field];
    }),
  // Shift one offset, or one shape dimension, by a small amount.
  fc
    .tuple(fc.nat(), fc.integer({ min: -9, max: 9 }), fc.boolean(), fc.nat(2))
    .map(([i, d, offs, j]): Mutation => (o) => {
      const keys = Object.keys(o).filter((k) => k !== '__metadata__');
      if (keys.length === 0) return;
      const e = o[keys[i % keys.length]!] as { shape: number[]; data_offsets: number[] };
      const arr = offs ? e.data_offsets : e.shape;
      if (Array.isArray(arr) && arr.length > 0) arr[j % arr.length]! += d;
    }),
  // Swap the offsets of two entries.
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]): Mutation => (o) => {
    const keys = Object.keys(o).filter((k) => k !== '__metadata__');
    if (keys.length < 2) return;
    const a = o[keys[i % keys.length]!] as { data_offsets: unknown };
    const b = o[keys[j % keys.length]!] as { data_offsets: unknown };
    [a.data_offsets, b.data_offsets] = [b.data_offsets, a.data_offsets];
  }),
  // Add an entry (possibly overlapping, possibly named like an Object.prototype member).
  fc
    .tuple(
      fc.oneof(
        fc.string({ maxLength: 8 }),
        fc.constantFrom('__proto__', 'constructor', 'toString', '__metadata__'),
      ),
      fc.record({
        dtype: fc.constantFrom(...DTYPE_NAMES, 'X'),
        shape: fc.array(fc.nat(4), { maxLength: 2 }),
      }),
      fc.nat(64),
      fc.nat(64),
    )
    .map(([name, e, b, n]): Mutation => (o) => {
      o[name] = { ...e, data_offsets: [b, b + n] };
    }),
  // Metadata of any shape.
  anyValue.map((v): Mutation => (o) => {
    o.__metadata__ = v;
  }),
);

describe('fuzz: safetensors headers', () => {
  test('JSON-level mutations of valid headers (5,000 cases)', () => {
    fc.assert(
      fc.property(
        validHeaderArb,
        fc.array(jsonMutationArb, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: -2, max: 2 }),
        (h, muts, dataDelta) => {
          const obj = structuredClone(h.obj);
          for (const m of muts) m(obj);
          checkConsistent(JSON.stringify(obj), Math.max(0, h.dataBytes + dataDelta));
        },
      ),
      { numRuns: 5000 },
    );
  });

  test('valid headers always parse back to what was encoded (1,000 cases)', () => {
    fc.assert(
      fc.property(validHeaderArb, (h) => {
        const parsed = parseHeader('x', h.text, h.dataBytes);
        expect(parsed.tensors.length).toBe(Object.keys(h.obj).filter((k) => k !== '__metadata__').length);
        checkConsistent(h.text, h.dataBytes);
      }),
      { numRuns: 1000 },
    );
  });

  test('text-level mutations: replaced, inserted and cut characters (2,500 cases)', () => {
    fc.assert(
      fc.property(
        validHeaderArb,
        fc.nat(),
        fc.constantFrom('replace', 'insert', 'truncate'),
        fc.string({ minLength: 1, maxLength: 4 }),
        (h, pos, kind, s) => {
          const p = pos % (h.text.length + 1);
          const t =
            kind === 'replace'
              ? h.text.slice(0, p) + s + h.text.slice(p + s.length)
              : kind === 'insert'
                ? h.text.slice(0, p) + s + h.text.slice(p)
                : h.text.slice(0, p);
          checkConsistent(t, h.dataBytes);
        },
      ),
      { numRuns: 2500 },
    );
  });

  test('whole files with mutated length prefixes and sizes open or fail with CheckpointError (800 cases)', () => {
    const file = path.join(tmpDir(), 'f.safetensors');
    fc.assert(
      fc.property(
        validHeaderArb,
        fc.oneof(
          fc.constant(null),
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          fc.bigInt({ min: 0n, max: 600n }),
        ),
        fc.integer({ min: -20, max: 20 }),
        (h, declared, sizeDelta) => {
          const json = Buffer.from(h.text);
          const len = Buffer.alloc(8);
          len.writeBigUInt64LE(declared ?? BigInt(json.length));
          const whole = Buffer.concat([len, json, Buffer.alloc(h.dataBytes + Math.max(0, sizeDelta))]);
          fs.writeFileSync(
            file,
            sizeDelta < 0 ? whole.subarray(0, Math.max(0, whole.length + sizeDelta)) : whole,
          );
          try {
            const f = SafetensorsFile.open(file);
            f.close();
            expect(f.fileBytes).toBe(
              8 + f.headerBytes + [...f.tensors.values()].reduce((a, t) => a + t.end - t.begin, 0),
            );
          } catch (err) {
            if (!(err instanceof CheckpointError)) throw err;
          }
        },
      ),
      { numRuns: 800 },
    );
  });
});

describe('fuzz: index files', () => {
  test('mutated weight maps (1,500 cases)', () => {
    const nameArb = fc.oneof(
      fc.string({ maxLength: 10 }),
      fc.constantFrom('model-00001-of-00002.safetensors', '../x', 'a/b', '..', '.', 'a\\b', '\0'),
    );
    const indexArb = fc.oneof(
      fc.record({
        metadata: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 1 })),
        weight_map: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(nameArb, anyValue), { maxKeys: 5 }),
      }),
      fc.jsonValue({ maxDepth: 2 }),
    );
    fc.assert(
      fc.property(indexArb, fc.boolean(), fc.nat(), (idx, cut, pos) => {
        let text = JSON.stringify(idx) ?? '';
        if (cut) text = text.slice(0, pos % (text.length + 1));
        try {
          const r = parseIndex('idx.json', text);
          for (const v of r.weightMap.values()) {
            if (typeof v !== 'string' || v === '' || /[/\\\0]/.test(v) || v === '..' || v === '.') {
              throw new Error(`accepted shard name ${JSON.stringify(v)}`);
            }
          }
        } catch (err) {
          if (!(err instanceof CheckpointError)) throw err;
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 1500) },
    );
  });
});

describe('fuzz: configs', () => {
  const L = 6;
  const base = {
    model_type: 'gemma3n_text',
    num_hidden_layers: L,
    num_kv_shared_layers: 2,
    intermediate_size: Array(L).fill(32),
    layer_types: [
      'sliding_attention',
      'sliding_attention',
      'full_attention',
      'sliding_attention',
      'sliding_attention',
      'full_attention',
    ],
    activation_sparsity_pattern: [0.95, 0.95, 0, 0, 0, 0],
    hidden_size: 16,
    head_dim: 8,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rope_theta: 1e6,
    rope_local_base_freq: 1e4,
  };
  const keys = [
    ...Object.keys(base),
    'vocab_size',
    'vocab_size_per_layer_input',
    'hidden_size_per_layer_input',
    'rms_norm_eps',
    'sliding_window',
    'final_logit_softcapping',
    'altup_num_inputs',
    'altup_active_idx',
    'altup_coef_clip',
    'laurel_rank',
    'hidden_activation',
    'rope_scaling',
    'rope_parameters',
    'eos_token_id',
  ];
  const valueArb = fc.oneof(
    anyValue,
    fc.integer({ min: -3, max: 12 }),
    fc.array(fc.integer({ min: -1, max: 64 }), { maxLength: 8 }),
    fc.array(fc.constantFrom('sliding_attention', 'full_attention', 'x'), { maxLength: 8 }),
    fc.array(fc.constantFrom(0, 0.5, 0.95, 1, -0.1), { maxLength: 8 }),
    fc.record({
      full_attention: fc.record({ rope_type: fc.constantFrom('default', 'yarn'), rope_theta: anyValue }),
    }),
  );

  test('mutated text configs, bare and nested (1,500 cases)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...keys), valueArb, fc.boolean()), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (muts, nested) => {
          const t: Record<string, unknown> = structuredClone(base);
          for (const [k, v, del] of muts) {
            if (del) delete t[k];
            else t[k] = v;
          }
          try {
            const cfg = parseConfig(nested ? { text_config: t } : t, 'cfg.json');
            const c = cfg.text;
            const n = c.num_hidden_layers;
            expect(Number.isInteger(n) && n > 0).toBe(true);
            for (const list of [
              c.intermediate_size,
              c.layer_types,
              c.activation_sparsity_pattern,
              cfg.layers,
            ]) {
              expect(list.length).toBe(n);
            }
            expect(c.intermediate_size.every((x) => Number.isInteger(x) && x > 0)).toBe(true);
            for (const l of cfg.layers) {
              if (l.kv === 'consumer') {
                expect(l.kvSource).not.toBeNull();
                expect(l.kvSource!).toBeLessThan(cfg.firstSharedLayer);
                expect(cfg.layers[l.kvSource!]!.type).toBe(l.type);
                expect(cfg.layers[l.kvSource!]!.kv).toBe('producer');
              }
            }
            for (const v of [
              c.hidden_size,
              c.head_dim,
              c.num_attention_heads,
              c.num_key_value_heads,
              c.vocab_size,
            ]) {
              expect(Number.isInteger(v) && v > 0).toBe(true);
            }
          } catch (err) {
            if (!(err instanceof ConfigError)) throw err;
          }
        },
      ),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 1500) },
    );
  });
});

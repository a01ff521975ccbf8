// Safetensors dtypes as a declarative table: element size, and how (if at all) we decode to float32.

export const DTYPES = {
  BF16: { bytes: 2, float: true },
  F16: { bytes: 2, float: true },
  F32: { bytes: 4, float: true },
  F64: { bytes: 8, float: false },
  F8_E4M3: { bytes: 1, float: false },
  F8_E5M2: { bytes: 1, float: false },
  I8: { bytes: 1, float: false },
  U8: { bytes: 1, float: false },
  I16: { bytes: 2, float: false },
  U16: { bytes: 2, float: false },
  I32: { bytes: 4, float: false },
  U32: { bytes: 4, float: false },
  I64: { bytes: 8, float: false },
  U64: { bytes: 8, float: false },
  BOOL: { bytes: 1, float: false },
} as const;

export type DType = keyof typeof DTYPES;

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

export function dtypeBytes(d: DType): number {
  return DTYPES[d].bytes;
}

/** True for the dtypes we decode exactly to float32 (BF16, F16, F32). */
export function isFloatDecodable(d: DType): d is 'BF16' | 'F16' | 'F32' {
  return DTYPES[d].float;
}

// Views need an aligned offset; copy only when the bytes are not already aligned.
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  return bytes.byteOffset % align === 0 ? bytes : new Uint8Array(bytes);
}

/** bf16 is the top half of a float32: a 16-bit left shift is exact. */
export function bf16ToF32(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = bytes.byteLength >> 1;
  const src = new Uint16Array(aligned(bytes, 2).buffer, aligned(bytes, 2).byteOffset, n);
  const dst = out ?? new Float32Array(n);
  const u32 = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) u32[i] = src[i]! << 16;
  return dst;
}

export function f32ToBf16Bytes(values: Float32Array): Uint8Array {
  // Round to nearest even, as torch does when casting float32 to bfloat16.
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = u32[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      out[i] = (x >>> 16) | 0x40; // quiet NaN
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return new Uint8Array(out.buffer);
}

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export function f16ToF32(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = bytes.byteLength >> 1;
  const a = aligned(bytes, 2);
  const src = new Uint16Array(a.buffer, a.byteOffset, n);
  const dst = out ?? new Float32Array(n);
  for (let i = 0; i < n; i++) dst[i] = F16_TABLE[src[i]!]!;
  return dst;
}

/** Decode BF16/F16/F32 bytes to float32 exactly (little-endian, as safetensors stores them). */
export function decodeFloat32(dtype: DType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  switch (dtype) {
    case 'BF16':
      return bf16ToF32(bytes, out);
    case 'F16':
      return f16ToF32(bytes, out);
    case 'F32': {
      const a = aligned(bytes, 4);
      const view = new Float32Array(a.buffer, a.byteOffset, a.byteLength >> 2);
      if (!out) return a === bytes ? new Float32Array(view) : view;
      out.set(view);
      return out;
    }
    default:
      throw new Error(`dtype ${dtype} cannot be decoded to float32`);
  }
}

export function encodeFromFloat32(dtype: DType, values: Float32Array): Uint8Array {
  switch (dtype) {
    case 'BF16':
      return f32ToBf16Bytes(values);
    case 'F32':
      return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
    case 'F16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
      return new Uint8Array(out.buffer);
    }
    default:
      throw new Error(`cannot encode float32 values as ${dtype}`);
  }
}

function f32ToF16Bits(v: number): number {
  // Round to nearest even via Math.fround-free integer manipulation.
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

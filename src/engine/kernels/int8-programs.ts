// The WGSL programs of the int8 fast mode (see int8-matmul.ts for the layouts and the arithmetic):
//   QuantizeRowsProgram  one workgroup per row of x: max |x| (a workgroup reduction), then 4 int8 values per
//                        word, zero past K, and the row's scale bitcast into the word after them.
//   Int8GemvProgram      M ≤ INT8_GEMV_MAX_ROWS (decode, the MMLU head): each thread owns one output column
//                        and a contiguous slice of the K words (consecutive threads read consecutive words of a
//                        weight row: coalesced); dot4I8Packed per word, int32 partial sums meet in workgroup
//                        memory.
//   Int8TiledProgram     larger M: a 64×64 output tile per workgroup of 16×16 threads (4×4 outputs each), K in
//                        steps of 8 words (32 values) staged in workgroup memory.
import { ROW_INDEX } from './register';

/** Rows up to which the gemv program is used. */
export const INT8_GEMV_MAX_ROWS = 8;

/** The uniforms of both int8 product programs, in this order. */
export const INT8_UNIFORMS =
  'm : i32, kw : i32, n : i32, rowStride : i32, off : i32, seg : i32, segmented : i32,';

/** WGSL: the W column of output column `c`, and the output width (2n when segmented). */
const COLUMN_AT = `
  fn columnAt(c : i32) -> i32 {
    if (uniforms.segmented == 1 && c >= uniforms.n) { return uniforms.seg + (c - uniforms.n); }
    return uniforms.off + c;
  }
  fn outCols() -> i32 {
    return select(uniforms.n, 2 * uniforms.n, uniforms.segmented == 1);
  }
  // The row's scale sits in the word after its kw value words.
  fn rowScale(r : i32) -> f32 {
    return bitcast<f32>(XQ[r * (uniforms.kw + 1) + uniforms.kw]);
  }`;

const QUANT_WG = 64;

export class QuantizeRowsProgram {
  readonly variableNames = ['X'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [0, 1] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [QUANT_WG, 1, 1];
  readonly shaderKey = 'mf_int8_quantize_rows';
  readonly uniforms = 'rows : i32, width : i32, words : i32,';

  constructor(rows: number, width: number) {
    this.outputShape = [rows, Math.ceil(width / 4) + 1];
    this.dispatch = [rows, 1, 1];
  }

  getUserCode(): string {
    return `
      var<workgroup> red : array<f32, ${QUANT_WG}>;
      fn q8(v : f32, inv : f32) -> u32 {
        return u32(clamp(i32(round(v * inv)), -127, 127)) & 0xffu;
      }
      fn main(index : i32) {
        let row = ${ROW_INDEX};
        let lid = i32(localId.x);
        let W = uniforms.width;
        let KW = uniforms.words;
        // No early return: barriers must stay in uniform control flow (row is per workgroup anyway).
        let valid = row < uniforms.rows;
        let base = select(0, row * W, valid);
        var m = 0.0;
        for (var i = lid; i < W; i += ${QUANT_WG}) { m = max(m, abs(X[base + i])); }
        red[lid] = m;
        workgroupBarrier();
        for (var s = ${QUANT_WG / 2}; s > 0; s = s / 2) {
          if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
          workgroupBarrier();
        }
        let amax = red[0];
        // An all-zero row: scale 0, values 0 (no 0/0).
        let inv = select(0.0, 127.0 / amax, amax > 0.0);
        let out = select(0, row * (KW + 1), valid);
        for (var j = lid; valid && j < KW; j += ${QUANT_WG}) {
          let k = 4 * j;
          var w = 0u;
          for (var b = 0; b < 4; b++) {
            if (k + b < W) { w = w | (q8(X[base + k + b], inv) << u32(8 * b)); }
          }
          result[out + j] = bitcast<i32>(w);
        }
        if (valid && lid == 0) { result[out + KW] = bitcast<i32>(amax / 127.0); }
      }`;
  }
}

abstract class Int8ProgramBase {
  readonly variableNames = ['XQ', 'W', 'SW'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly uniforms = INT8_UNIFORMS;
  abstract readonly dispatch: [number, number, number];
  abstract readonly workgroupSize: [number, number, number];
  abstract readonly shaderKey: string;

  constructor(m: number, cols: number) {
    this.outputShape = [m, cols];
  }

  abstract getUserCode(): string;
}

export class Int8GemvProgram extends Int8ProgramBase {
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number];
  readonly shaderKey: string;
  private readonly mr: number;
  private static readonly WX = 64;
  private static readonly WY = 4;

  constructor(m: number, cols: number) {
    super(m, cols);
    this.mr = Math.min(m, INT8_GEMV_MAX_ROWS);
    this.workgroupSize = [Int8GemvProgram.WX, Int8GemvProgram.WY, 1];
    this.dispatch = [Math.ceil(cols / Int8GemvProgram.WX), Math.ceil(m / this.mr), 1];
    this.shaderKey = `mf_int8_gemv_${this.mr}`;
  }

  getUserCode(): string {
    const { WX, WY } = Int8GemvProgram;
    const MR = this.mr;
    const rows = Array.from({ length: MR }, (_, r) => r);
    return `
      var<workgroup> part : array<i32, ${WY * MR * WX}>;
      ${COLUMN_AT}
      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let KW = uniforms.kw;
        let cols = outCols();
        let c = i32(workgroupId.x) * ${WX} + tx;
        let r0 = i32(workgroupId.y) * ${MR};
        var acc : array<i32, ${MR}>;
        let chunk = (KW + ${WY - 1}) / ${WY};
        let k0 = ty * chunk;
        let k1 = min(KW, k0 + chunk);
        if (c < cols) {
          let wc = columnAt(c);
          for (var kk = k0; kk < k1; kk++) {
            let w = bitcast<u32>(W[kk * uniforms.rowStride + wc]);
            ${rows
              .map(
                (r) =>
                  `acc[${r}] = acc[${r}] + dot4I8Packed(bitcast<u32>(XQ[min(r0 + ${r}, uniforms.m - 1) * (KW + 1) + kk]), w);`,
              )
              .join('\n            ')}
          }
        }
        ${rows.map((r) => `part[(ty * ${MR} + ${r}) * ${WX} + tx] = acc[${r}];`).join('\n        ')}
        workgroupBarrier();
        if (ty == 0 && c < cols) {
          let so = SW[columnAt(c)];
          for (var r = 0; r < ${MR}; r++) {
            var s = 0;
            for (var y = 0; y < ${WY}; y++) { s = s + part[(y * ${MR} + r) * ${WX} + tx]; }
            let gr = r0 + r;
            if (gr < uniforms.m) { result[gr * cols + c] = f32(s) * rowScale(gr) * so; }
          }
        }
      }
    `;
  }
}

export class Int8TiledProgram extends Int8ProgramBase {
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [16, 16, 1];
  readonly shaderKey = 'mf_int8_tiled_64x64_k8';

  constructor(m: number, cols: number) {
    super(m, cols);
    this.dispatch = [Math.ceil(cols / 64), Math.ceil(m / 64), 1];
  }

  getUserCode(): string {
    // Thread (tx, ty) computes rows ty + 16·i and columns tx + 16·j (i, j < 4): workgroup-memory reads of a
    // step are one word per thread row/column, and stores stay coalesced.
    const TK = 8;
    const fmas: string[] = [];
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++)
        fmas.push(`acc[${i * 4 + j}] = acc[${i * 4 + j}] + dot4I8Packed(a${i}, b${j});`);
    const writes: string[] = [];
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++)
        writes.push(`{
          let gr = row0 + ty + ${16 * i};
          let gc = col0 + tx + ${16 * j};
          if (gr < M && gc < cols) { result[gr * cols + gc] = f32(acc[${i * 4 + j}]) * rowScale(gr) * SW[columnAt(gc)]; }
        }`);
    return `
      var<workgroup> as_ : array<u32, ${64 * TK}>;
      var<workgroup> bs : array<u32, ${64 * TK}>;
      ${COLUMN_AT}
      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let tid = ty * 16 + tx;
        let row0 = i32(workgroupId.y) * 64;
        let col0 = i32(workgroupId.x) * 64;
        let M = uniforms.m;
        let KW = uniforms.kw;
        let cols = outCols();
        var acc : array<i32, 16>;
        for (var k0 = 0; k0 < KW; k0 += ${TK}) {
          // 512 words of x (64 rows × 8) and 512 of W (8 rows × 64 columns): two each per thread.
          for (var l = 0; l < 2; l++) {
            let i = tid + l * 256;
            let r = i / ${TK};
            let kk = i % ${TK};
            var a = 0u;
            if (row0 + r < M && k0 + kk < KW) { a = bitcast<u32>(XQ[(row0 + r) * (KW + 1) + k0 + kk]); }
            as_[kk * 64 + r] = a;
            let kb = i / 64;
            let cb = i % 64;
            var b = 0u;
            if (col0 + cb < cols && k0 + kb < KW) { b = bitcast<u32>(W[(k0 + kb) * uniforms.rowStride + columnAt(col0 + cb)]); }
            bs[kb * 64 + cb] = b;
          }
          workgroupBarrier();
          for (var kk = 0; kk < ${TK}; kk++) {
            ${[0, 1, 2, 3].map((i) => `let a${i} = as_[kk * 64 + ty + ${16 * i}];`).join('\n            ')}
            ${[0, 1, 2, 3].map((j) => `let b${j} = bs[kk * 64 + tx + ${16 * j}];`).join('\n            ')}
            ${fmas.join('\n            ')}
          }
          workgroupBarrier();
        }
        ${writes.join('\n        ')}
      }
    `;
  }
}

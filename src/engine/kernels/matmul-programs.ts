// The WGSL programs of the bf16-packed matmul x [M, K] @ W [K, N], W as words [K_parent, S] (word j of a row
// holds columns 2j (low half) and 2j+1 (high half); S = the parent's words per row, so a prefix view is the
// same buffer). Output column c < n reads W column 2·off + c (a view may start at word `off`); a segmented
// product (gate|up side by side in one buffer) has 2n columns, and c ≥ n reads W column 2·seg + (c − n).
//
//   GemvProgram   M ≤ a few rows (decode, the MMLU head): bandwidth-bound, so each thread streams one word
//                 column over a contiguous slice of K (consecutive threads read consecutive words of a row:
//                 coalesced), x read as vec4; partial sums of the WY slices meet in workgroup memory.
//   TiledProgram  big M (prefill): register tiling as on NVIDIA-class GPUs: each thread computes R×C outputs
//                 (vec4 groups strided by the workgroup width, so workgroup-memory reads are conflict-free
//                 vec4s), A and decoded B tiles staged in workgroup memory, the next tiles' global loads
//                 issued before the current tiles' math (register prefetch).
//   LegacyProgram the first tiled program, kept so the two can be compared on a GPU (MATFORMER_MATMUL=legacy).
import type { MatMulKernel } from './matmul-table';
import { GEMV_MAX_ROWS } from './matmul-table';

/** The uniforms every program here takes, in this order. */
export const MATMUL_UNIFORMS =
  'm : i32, k : i32, n : i32, rowStride : i32, off : i32, seg : i32, segmented : i32,';

/** WGSL: the word index in W of output column `gc` (even) at row `gk`. */
const WORD_AT = `
  fn wordAt(gk : i32, gc : i32) -> i32 {
    var c = 2 * uniforms.off + gc;
    if (uniforms.segmented == 1 && gc >= uniforms.n) { c = 2 * uniforms.seg + (gc - uniforms.n); }
    return gk * uniforms.rowStride + c / 2;
  }
  fn outCols() -> i32 {
    return select(uniforms.n, 2 * uniforms.n, uniforms.segmented == 1);
  }`;

/** `body` n times, each in its own block with `l` a constant (private arrays indexed by l stay registers). */
function unroll(n: number, body: string): string {
  return Array.from(
    { length: n },
    (_, i) => `{
          const l = ${i};${body}
        }`,
  ).join('\n        ');
}

abstract class MatMulProgramBase {
  readonly variableNames = ['X', 'W'];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly uniforms = MATMUL_UNIFORMS;
  abstract readonly dispatch: [number, number, number];
  abstract readonly workgroupSize: [number, number, number];
  abstract readonly shaderKey: string;
  abstract readonly variableComponents: number[];

  constructor(
    readonly m: number,
    readonly k: number,
    /** Output columns (2n when segmented). */
    readonly cols: number,
  ) {
    this.outputShape = [m, cols];
  }

  abstract getUserCode(): string;
}

export class GemvProgram extends MatMulProgramBase {
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number];
  readonly shaderKey: string;
  readonly variableComponents: number[];
  private readonly vec4: boolean;
  private readonly mr: number;

  constructor(
    m: number,
    k: number,
    cols: number,
    private readonly t: { wx: number; wy: number },
  ) {
    super(m, k, cols);
    this.vec4 = k % 4 === 0;
    this.mr = m >= GEMV_MAX_ROWS ? GEMV_MAX_ROWS : m >= 4 ? 4 : m >= 2 ? 2 : 1;
    this.variableComponents = [this.vec4 ? 4 : 1, 1];
    this.workgroupSize = [t.wx, t.wy, 1];
    this.dispatch = [Math.ceil(Math.ceil(cols / 2) / t.wx), Math.ceil(m / this.mr), 1];
    this.shaderKey = `bf16gemv_${t.wx}_${t.wy}_${this.mr}_${this.vec4}`;
  }

  getUserCode(): string {
    const { wx: WX, wy: WY } = this.t;
    const MR = this.mr;
    const step = this.vec4 ? 4 : 1;
    const rowsAcc = Array.from({ length: MR }, (_, r) => r);
    // One step of K: `step` words of this column, then each row's x values.
    const body = this.vec4
      ? `
          let u0 = bitcast<u32>(W[wordAt(kk, gc)]);
          let u1 = bitcast<u32>(W[wordAt(kk + 1, gc)]);
          let u2 = bitcast<u32>(W[wordAt(kk + 2, gc)]);
          let u3 = bitcast<u32>(W[wordAt(kk + 3, gc)]);
          let wl = vec4<f32>(bitcast<f32>(u0 << 16u), bitcast<f32>(u1 << 16u), bitcast<f32>(u2 << 16u), bitcast<f32>(u3 << 16u));
          let wh = vec4<f32>(bitcast<f32>(u0 & 0xffff0000u), bitcast<f32>(u1 & 0xffff0000u), bitcast<f32>(u2 & 0xffff0000u), bitcast<f32>(u3 & 0xffff0000u));
          ${rowsAcc
            .map(
              (r) => `{
            let xv = X[(rowAt(${r}) * K + kk) / 4];
            lo[${r}] = lo[${r}] + dot(xv, wl);
            hi[${r}] = hi[${r}] + dot(xv, wh);
          }`,
            )
            .join('\n')}`
      : `
          let u = bitcast<u32>(W[wordAt(kk, gc)]);
          let wl = bitcast<f32>(u << 16u);
          let wh = bitcast<f32>(u & 0xffff0000u);
          ${rowsAcc
            .map(
              (r) => `{
            let xv = X[rowAt(${r}) * K + kk];
            lo[${r}] = lo[${r}] + xv * wl;
            hi[${r}] = hi[${r}] + xv * wh;
          }`,
            )
            .join('\n')}`;
    return `
      var<workgroup> part : array<f32, ${WY * MR * 2 * WX}>;
      ${WORD_AT}
      fn rowAt(r : i32) -> i32 {
        return min(i32(workgroupId.y) * ${MR} + r, uniforms.m - 1);
      }

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let K = uniforms.k;
        let cols = outCols();
        let j = i32(workgroupId.x) * ${WX} + tx;
        let gc = 2 * j;
        var lo : array<f32, ${MR}>;
        var hi : array<f32, ${MR}>;
        // A contiguous slice of K per thread row, a multiple of ${step} long.
        let chunk = ((K + ${WY * step - 1}) / ${WY * step}) * ${step};
        let k0 = ty * chunk;
        let k1 = min(K, k0 + chunk);
        if (gc < cols) {
          for (var kk = k0; kk < k1; kk += ${step}) {
            ${body}
          }
        }
        ${rowsAcc
          .map(
            (r) => `part[(ty * ${MR} + ${r}) * ${2 * WX} + 2 * tx] = lo[${r}];
        part[(ty * ${MR} + ${r}) * ${2 * WX} + 2 * tx + 1] = hi[${r}];`,
          )
          .join('\n        ')}
        workgroupBarrier();
        let tid = ty * ${WX} + tx;
        for (var o = tid; o < ${MR * 2 * WX}; o += ${WX * WY}) {
          let r = o / ${2 * WX};
          let c = o % ${2 * WX};
          var s = 0.0;
          for (var y = 0; y < ${WY}; y++) { s = s + part[(y * ${MR} + r) * ${2 * WX} + c]; }
          let gr = i32(workgroupId.y) * ${MR} + r;
          let col = i32(workgroupId.x) * ${2 * WX} + c;
          if (gr < uniforms.m && col < cols) { result[gr * cols + col] = s; }
        }
      }
    `;
  }
}

export class TiledProgram extends MatMulProgramBase {
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number];
  readonly shaderKey: string;
  readonly variableComponents: number[];
  private readonly vec4: boolean;

  constructor(
    m: number,
    k: number,
    cols: number,
    private readonly t: { wx: number; wy: number; rows: number; cols: number; tk: number },
  ) {
    super(m, k, cols);
    this.vec4 = k % 4 === 0;
    this.variableComponents = [this.vec4 ? 4 : 1, 1];
    this.workgroupSize = [t.wx, t.wy, 1];
    this.dispatch = [Math.ceil(cols / (t.wx * t.cols)), Math.ceil(m / (t.wy * t.rows)), 1];
    this.shaderKey = `bf16tiled_${t.wx}_${t.wy}_${t.rows}_${t.cols}_${t.tk}_${this.vec4}`;
  }

  getUserCode(): string {
    const { wx: WX, wy: WY, rows: R, cols: C, tk: TK } = this.t;
    const NT = WX * WY;
    const TM = WY * R;
    const TN = WX * C;
    const TM4 = TM / 4;
    const TN4 = TN / 4;
    const R4 = R / 4;
    const C4 = C / 4;
    // A tile: TM rows × TK of x, stored k-major (as[kk][m], m in vec4 groups) for vec4 reads of 4 rows.
    const LA = this.vec4 ? (TM * TK) / 4 / NT : (TM * TK) / NT;
    const LB = (TK * TN) / 2 / NT;
    const aLoad = this.vec4
      ? unroll(
          LA,
          `
          let i = tid + l * ${NT};
          let r = i / ${TK / 4};
          let gr = row0 + r;
          let gk = k0 + (i % ${TK / 4}) * 4;
          var v = vec4<f32>(0.0);
          if (gr < M && gk < K) { v = X[(gr * K + gk) / 4]; }
          ra[l] = v;`,
        )
      : unroll(
          LA,
          `
          let i = tid + l * ${NT};
          let r = i / ${TK};
          let gr = row0 + r;
          let gk = k0 + i % ${TK};
          var v = 0.0;
          if (gr < M && gk < K) { v = X[gr * K + gk]; }
          ra[l] = v;`,
        );
    const aStore = this.vec4
      ? unroll(
          LA,
          `
          let i = tid + l * ${NT};
          let r = i / ${TK / 4};
          let kq = (i % ${TK / 4}) * 4;
          let v = ra[l];
          as_[kq * ${TM4} + r / 4][r % 4] = v.x;
          as_[(kq + 1) * ${TM4} + r / 4][r % 4] = v.y;
          as_[(kq + 2) * ${TM4} + r / 4][r % 4] = v.z;
          as_[(kq + 3) * ${TM4} + r / 4][r % 4] = v.w;`,
        )
      : unroll(
          LA,
          `
          let i = tid + l * ${NT};
          let r = i / ${TK};
          let kk = i % ${TK};
          as_[kk * ${TM4} + r / 4][r % 4] = ra[l];`,
        );
    // B tile: TK rows × TN/2 words, decoded into bs[kk][n] (n in vec4 groups).
    const bLoad = unroll(
      LB,
      `
          let i = tid + l * ${NT};
          let kk = i / ${TN / 2};
          let gk = k0 + kk;
          let gc = col0 + 2 * (i % ${TN / 2});
          var u = 0u;
          if (gk < K && gc < cols) { u = bitcast<u32>(W[wordAt(gk, gc)]); }
          if (gc + 1 >= cols) { u = u & 0xffffu; }
          rb[l] = u;`,
    );
    const bStore = unroll(
      LB,
      `
          let i = tid + l * ${NT};
          let kk = i / ${TN / 2};
          let c = 2 * (i % ${TN / 2});
          let u = rb[l];
          bs[kk * ${TN4} + c / 4][c % 4] = bitcast<f32>(u << 16u);
          bs[kk * ${TN4} + c / 4][c % 4 + 1] = bitcast<f32>(u & 0xffff0000u);`,
    );
    const fmas: string[] = [];
    for (let g = 0; g < R4; g++)
      for (let i = 0; i < 4; i++)
        for (let h = 0; h < C4; h++)
          fmas.push(
            `acc[${(g * 4 + i) * C4 + h}] = fma(vec4<f32>(a${g}[${i}]), b${h}, acc[${(g * 4 + i) * C4 + h}]);`,
          );
    // Written out per register (constant indices), so the accumulators stay in registers.
    const writes: string[] = [];
    for (let g = 0; g < R4; g++)
      for (let i = 0; i < 4; i++)
        for (let h = 0; h < C4; h++)
          writes.push(`{
          let gr = row0 + ${g * WY * 4 + i} + ty * 4;
          let gc = col0 + ${h * WX * 4} + tx * 4;
          let v = acc[${(g * 4 + i) * C4 + h}];
          if (gr < M) {
            if (gc < cols) { result[gr * cols + gc] = v.x; }
            if (gc + 1 < cols) { result[gr * cols + gc + 1] = v.y; }
            if (gc + 2 < cols) { result[gr * cols + gc + 2] = v.z; }
            if (gc + 3 < cols) { result[gr * cols + gc + 3] = v.w; }
          }
        }`);
    const aReads = Array.from({ length: R4 }, (_, g) => `let a${g} = as_[kk * ${TM4} + ${g * WY} + ty];`);
    const bReads = Array.from({ length: C4 }, (_, h) => `let b${h} = bs[kk * ${TN4} + ${h * WX} + tx];`);
    return `
      var<workgroup> as_ : array<vec4<f32>, ${TK * TM4}>;
      var<workgroup> bs : array<vec4<f32>, ${TK * TN4}>;
      ${WORD_AT}

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let tid = ty * ${WX} + tx;
        let row0 = i32(workgroupId.y) * ${TM};
        let col0 = i32(workgroupId.x) * ${TN};
        let M = uniforms.m;
        let K = uniforms.k;
        let cols = outCols();
        var acc : array<vec4<f32>, ${R * C4}>;
        var ra : array<${this.vec4 ? 'vec4<f32>' : 'f32'}, ${LA}>;
        var rb : array<u32, ${LB}>;
        var k0 = 0;
        ${aLoad}
        ${bLoad}
        ${aStore}
        ${bStore}
        workgroupBarrier();
        for (; k0 < K; ) {
          let next = k0 + ${TK};
          // Issue the next tiles' global loads before this tile's math.
          if (next < K) {
            k0 = next;
            ${aLoad}
            ${bLoad}
          } else {
            k0 = next;
          }
          for (var kk = 0; kk < ${TK}; kk++) {
            ${aReads.join('\n            ')}
            ${bReads.join('\n            ')}
            ${fmas.join('\n            ')}
          }
          workgroupBarrier();
          if (k0 < K) {
            ${aStore}
            ${bStore}
          }
          workgroupBarrier();
        }
        ${writes.join('\n        ')}
      }
    `;
  }
}

export class LegacyProgram extends MatMulProgramBase {
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number];
  readonly shaderKey: string;
  readonly variableComponents: number[];
  private readonly vec4: boolean;

  constructor(
    m: number,
    k: number,
    cols: number,
    private readonly tile: { wx: number; wy: number; rows: number; cols: number; tk: number },
  ) {
    super(m, k, cols);
    this.vec4 = k % 4 === 0 && tile.tk % 4 === 0;
    this.variableComponents = [this.vec4 ? 4 : 1, 1];
    const tm = tile.wy * tile.rows;
    const tn = tile.wx * tile.cols;
    this.workgroupSize = [tile.wx, tile.wy, 1];
    this.dispatch = [Math.ceil(cols / tn), Math.ceil(m / tm), 1];
    this.shaderKey = `bf16mm_${tile.wx}_${tile.wy}_${tile.rows}_${tile.cols}_${tile.tk}_${this.vec4}`;
  }

  getUserCode(): string {
    const { wx, wy, rows: R, cols: C, tk: TK } = this.tile;
    const TM = wy * R;
    const TN = wx * C;
    const loadX = this.vec4
      ? `for (var i = tid; i < ${(TM * TK) / 4}; i += ${wx * wy}) {
          let r = i / ${TK / 4};
          let kk = (i % ${TK / 4}) * 4;
          let gr = row0 + r;
          let gk = k0 + kk;
          var v = vec4<f32>(0.0);
          if (gr < M && gk < K) { v = X[(gr * K + gk) / 4]; }
          xs[r * ${TK} + kk] = v.x;
          xs[r * ${TK} + kk + 1] = v.y;
          xs[r * ${TK} + kk + 2] = v.z;
          xs[r * ${TK} + kk + 3] = v.w;
        }`
      : `for (var i = tid; i < ${TM * TK}; i += ${wx * wy}) {
          let r = i / ${TK};
          let kk = i % ${TK};
          let gr = row0 + r;
          let gk = k0 + kk;
          var v = 0.0;
          if (gr < M && gk < K) { v = X[gr * K + gk]; }
          xs[i] = v;
        }`;
    return `
      var<workgroup> xs : array<f32, ${TM * TK}>;
      var<workgroup> ws : array<f32, ${TK * TN}>;
      ${WORD_AT}

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let tid = ty * ${wx} + tx;
        let row0 = i32(workgroupId.y) * ${TM};
        let col0 = i32(workgroupId.x) * ${TN};
        let M = uniforms.m;
        let K = uniforms.k;
        let N = outCols();
        var acc : array<array<f32, ${C}>, ${R}>;
        for (var k0 = 0; k0 < K; k0 += ${TK}) {
          ${loadX}
          for (var i = tid; i < ${(TK * TN) / 2}; i += ${wx * wy}) {
            let kk = i / ${TN / 2};
            let j = i % ${TN / 2};
            let gk = k0 + kk;
            let gc = col0 + 2 * j;
            var lo = 0.0;
            var hi = 0.0;
            if (gk < K && gc < N) {
              let u = bitcast<u32>(W[wordAt(gk, gc)]);
              lo = bitcast<f32>(u << 16u);
              if (gc + 1 < N) { hi = bitcast<f32>(u & 0xffff0000u); }
            }
            ws[kk * ${TN} + 2 * j] = lo;
            ws[kk * ${TN} + 2 * j + 1] = hi;
          }
          workgroupBarrier();
          for (var kk = 0; kk < ${TK}; kk++) {
            var a : array<f32, ${R}>;
            for (var r = 0; r < ${R}; r++) { a[r] = xs[(ty * ${R} + r) * ${TK} + kk]; }
            for (var c = 0; c < ${C}; c++) {
              let w = ws[kk * ${TN} + tx * ${C} + c];
              for (var r = 0; r < ${R}; r++) { acc[r][c] = acc[r][c] + a[r] * w; }
            }
          }
          workgroupBarrier();
        }
        for (var r = 0; r < ${R}; r++) {
          let gr = row0 + ty * ${R} + r;
          for (var c = 0; c < ${C}; c++) {
            let gc = col0 + tx * ${C} + c;
            if (gr < M && gc < N) { result[gr * N + gc] = acc[r][c]; }
          }
        }
      }
    `;
  }
}

/** The program for one product (`cols` output columns) with the kernel the table chose. */
export function matMulProgram(k: MatMulKernel, m: number, kk: number, cols: number): MatMulProgramBase {
  if (k.kind === 'gemv') return new GemvProgram(m, kk, cols, k);
  if (k.kind === 'tiled') return new TiledProgram(m, kk, cols, k);
  return new LegacyProgram(m, kk, cols, k);
}

// Which program multiplies a given shape: a table of rules keyed by the product's shape (M rows of x, K, N),
// one default table per adapter family, replaceable at run time by MATFORMER_MATMUL (or setMatMulTable) so
// tile choices can be switched on a GPU machine without rebuilding.
//
// Grammar (first matching rule wins; the last rule should be `*`):
//   table  := rule (',' rule)*          or a preset name: default | legacy
//   rule   := cond ':' kernel
//   cond   := '*' | term ('&' term)*     term := ('m' | 'n' | 'k') '<=' integer
//   kernel := gemv-WXxWY                 WX word columns (2·WX outputs) × WY slices of K per workgroup
//           | tiled-WXxWY-RxC-kTK        WX×WY threads, each R×C outputs (R, C multiples of 4), TK rows of K
//           | legacy-WXxWY-RxC-kTK       the first tiled program (kept to compare against on a GPU)
// e.g. MATFORMER_MATMUL='m<=8:gemv-8x32,m<=1024:tiled-16x16-4x4-k16,*:tiled-16x16-8x8-k8'
import { UserInputError } from '../../formats';

export type MatMulKernel =
  | { readonly kind: 'gemv'; readonly wx: number; readonly wy: number }
  | {
      readonly kind: 'tiled' | 'legacy';
      readonly wx: number;
      readonly wy: number;
      readonly rows: number;
      readonly cols: number;
      readonly tk: number;
    };

export interface MatMulRule {
  readonly maxM: number;
  readonly maxN: number;
  readonly maxK: number;
  readonly kernel: MatMulKernel;
}

/** Workgroup memory every program stays within (WebGPU's guaranteed minimum). */
export const WORKGROUP_BYTES = 16384;
/** Rows of x one gemv workgroup carries (its partial sums live in workgroup memory). */
export const GEMV_MAX_ROWS = 8;

const PRESETS: Record<'gpu' | 'software', Record<'default' | 'legacy', string>> = {
  // Discrete GPUs. gemv: decode and the MMLU head (bandwidth-bound: many workgroups, coalesced 32-word rows
  // of W, K split over WY threads); 64×64 tiles while a 128×128 grid would not fill the card; 128×128 tiles
  // with 8×8 outputs per thread for big prefills.
  gpu: {
    default: 'm<=8:gemv-16x16,m<=1024:tiled-16x16-4x4-k16,n<=256:tiled-16x16-4x4-k16,*:tiled-16x16-8x8-k8',
    legacy: 'm<=8:legacy-64x1-4x4-k8,*:legacy-16x16-4x4-k16',
  },
  // CPU adapters (lavapipe, SwiftShader): a workgroup runs on one core, so fewer threads per workgroup.
  software: {
    default: 'm<=8:gemv-8x8,*:tiled-8x8-4x4-k16',
    legacy: 'm<=8:legacy-32x1-4x4-k16,*:legacy-8x8-4x4-k16',
  },
};

/** Bytes of workgroup memory a kernel uses (float32). */
export function kernelWorkgroupBytes(k: MatMulKernel): number {
  if (k.kind === 'gemv') return 4 * k.wy * GEMV_MAX_ROWS * 2 * k.wx;
  return 4 * (k.wy * k.rows * k.tk + k.tk * k.wx * k.cols);
}

function bad(source: string, text: string, why: string): never {
  throw new UserInputError(`${source}: ${JSON.stringify(text)} ${why}`);
}

export function parseKernel(text: string, source = 'MATFORMER_MATMUL'): MatMulKernel {
  const g = /^gemv-(\d+)x(\d+)$/.exec(text);
  let k: MatMulKernel;
  if (g) {
    k = { kind: 'gemv', wx: Number(g[1]), wy: Number(g[2]) };
  } else {
    const t = /^(tiled|legacy)-(\d+)x(\d+)-(\d+)x(\d+)-k(\d+)$/.exec(text);
    if (!t)
      bad(source, text, 'is not a kernel (expected gemv-WXxWY, tiled-WXxWY-RxC-kTK or legacy-WXxWY-RxC-kTK)');
    k = {
      kind: t[1] === 'legacy' ? 'legacy' : 'tiled',
      wx: Number(t[2]),
      wy: Number(t[3]),
      rows: Number(t[4]),
      cols: Number(t[5]),
      tk: Number(t[6]),
    };
  }
  const threads = k.wx * k.wy;
  if (threads < 1 || threads > 256) bad(source, text, 'needs 1 to 256 threads per workgroup');
  if (kernelWorkgroupBytes(k) > WORKGROUP_BYTES)
    bad(
      source,
      text,
      `needs ${kernelWorkgroupBytes(k)} bytes of workgroup memory (at most ${WORKGROUP_BYTES})`,
    );
  if (k.kind === 'tiled') {
    const { rows, cols, tk } = k;
    if (rows % 4 || cols % 4 || tk % 4 || rows < 4 || cols < 4 || tk < 4)
      bad(source, text, 'needs rows, columns and TK that are multiples of 4');
    if (((k.wy * rows * tk) / 4) % threads || ((tk * k.wx * cols) / 2) % threads)
      bad(source, text, 'needs tiles that split evenly over its threads');
  }
  if (k.kind === 'legacy' && (k.cols % 2 || k.tk < 1 || k.rows < 1))
    bad(source, text, 'needs an even column count');
  return k;
}

export function parseTable(
  text: string,
  family: 'gpu' | 'software',
  source = 'MATFORMER_MATMUL',
): MatMulRule[] {
  const preset = PRESETS[family][text.trim() as 'default' | 'legacy'];
  const spec = preset ?? text;
  const rules = spec
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r.length > 0)
    .map((r): MatMulRule => {
      const colon = r.indexOf(':');
      if (colon < 0) bad(source, r, 'is not a rule (expected cond:kernel, e.g. m<=8:gemv-16x16)');
      const cond = r.slice(0, colon).trim();
      const bounds = { m: Infinity, n: Infinity, k: Infinity };
      if (cond !== '*') {
        for (const term of cond.split('&')) {
          const t = /^\s*([mnk])\s*<=\s*(\d+)\s*$/.exec(term);
          if (!t) bad(source, r, 'has a condition that is not * or m|n|k<=integer joined by &');
          bounds[t[1] as 'm' | 'n' | 'k'] = Number(t[2]);
        }
      }
      return {
        maxM: bounds.m,
        maxN: bounds.n,
        maxK: bounds.k,
        kernel: parseKernel(r.slice(colon + 1).trim(), source),
      };
    });
  const last = rules[rules.length - 1];
  if (!last || last.maxM !== Infinity || last.maxN !== Infinity || last.maxK !== Infinity)
    bad(source, text, 'must end with a rule for every shape (*:kernel)');
  return rules;
}

let family: 'gpu' | 'software' = 'gpu';
let table: MatMulRule[] = parseTable('default', 'gpu');
let tableText = 'default';

/**
 * Chooses the table for the active adapter (called when the webgpu backend starts): MATFORMER_MATMUL if set,
 * else the family's default.
 */
export function setTileFamily(software: boolean): void {
  family = software ? 'software' : 'gpu';
  setMatMulTable(process.env.MATFORMER_MATMUL ?? 'default');
}

/** Replaces the table (a preset name or rules, see the grammar above); a bad table is a UserInputError. */
export function setMatMulTable(text: string, source = 'MATFORMER_MATMUL'): void {
  table = parseTable(text, family, source);
  tableText = text;
}

/** The table now in use, as text (for results). */
export function matMulTable(): string {
  const preset = PRESETS[family][tableText.trim() as 'default' | 'legacy'];
  return preset ? `${tableText.trim()} (${preset})` : tableText;
}

/** The kernel for x [m, k] @ W [k, n]. */
export function kernelFor(m: number, k: number, n: number): MatMulKernel {
  for (const r of table) if (m <= r.maxM && n <= r.maxN && k <= r.maxK) return r.kernel;
  return table[table.length - 1]!.kernel;
}

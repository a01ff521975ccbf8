// The one guard every writing command goes through (logits, eval, slice, create-random, and whatever writes
// next). Before any long work it refuses an output that is, or is inside, one of the run's inputs, two outputs
// naming one file, an existing output without --force, a mount point, a folder it cannot write or that has no
// room; it takes a lock beside each output so a second run writing the same output refuses instead of
// interleaving; and it removes temporaries left beside the output by runs whose process is gone. Outputs are
// built as `.<name>.tmp-<pid>-<random>` beside the target and committed by a rename that re-checks the target:
// whatever appeared there meanwhile is never replaced without --force.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserInputError, errnoText, isErrnoError, naming } from './errors';
import { formatBytes } from './bytes';
import { kindOf } from './files';

export class OutputError extends UserInputError {
  override name = 'OutputError';
}

export interface OutputSpec {
  /** How the user named it, for messages: `--out`, `--predictions`. */
  readonly flag: string;
  readonly path: string;
  readonly kind: 'file' | 'folder';
  /** About how many bytes it will take (free-space check; default 1 MiB). */
  readonly bytes?: number;
  /**
   * A folder filled in place, file by file, each file committed on its own (`download` resumes into it):
   * an existing one is not refused; the lock, the checks and the free-space check still apply.
   */
  readonly inPlace?: boolean;
}

export interface InputSpec {
  readonly flag: string;
  /** A checkpoint or data folder, or an input file. */
  readonly path: string;
}

export interface GuardOptions {
  readonly outputs: readonly OutputSpec[];
  readonly inputs: readonly InputSpec[];
  /** Replace existing outputs (checked again at the final rename). */
  readonly force?: boolean;
  /** Other files this run writes beside its outputs (an eval journal): must not be one of the outputs. */
  readonly reserved?: readonly InputSpec[];
  /** One line per stale temporary or lock removed. */
  readonly onNotice?: (line: string) => void;
}

interface Target {
  readonly spec: OutputSpec;
  /** Real path of the parent folder + the output's name. */
  readonly real: string;
  readonly dir: string;
  readonly name: string;
  lock: string | null;
}

const TEMP_RE = /^\..+\.tmp-(\d+)-[0-9a-f]+(?:-old)?$/;
const DEFAULT_BYTES = 1 << 20;
/** A lock without a pid yet (its writer died between create and write) is stale after this long. */
const EMPTY_LOCK_STALE_MS = 60_000;

const active = new Set<OutputGuard>();
let exitHookInstalled = false;

/** Removes every live guard's temporaries and locks (for signal handlers about to exit). */
export function releaseAllOutputs(): void {
  for (const g of [...active]) g.release();
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

function realOrNull(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/** The pid of a temporary's owner, from its name, or null if it is not one of ours. */
export function tempOwner(name: string): number | null {
  const m = TEMP_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export class OutputGuard {
  private readonly targets = new Map<string, Target>();
  private readonly temps = new Set<string>();
  private readonly force: boolean;

  private constructor(opts: GuardOptions) {
    this.force = Boolean(opts.force);
  }

  /** Runs every check, takes the locks and cleans stale temporaries; throws OutputError on the first problem. */
  static acquire(opts: GuardOptions): OutputGuard {
    const g = new OutputGuard(opts);
    const resolved = opts.outputs.map((o) => resolveTarget(o));
    checkDistinct(resolved, opts.reserved ?? []);
    for (const t of resolved) checkTarget(t, opts.inputs, g.force);
    try {
      for (const t of resolved) {
        g.targets.set(t.spec.flag, t);
        t.lock = takeLock(t, opts.onNotice);
        active.add(g);
        checkSpace(t);
        removeStaleTemps(t.dir, opts.onNotice);
      }
    } catch (err) {
      g.release();
      throw err;
    }
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', releaseAllOutputs);
    }
    return g;
  }

  private target(flag: string): Target {
    const t = this.targets.get(flag);
    if (!t) throw new Error(`OutputGuard: no output ${flag}`);
    return t;
  }

  /** Where the output will be, after symlinked parent folders are resolved. */
  path(flag: string): string {
    return this.target(flag).real;
  }

  /** A fresh temporary path beside the output (removed on release unless committed). */
  temp(flag: string): string {
    const t = this.target(flag);
    const p = path.join(t.dir, `.${t.name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    this.temps.add(p);
    return p;
  }

  /** Builds a file output in a temporary and commits it. */
  async writeFile(flag: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = this.temp(flag);
    try {
      await naming(this.path(flag), () => write(tmp));
      this.commit(flag, tmp);
    } finally {
      this.discard(tmp);
    }
  }

  /**
   * Renames the finished temporary into place. Without --force nothing that appeared at the target since the
   * start is replaced: this run's output is kept under another name and an OutputError says where.
   */
  commit(flag: string, tmp: string): void {
    const t = this.target(flag);
    const at = lstatOrNull(t.real);
    if (this.force && at) {
      if (t.spec.kind === 'file' && !at.isDirectory()) fs.renameSync(tmp, t.real);
      else if (t.spec.kind === 'folder' && at.isDirectory() && !at.isSymbolicLink()) {
        const old = `${tmp}-old`;
        this.temps.add(old);
        fs.renameSync(t.real, old);
        fs.renameSync(tmp, t.real);
        fs.rmSync(old, { recursive: true, force: true });
      } else {
        this.conflict(
          t,
          tmp,
          `${t.spec.flag}: ${t.spec.path} became ${kindOf(at)} while this run was writing`,
        );
      }
    } else if (t.spec.kind === 'file') {
      // link() fails if the name exists: no window between the check and the commit.
      try {
        fs.linkSync(tmp, t.real);
        fs.unlinkSync(tmp);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') this.conflict(t, tmp);
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK'].includes(code ?? '')) throw err;
        if (lstatOrNull(t.real)) this.conflict(t, tmp);
        fs.renameSync(tmp, t.real);
      }
    } else {
      if (at && !(at.isDirectory() && fs.readdirSync(t.real).length === 0)) this.conflict(t, tmp);
      try {
        fs.renameSync(tmp, t.real); // fails on a non-empty folder or a file that appeared just now
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') this.conflict(t, tmp);
        throw err;
      }
    }
    this.temps.delete(tmp);
  }

  private conflict(t: Target, tmp: string, why?: string): never {
    let kept = `${t.real}.incoming-${process.pid}`;
    while (lstatOrNull(kept)) kept = `${t.real}.incoming-${process.pid}-${randomBytes(2).toString('hex')}`;
    fs.renameSync(tmp, kept);
    this.temps.delete(tmp);
    throw new OutputError(
      `${why ?? `${t.spec.flag}: ${t.spec.path} appeared while this run was writing`}; it was left untouched ` +
        `and this run's output is at ${kept}${this.force ? '' : ' (pass --force to replace)'}`,
    );
  }

  /** Removes a temporary that will not be committed (no-op if it was). */
  discard(tmp: string): void {
    if (!this.temps.delete(tmp)) return;
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  /** Removes uncommitted temporaries and the locks. Idempotent and synchronous (signal handlers call it). */
  release(): void {
    for (const tmp of this.temps) fs.rmSync(tmp, { recursive: true, force: true });
    this.temps.clear();
    for (const t of this.targets.values()) {
      if (!t.lock) continue;
      try {
        if (fs.readFileSync(t.lock, 'utf8').trim() === String(process.pid)) fs.unlinkSync(t.lock);
      } catch {
        // Already gone: nothing to release.
      }
      t.lock = null;
    }
    active.delete(this);
  }
}

function resolveTarget(spec: OutputSpec): Target {
  const abs = path.resolve(spec.path);
  const name = path.basename(abs);
  if (name === '' || abs === path.parse(abs).root) {
    throw new OutputError(`${spec.flag}: ${spec.path} is the root folder; name a file or folder inside it`);
  }
  const parent = path.dirname(abs);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(parent);
  } catch {
    st = undefined;
  }
  if (!st) throw new OutputError(`${spec.flag}: folder ${parent} does not exist`);
  if (!st.isDirectory()) throw new OutputError(`${spec.flag}: ${parent} is ${kindOf(st)}, not a folder`);
  const dir = fs.realpathSync(parent);
  return { spec, real: path.join(dir, name), dir, name, lock: null };
}

function checkDistinct(targets: readonly Target[], reserved: readonly InputSpec[]): void {
  const seen = new Map<string, string>();
  for (const t of targets) {
    const key = realOrNull(t.real) ?? t.real;
    const other = seen.get(key);
    if (other) throw new OutputError(`${t.spec.flag}: ${t.spec.path} names the same file as ${other}`);
    seen.set(key, t.spec.flag);
  }
  for (const r of reserved) {
    const abs = path.resolve(r.path);
    const key =
      realOrNull(abs) ?? path.join(realOrNull(path.dirname(abs)) ?? path.dirname(abs), path.basename(abs));
    const other = seen.get(key);
    if (other) throw new OutputError(`${other}: names the same file as the ${r.flag} ${r.path}`);
  }
}

function checkTarget(t: Target, inputs: readonly InputSpec[], force: boolean): void {
  const { flag, path: shown, kind } = t.spec;
  // A symlinked output resolves to where the bytes would go.
  const where = realOrNull(t.real) ?? t.real;
  for (const input of inputs) {
    const real = realOrNull(path.resolve(input.path));
    if (real === null) continue; // its reader reports it
    if (isInside(where, real) || isInside(t.real, real)) {
      throw new OutputError(
        `${flag}: ${shown} is ${where === real ? '' : 'inside '}the input ${input.flag} ${input.path}; choose another path`,
      );
    }
    if (isInside(real, where)) {
      throw new OutputError(
        `${flag}: ${shown} contains the input ${input.flag} ${input.path}; choose another path`,
      );
    }
  }
  const st = lstatOrNull(t.real);
  if (!st) return;
  const resolved = fs.statSync(t.real, { throwIfNoEntry: false }) ?? st;
  if (kind === 'file' && !resolved.isFile()) {
    throw new OutputError(`${flag}: ${shown} is ${kindOf(resolved)}; expected a file path`);
  }
  if (kind === 'folder') {
    if (!resolved.isDirectory() || st.isSymbolicLink()) {
      throw new OutputError(`${flag}: ${shown} is ${kindOf(st)}, not a folder`);
    }
  }
  const parent = fs.statSync(t.dir);
  if (resolved.dev !== parent.dev) {
    throw new OutputError(`${flag}: ${shown} is a mount point; name a new ${kind} inside it instead`);
  }
  if (kind === 'folder' && (t.spec.inPlace || fs.readdirSync(t.real).length === 0)) return;
  if (!force) throw new OutputError(`${flag}: ${shown} already exists; pass --force to replace it`);
}

function writeProblem(t: Target, err: unknown): unknown {
  if (!isErrnoError(err)) return err;
  return new OutputError(`${t.spec.flag}: cannot write in ${t.dir}: ${errnoText(err)}`);
}

function takeLock(t: Target, onNotice?: (line: string) => void): string {
  const lock = path.join(t.dir, `.${t.name}.lock`);
  let owner = NaN;
  // A few attempts: a stale lock is removed and the create retried (another run may win that race).
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lock, 'wx');
      try {
        fs.writeSync(fd, `${process.pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return lock;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw writeProblem(t, err);
    }
    let age: number;
    try {
      owner = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10);
      age = Date.now() - fs.statSync(lock).mtimeMs;
    } catch {
      continue; // it went away: try again
    }
    const stale = Number.isInteger(owner) ? !isAlive(owner) : age > EMPTY_LOCK_STALE_MS;
    if (!stale) break;
    fs.rmSync(lock, { force: true });
    onNotice?.(
      `removed the stale lock ${lock} of process ${Number.isNaN(owner) ? '?' : owner} (no longer running)`,
    );
  }
  throw new OutputError(
    `${t.spec.flag}: ${t.spec.path} is being written by another run` +
      `${Number.isInteger(owner) ? ` (process ${owner})` : ''}; wait for it to finish (lock ${lock})`,
  );
}

function checkSpace(t: Target): void {
  let free: number;
  try {
    const s = fs.statfsSync(t.dir);
    free = s.bavail * s.bsize;
  } catch {
    return; // not every file system reports it; the writes will say
  }
  const need = Math.max(t.spec.bytes ?? 0, DEFAULT_BYTES);
  if (free < need) {
    throw new OutputError(
      `${t.spec.flag}: ${t.dir} has ${formatBytes(free)} free; the output needs about ${formatBytes(need)}`,
    );
  }
}

/** Removes `.*.tmp-<pid>-*` entries in `dir` whose process is gone, one notice each. */
function removeStaleTemps(dir: string, onNotice?: (line: string) => void): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = tempOwner(name);
    if (pid === null || isAlive(pid)) continue;
    const p = path.join(dir, name);
    try {
      fs.rmSync(p, { recursive: true, force: true });
      onNotice?.(`removed ${p}, left by process ${pid} (no longer running)`);
    } catch {
      // Not ours to remove (permissions): leave it.
    }
  }
}

/**
 * Base of every error caused by the user's input (files, flags, configs). The CLI prints its message
 * as one line and exits with code 2; anything else is a bug and keeps its stack trace.
 */
export class UserInputError extends Error {
  override name = 'UserInputError';
}

/** The run was stopped by a signal (Ctrl-C); temporary outputs are gone. The CLI exits with 130. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/** What an errno means for the person at the keyboard; `machine` marks faults that are not their input. */
const ERRNO_TEXT: Record<string, { text: string; machine?: boolean }> = {
  ENOENT: { text: 'no such file or folder' },
  EACCES: { text: 'permission denied' },
  EPERM: { text: 'operation not permitted' },
  EROFS: { text: 'read-only file system' },
  ENOSPC: { text: 'no space left on the device' },
  EDQUOT: { text: 'disk quota exceeded' },
  EFBIG: { text: 'file too large for this file system' },
  EISDIR: { text: 'is a folder, expected a file' },
  ENOTDIR: { text: 'a part of the path is not a folder' },
  EEXIST: { text: 'already exists' },
  ENOTEMPTY: { text: 'folder is not empty' },
  EBUSY: { text: 'busy (a mount point or a file in use)' },
  EXDEV: { text: 'crosses file systems (a mount point?)' },
  ENAMETOOLONG: { text: 'name too long' },
  ELOOP: { text: 'too many symbolic links' },
  ENXIO: { text: 'no such device (a FIFO without a reader?)' },
  ETXTBSY: { text: 'file is busy' },
  EINVAL: { text: 'invalid argument for this file or file system' },
  ENOMEM: { text: 'out of memory', machine: true },
  EIO: { text: 'input/output error (failing disk?)', machine: true },
  EMFILE: { text: 'too many open files', machine: true },
  ENFILE: { text: 'too many open files in the system', machine: true },
  EAGAIN: { text: 'resource temporarily unavailable', machine: true },
};

/** A Node.js system error (fs, net): has an errno code such as ENOSPC. */
export function isErrnoError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    /^E[A-Z0-9]+$/.test((err as NodeJS.ErrnoException).code!)
  );
}

/**
 * One line for a system error, naming the path (the error's own, else `where`), and whether it is the
 * machine's fault (exit 1) rather than the user's (exit 2).
 */
export function describeErrno(
  err: NodeJS.ErrnoException & { code: string },
  where?: string,
): { line: string; machine: boolean } {
  const p = err.path ?? where;
  const text = errnoText(err);
  return { line: p ? `${p}: ${text}` : text, machine: ERRNO_TEXT[err.code]?.machine ?? false };
}

/** `no space left on the device (ENOSPC)`: the errno in words, without a path. */
export function errnoText(err: NodeJS.ErrnoException & { code: string }): string {
  const known = ERRNO_TEXT[err.code];
  return known ? `${known.text} (${err.code})` : err.message.split('\n')[0]!;
}

/** Runs `fn`, giving a system error that names no file the path `where` (writes through a handle name none). */
export async function naming<T>(where: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isErrnoError(err) && err.path === undefined) err.path = where;
    throw err;
  }
}

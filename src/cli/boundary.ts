// The CLI's one error boundary and its Ctrl-C handling. A user's mistake (UserInputError) or a file-system /
// resource error (EACCES, EROFS, ENOSPC, EISDIR, ...) becomes ONE line naming the path or flag: exit 2 when the
// user can fix it, 1 when it is the machine's fault (out of memory, I/O error). Anything else is a bug and keeps
// its stack. A signal removes every output's temporaries and locks before the process exits with 130.
import { InterruptedError, UserInputError, describeErrno, isErrnoError, releaseAllOutputs } from '../formats';

/** Exit status of a process ended by Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/** yargs' multi-line messages as one line that names the flag and what it accepts. */
export function yargsMessage(msg: string): string {
  const invalid = [...msg.matchAll(/Argument: ([^,]+), Given: (.*?), Choices: (.*)$/gm)];
  if (invalid.length > 0)
    return invalid.map(([, arg, given, choices]) => `--${arg}: ${given} is not one of ${choices}`).join('; ');
  const missing = /^Missing required arguments?: (.*)$/m.exec(msg);
  if (missing)
    return `${missing[1]!
      .split(', ')
      .map((a) => `--${a}`)
      .join(', ')}: required`;
  return msg.replace(/\s*\n\s*/g, '; ');
}

/** The line and exit code for an error that is not a bug, or null for a bug. */
export function describeFailure(err: unknown): { line: string; code: number } | null {
  if (err instanceof InterruptedError) return { line: `interrupted: ${err.message}`, code: EXIT_INTERRUPTED };
  if (err instanceof UserInputError) return { line: `error: ${err.message.split('\n')[0]}`, code: 2 };
  if (isErrnoError(err)) {
    const { line, machine } = describeErrno(err);
    return { line: `error: ${line}`, code: machine ? 1 : 2 };
  }
  if (
    err instanceof RangeError &&
    /allocation failed|Invalid (typed )?array length|Array buffer/i.test(err.message)
  )
    return { line: `error: out of memory (${err.message})`, code: 1 };
  return null;
}

let graceful = 0;
let controller = new AbortController();
let installed = false;

/**
 * First Ctrl-C: a command running inside `interruptible` is asked to stop (its signal aborts) and cleans up;
 * any other command, or a second Ctrl-C, removes temporaries and locks at once and exits 130.
 */
export function installInterruptHandlers(): void {
  if (installed) return;
  installed = true;
  const onSignal = () => {
    if (graceful > 0 && !controller.signal.aborted) {
      controller.abort();
      return;
    }
    releaseAllOutputs();
    process.stderr.write('interrupted: temporary outputs removed (an eval keeps its journal for --resume)\n');
    process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Runs long work that stops cleanly (after the current chunk) when the signal fires. */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (graceful === 0) controller = new AbortController();
  graceful++;
  try {
    return await work(controller.signal);
  } finally {
    graceful--;
  }
}

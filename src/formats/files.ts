// Input files are checked by type before they are opened: reading a FIFO with no writer blocks forever, and a
// folder or a device where a file is expected deserves one clear line, not an errno deep in a parser.
import * as fs from 'node:fs';

/** What is wrong with `file` as a regular input file, or null if it is one. */
export function fileProblem(file: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'ENOTDIR') return 'a part of the path is not a folder';
    return `cannot read (${code ?? String(err)})`;
  }
  if (st.isFile()) return null;
  return `is ${kindOf(st)}, expected a regular file`;
}

/** "a folder", "a FIFO (named pipe)", ...: for messages about something of the wrong type. */
export function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return st.isFile() ? 'a file' : 'not a regular file';
}

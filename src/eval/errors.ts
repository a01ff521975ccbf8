import { UserInputError } from '../formats';

/**
 * Bad evaluation input (data files, options, prediction files). The CLI prints `error: <message>` and exits 2,
 * so the message is always a single line that names the file (and line/row) and what was expected.
 */
export class EvalInputError extends UserInputError {
  override name = 'EvalInputError';
  constructor(message: string) {
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
  }
}

/** Quote a value from the input for an error message: one line, bounded length. */
export function quote(value: unknown, max = 60): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > max ? `${s.slice(0, max - 4)}…${s.slice(-3)}` : s;
}

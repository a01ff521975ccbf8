// The CLI is a thin layer: parse flags, call a module's API, print. Errors go through one boundary
// (./boundary): user input and file-system errors become one line on stderr; a bug keeps its stack.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserInputError } from '../formats';
import { describeFailure, installInterruptHandlers, yargsMessage } from './boundary';
import { commands } from './commands';
import { HubTransferError } from '../hub';

export async function main(argv: string[]): Promise<number> {
  installInterruptHandlers();
  try {
    let y = yargs(argv)
      .scriptName('matformer-lab')
      .usage('$0 <command> [options]\n\nMatFormer model surgery for Gemma 3n.')
      .strict()
      .demandCommand(1, 'give a command (see --help)')
      .recommendCommands()
      .wrap(Math.min(110, process.stdout.columns ?? 110))
      .fail((msg, err) => {
        if (err) throw err;
        throw new UserInputError(yargsMessage(msg));
      })
      .help();
    for (const c of commands) y = y.command(c);
    await y.parseAsync();
  } catch (err) {
    // The network or the Hub failed (after retries): one line, no stack; the same command resumes.
    if (err instanceof HubTransferError) {
      process.stderr.write(`error: ${err.message.split('\n')[0]}\n`);
      return 1;
    }
    const failure = describeFailure(err);
    if (failure === null) throw err;
    process.stderr.write(failure.line + '\n');
    return failure.code;
  }
  return 0;
}

export function run(): void {
  main(hideBin(process.argv)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}

if (require.main === module) run();

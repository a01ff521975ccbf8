// Errors from the Hub. Access problems (gated, not found, bad token, bad revision) are the user's input:
// one line, exit 2. Network failures that outlast the retries and corrupt transfers are not: one line,
// exit 1, and the same command resumes later.
import { UserInputError } from '../formats';

/** The repository, revision, file or token the user named cannot be used. */
export class HubAccessError extends UserInputError {
  override name = 'HubAccessError';
}

/** The Hub (or the network) failed after the retries, or sent bytes that do not match their checksum. */
export class HubTransferError extends Error {
  override name = 'HubTransferError';
  /** Printed as one line by the CLI, without a stack: it is not a bug of ours. */
  readonly oneLine = true;
}

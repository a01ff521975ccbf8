/**
 * Base of every error caused by the user's input (files, flags, configs). The CLI prints its message
 * as one line and exits with code 2; anything else is a bug and keeps its stack trace.
 */
export class UserInputError extends Error {
  override name = 'UserInputError';
}

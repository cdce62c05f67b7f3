/**
 * An error the user can cause and fix: bad input files, impossible requests.
 * Its message is one line that names the file, the field or value, and what was expected;
 * the CLI prints just that line and exits non-zero.
 */
export class TesseraError extends Error {
  override name = 'TesseraError';
}

export function fail(message: string): never {
  throw new TesseraError(message);
}

// POSIX errors of the /zone mount: the file system throws FsError (or passes on the
// coded errors of GridFs), the FUSE adapter answers the kernel with the errno.
import { constants } from 'node:os';

type ErrnoName = keyof typeof constants.errno;

export class FsError extends Error {
  constructor(readonly code: ErrnoName, message: string) {
    super(`${code}: ${message}`);
    this.name = 'FsError';
  }
}

/** The negative errno FUSE expects for a failure with a POSIX `code`; null for any other failure. */
export function errnoOf(err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !Object.hasOwn(constants.errno, code)) return null;
  return -constants.errno[code as ErrnoName];
}

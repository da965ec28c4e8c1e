// POSIX errors of the /zone mount: the file system and GridFs throw FsError (see
// contract.ts), the FUSE adapter answers the kernel with the errno.
import { constants } from 'node:os';
import type { ErrnoName } from '../interfaces.ts';

/** The negative errno FUSE expects for a failure with a POSIX `code`; null for any other failure. */
export function errnoOf(err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !Object.hasOwn(constants.errno, code)) return null;
  return -constants.errno[code as ErrnoName];
}

// How every `zone` command ends: exit 0 when it did what was asked, 1 when the input
// was refused or invalid, 2 for a usage mistake; errors are one line on stderr,
// naming the file and the field, never a stack trace.
import { readFile } from 'node:fs/promises';
import { ZoneError } from '../lib/errors.ts';

export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** A failure already phrased for the user. */
export class CliFailure extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.refused) {
    super(message);
    this.name = 'CliFailure';
  }
}

/** `FILE: /field: reason` for a ZoneError about a file. */
export function errorLine(err: ZoneError, file?: string): string {
  return [file, err.field, err.message].filter(Boolean).join(': ');
}

/** Runs `fn`, turning a ZoneError into a CliFailure that names `file`. */
export function inFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ZoneError) throw new CliFailure(errorLine(err, file));
    throw err;
  }
}

function report(err: unknown): void {
  const line = err instanceof CliFailure ? err.message
    : err instanceof ZoneError ? errorLine(err)
      : `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
  process.stderr.write(`zone: ${line.split('\n')[0]}\n`);
  process.exitCode = err instanceof CliFailure ? err.exitCode : EXIT.refused;
}

/** Wraps a commander action so that its failures are reported as one line with the right exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => unknown): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      report(err);
    }
  };
}

/** Reads a file, or stdin for `-`; a missing file is a refusal naming it. */
export async function readInput(path: string): Promise<Buffer> {
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(path);
  } catch (err) {
    throw new CliFailure(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

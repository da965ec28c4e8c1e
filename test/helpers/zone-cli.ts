// Runs the real `zone` command (cli/zone.sh) as a child process, as a user would.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ZONE = fileURLToPath(new URL('../../cli/zone.sh', import.meta.url));

export interface ZoneRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `zone ARGS...` in `cwd`, feeding `input` on stdin; resolves with the exit code and output (never rejects on exit != 0). */
export function runZone(args: string[], options: { cwd: string; input?: string; timeoutMs?: number }): Promise<ZoneRun> {
  return new Promise((resolve, reject) => {
    const child = execFile(ZONE, args, { cwd: options.cwd, timeout: options.timeoutMs ?? 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      if (code === null) reject(err);
      else resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

// Runs the engine's tools (ip, wg, nsenter). Secrets only ever travel on stdin, so a
// command line is safe to put in an error; stderr is trimmed and kept short.
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly command: string[], readonly exitCode: number | null, readonly stderr: string) {
    super(`${command.join(' ')} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim().slice(0, 500) || 'no message'}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. */
  input?: string;
  timeoutMs?: number;
}

export function runCommand(command: string[], options: RunOptions = {}): Promise<string> {
  const [file, ...args] = command;
  if (!file) throw new RangeError('runCommand needs a command');
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // A timer of our own, not spawn's `timeout`: Node clears that one only on an exit, which a
    // command that could not start (ENOENT) never has, and the process then lived on for
    // timeoutMs (`zone cluster up --vm` without modinfo hung 10 minutes after its error).
    // SIGKILL: a tool that hangs (on a FIFO, a dead netns) may ignore SIGTERM.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(command, null, e.message));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else if (timedOut) reject(new CommandError(command, null, `did not finish within ${timeoutMs / 1000} s`));
      else reject(new CommandError(command, code, Buffer.concat(err).toString('utf8')));
    });
    child.stdin.on('error', () => { /* the exit status tells what went wrong */ });
    child.stdin.end(options.input ?? '');
  });
}

/** The command run inside the network namespace at `nsPath` (e.g. /var/run/netns/X, /proc/PID/ns/net). */
export function inNamespace(nsPath: string | null, command: string[]): string[] {
  return nsPath ? ['nsenter', `--net=${nsPath}`, '--', ...command] : command;
}

/**
 * The command with its stdin behind a real pipe. Node gives children a socket as stdin,
 * and tools that open /dev/stdin by path (`wg ... private-key /dev/stdin`) cannot open a
 * socket; `cat` turns it into a pipe, so a secret still never touches a file.
 */
export function throughPipe(command: string[]): string[] {
  return ['sh', '-c', 'cat | "$@"', 'sh', ...command];
}

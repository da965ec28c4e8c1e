// The serial console: virtlogd appends everything the guest prints to a log file (logs()),
// and qemu listens on a unix socket for one client (attach(): stdin and stdout). A second
// serial port is the control line: one line there asks the guest init to stop its command.
import { createConnection } from 'node:net';
import { open, stat } from 'node:fs/promises';
import { PassThrough, Writable, type Readable } from 'node:stream';
import type { AttachedStreams, LogOptions, TerminalSession } from '../contract.ts';

const FOLLOW_POLL_MS = 250;
const TAIL_READ_BYTES = 1 << 20;

/** The last `lines` lines of `text` (all when undefined). */
export function tailLines(text: string, lines: number | undefined): string {
  if (lines === undefined) return text;
  if (lines <= 0) return '';
  const parts = text.split('\n');
  const trailing = parts.at(-1) === '' ? 1 : 0;
  return parts.slice(Math.max(0, parts.length - trailing - lines)).join('\n');
}

/** The end of a file (at most `maxBytes`), '' when it does not exist. */
export async function readFileEnd(path: string, maxBytes: number): Promise<{ text: string; size: number }> {
  const handle = await open(path, 'r').catch(() => null);
  if (!handle) return { text: '', size: 0 };
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return { text: buffer.toString('utf8'), size };
  } finally {
    await handle.close();
  }
}

/** The console log as a stream: its tail, then (follow) what is appended until the reader destroys it. */
export async function consoleLogStream(path: string, options: LogOptions): Promise<Readable> {
  const out = new PassThrough();
  const { text, size } = await readFileEnd(path, options.tail === undefined ? Number.MAX_SAFE_INTEGER : TAIL_READ_BYTES);
  out.write(tailLines(text, options.tail));
  if (!options.follow) {
    out.end();
    return out;
  }
  let offset = size;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void readFrom(path, offset).then((chunk) => {
      if (chunk.data.length > 0 && !out.destroyed) out.write(chunk.data);
      offset = chunk.next;
    }).finally(() => { busy = false; });
  }, FOLLOW_POLL_MS);
  out.on('close', () => clearInterval(timer));
  return out;
}

async function readFrom(path: string, offset: number): Promise<{ data: Buffer; next: number }> {
  const size = await stat(path).then((s) => s.size, () => 0);
  // virtlogd rotated or truncated it: start again from the beginning of the new file.
  if (size < offset) return readFrom(path, 0);
  if (size === offset) return { data: Buffer.alloc(0), next: offset };
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(Math.min(size - offset, TAIL_READ_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    return { data: buffer.subarray(0, bytesRead), next: offset + bytesRead };
  } finally {
    await handle.close();
  }
}

/** Connects to the console socket; one client at a time (qemu's chardev server). */
export function attachConsole(socketPath: string): Promise<AttachedStreams> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({ stdin: socket, stdout: socket });
    });
    socket.once('error', reject);
  });
}

/** Asks the guest init to stop its command; best effort (a guest with its own OS has no listener). */
export function requestStop(controlSocket: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = createConnection(controlSocket);
    const done = (): void => {
      socket.destroy();
      resolve();
    };
    socket.once('connect', () => socket.end('stop\n', done));
    socket.once('error', done);
    socket.setTimeout(2000, done);
  });
}

/**
 * The serial console as a terminal: what the guest printed (the log's last lines, then
 * as it comes) and, when the console socket is free (no pipe holds it), keystrokes to
 * the guest. A console socket held elsewhere leaves a read-only terminal.
 */
export async function serialTerminal(logPath: string, socketPath: string): Promise<TerminalSession & { readOnly: boolean }> {
  const output = await consoleLogStream(logPath, { follow: true, tail: 200 });
  const attached = await attachConsole(socketPath).catch(() => null);
  if (attached) {
    // The socket echoes what the log already carries.
    attached.stdout.resume();
    output.once('close', () => attached.stdin.destroy());
  }
  const input = attached?.stdin ?? new Writable({ write: (_chunk, _encoding, done) => done() });
  return { input, output, resize: async () => undefined, readOnly: !attached };
}

// A VM's piped stdin and stdout: two virtio-serial ports (domain-xml.ts), each a unix
// socket qemu listens on for one client. ensure() connects to both right after the domain
// starts, seconds before the guest's command does, and keeps them until attach() takes
// them: the guest's writes to a port nobody holds block (nothing is lost), and a stdin
// port nobody holds reads as EOF.
//
// The end of stdout: qemu may still hold bytes of the port when the guest powers off, so
// the guest init does not power off at once. It prints how many bytes its command wrote
// (`zone: stdout N`, from the port's debugfs counters) on the console, and waits until the
// host lets go of the port; the holder lets go once it has received those N bytes, and
// that ends the stdout stream.
import { createConnection, type Socket } from 'node:net';
import { stat } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { readFileEnd } from './console.ts';
import { stdoutCountFromConsole } from './guest-init.ts';

/** How often the holder looks at the console for the byte count; at most this late at the end. */
const COUNT_POLL_MS = 200;
/** The console's end that is read for the count (it is one of the last lines while the guest waits). */
const COUNT_SCAN_BYTES = 4096;
/** Node's buffer between the port and the reader; past it, qemu (then the guest's write) waits. */
const STDOUT_BUFFER_BYTES = 1 << 20;

export function connectPort(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Holds the stdout port of a guest that just started: every byte its command writes,
 * then the end (once the count it printed on `consoleLog` after now was received, or
 * when qemu closes the port).
 */
export async function holdStdoutPort(socketPath: string, consoleLog: string): Promise<Readable> {
  // The console is appended across boots: only what this boot prints counts.
  const since = await stat(consoleLog).then((s) => s.size, () => 0);
  const socket = await connectPort(socketPath);
  const out = new PassThrough({ highWaterMark: STDOUT_BUFFER_BYTES });
  let received = 0;
  let expected: number | null = null;
  let looking = false;
  const finish = (): void => {
    clearInterval(timer);
    socket.unpipe(out);
    // The guest init waits for this before it powers off.
    socket.destroy();
    if (!out.writableEnded) out.end();
  };
  const check = (): void => {
    if (expected !== null && received >= expected) finish();
  };
  const timer = setInterval(() => {
    if (looking || expected !== null) return;
    looking = true;
    void readFileEnd(consoleLog, COUNT_SCAN_BYTES).then(({ text, size }) => {
      // virtlogd rotated it: the whole tail is this boot's.
      const fresh = size < since ? text : text.slice(Math.max(0, text.length - (size - since)));
      const count = stdoutCountFromConsole(fresh);
      // Unknown: the guest did not wait either, and the port's close is the end.
      if (count === 'unknown') clearInterval(timer);
      else if (count !== null) {
        expected = count;
        check();
      }
    }, () => undefined).finally(() => { looking = false; });
  }, COUNT_POLL_MS);
  socket.pipe(out);
  // After pipe's own listener: the chunk is in `out` when the count is checked.
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    check();
  });
  socket.on('close', () => {
    clearInterval(timer);
    if (!out.writableEnded && !out.destroyed) out.end();
  });
  socket.on('error', (err) => out.destroy(err));
  out.on('close', () => {
    clearInterval(timer);
    socket.destroy();
  });
  return out;
}

// The fifo-waiters helper (fifo-waiters.c, built by scripts/setup-host) as a child
// process: its lines become reports of threads that wait in an open of a FIFO. It dies
// with its stdin, so an appliance that crashes leaves none behind. It looks often only
// for a while after a poke (a FIFO of a /zone mount was looked up: an open may follow),
// and seldom otherwise: a look reads a file per thread of the host.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { waiterReportOf, type WaiterReport } from './protocol.ts';

/** Where scripts/setup-host installs the helper. */
export const FIFO_WAITERS_PATH = '/usr/local/lib/zone/fifo-waiters';
/** How often the helper looks at the host's threads after a poke: the most a join waits for being seen. */
const SCAN_INTERVAL_MS = 20;
/** How often it looks otherwise: for an open that no lookup of this node announced (a FIFO reopened through /proc/PID/fd). */
const IDLE_SCAN_MS = 5000;
/** How long a poke keeps it looking often. */
const ACTIVE_MS = 10_000;

export interface FifoWaiters {
  /** A FIFO was looked up: a thread may be about to wait in its open. */
  poke(): void;
  stop(): Promise<void>;
}

export function watchFifoWaiters(command: string, logger: Logger, onReport: (report: WaiterReport) => void): FifoWaiters {
  const child: ChildProcess = spawn(command, [String(SCAN_INTERVAL_MS), String(IDLE_SCAN_MS), String(ACTIVE_MS)], { stdio: ['pipe', 'pipe', 'pipe'] });
  // An EPIPE of a poke to a helper that died is told by its exit, logged below.
  child.stdin!.on('error', () => undefined);
  let stopping = false;
  child.on('error', (err) => logger.error({ err, command }, 'fifos: the fifo-waiters helper could not run; FIFOs join openers of one node only'));
  child.on('exit', (code, signal) => {
    if (!stopping) logger.error({ code, signal, command }, 'fifos: the fifo-waiters helper ended; FIFOs join openers of one node only');
  });
  child.stderr!.on('data', (chunk: Buffer) => logger.warn({ command, stderr: chunk.toString().slice(0, 500) }, 'fifos: fifo-waiters said'));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const report = waiterReportOf(line);
    if (report) onReport(report);
    else logger.warn({ line: line.slice(0, 200) }, 'fifos: fifo-waiters gave a line it should not');
  });
  // A poke within the first quarter of the last one's window changes nothing worth a write.
  let pokedAt = -Infinity;
  return {
    poke() {
      const now = performance.now();
      if (stopping || now - pokedAt < ACTIVE_MS / 4 || !child.stdin!.writable) return;
      pokedAt = now;
      child.stdin!.write('\n');
    },
    async stop() {
      if (stopping || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      await exited;
    },
  };
}

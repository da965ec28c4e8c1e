// Processes the node started and stops again by PID (nats-server, wireguard-go, a
// cluster's appliances). PIDs are reused: every step asks `stillOurs` whether the PID
// is still the process meant before it signals or waits any further.
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** How long a process may take to go after SIGKILL. */
const KILL_WAIT_MS = 5000;

/** The state letter in /proc/PID/stat (R, S, Z, ...); null when there is no such process. */
async function processState(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** The PID runs: it exists and is not a zombie (which has exited and only waits for its parent). */
export async function processRuns(pid: number): Promise<boolean> {
  return ![null, 'Z'].includes(await processState(pid));
}

/** The PID's command line, its arguments split; empty when there is no such process. */
export async function commandLine(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
}

/** Sends `name` to `pid`; one that is gone already is nothing to signal. */
export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Calls `done` every `intervalMs` until it says true (-> true) or `timeoutMs` passed (-> false). */
export async function pollUntil(done: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= deadline) return false;
    await delay(intervalMs);
  }
}

/**
 * SIGTERM, and SIGKILL when it still runs after `graceMs`. True once `stillOurs` says
 * false (it ended, or the PID is not the process meant any more); false when it still
 * runs a while after SIGKILL.
 */
export async function stopProcess(pid: number, stillOurs: () => Promise<boolean>, graceMs: number, intervalMs = 50): Promise<boolean> {
  for (const [name, waitMs] of [['SIGTERM', graceMs], ['SIGKILL', KILL_WAIT_MS]] as const) {
    signal(pid, name);
    if (await pollUntil(async () => !(await stillOurs()), waitMs, intervalMs)) return true;
  }
  return false;
}

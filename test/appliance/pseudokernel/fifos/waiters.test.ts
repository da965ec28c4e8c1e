// The fifo-waiters helper itself (fifo-waiters.c, built by scripts/setup-host): it reports
// a thread that waits in an open of a FIFO, looks at the host's threads often only after a
// poke on its stdin, and keeps looking while a thread it reported still waits. The helper
// and the waiting reader run in a PID namespace of their own (its own /proc): a FIFO
// another test waits on meanwhile would keep the helper looking, as it should.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { FIFO_WAITERS_PATH } from '../../../../appliance/pseudokernel/fifos/waiters.ts';
import { waitFor } from '../../../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-fifo-waiters-'));
const children: ChildProcess[] = [];
t.teardown(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const wchan = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return '';
  }
};
/** The host pid of the one child of `pid` (unshare and nsenter fork what they run). */
const childOf = (pid: number) => Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]);

t.test('an idle helper looks again only when poked, and then until the thread it reported waits no more', async (t) => {
  const fifo = join(dir, 'p');
  await promisify(execFile)('mkfifo', [fifo]);
  // Interval 20 ms; idle: one look at the start, the next after 10 minutes; a poke keeps it looking for 1 ms only.
  const helper = spawn('unshare', ['--pid', '--fork', '--mount-proc', FIFO_WAITERS_PATH, '20', '600000', '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(helper);
  let out = '';
  helper.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((resolve) => helper.once('exit', resolve));
  const helperPid = await waitFor(() => childOf(helper.pid!) || null, { what: 'the helper in its namespace', timeoutMs: 10_000, intervalMs: 10 });

  // The reader in the helper's namespace; it says its pid there, which the helper reports.
  const reader = spawn('nsenter', ['--target', String(helperPid), '--pid', '--mount', '--', 'sh', '-c', 'echo $$; exec 3< "$1"', 'sh', fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(reader);
  let said = '';
  reader.stdout!.on('data', (d: Buffer) => (said += d.toString()));
  const pid = await waitFor(() => Number(said.trim()) || null, { what: 'the reader to say its pid', timeoutMs: 10_000, intervalMs: 10 });
  const hostPid = childOf(reader.pid!);
  await waitFor(() => wchan(hostPid) === 'wait_for_partner', { what: 'the reader to wait in its open', timeoutMs: 10_000, intervalMs: 10 });
  // 15 of its active intervals: an idle helper has not looked.
  await delay(300);
  t.notMatch(out, new RegExp(`^wait ${pid} `, 'm'), 'not seen without a poke');

  helper.stdin!.write('\n');
  await waitFor(() => new RegExp(`^wait ${pid} \\d+ R `, 'm').test(out), { what: 'the wait to be reported after the poke', timeoutMs: 10_000, intervalMs: 10 });

  // Long after the poke's 1 ms: the reported thread keeps it looking, so its end is seen.
  const writer = await open(fifo, 'w');
  await writer.close();
  await waitFor(() => new RegExp(`^done ${pid}$`, 'm').test(out), { what: 'the end of the wait to be reported', timeoutMs: 10_000, intervalMs: 10 });

  helper.stdin!.end();
  await exited;
  t.equal(helper.exitCode, 0, 'it ends with its stdin');
});

t.test('bad arguments are refused by name', async (t) => {
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(FIFO_WAITERS_PATH, ['20', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (c) => resolve({ code: c, stderr: err }));
  });
  t.equal(code, 2);
  t.match(stderr, /argument 2 \(milliseconds\) must be 1\.\.600000, not 0/);
});

// tap runs test files side by side (package.json's tap.jobs), and on a shared machine other
// checkouts run theirs too. A file that uses a fixed machine-wide resource it cannot name
// per process (a local cluster: its name is at most 6 characters, its subnet fixed) holds a
// lock named for that resource for its whole run: two runs of it wait for each other
// instead of failing on "already exists"; every other file still runs beside them.
import { spawn } from 'node:child_process';
import t from 'tap';

/**
 * Waits (at most `timeoutMs`) for the lock `name` (/tmp/zone-test-NAME.lock), then holds
 * it until this test file ends. flock(1) holds it in a child whose stdin is a pipe from
 * this process: when the file ends (teardown) or dies however it dies, the pipe closes,
 * the child exits and the lock is free again. After a wait, the file's timeout (tap's,
 * $TAP_TIMEOUT) starts again from when the lock is held: the wait does not count.
 */
export async function holdExclusive(name: string, timeoutMs = 10 * 60_000): Promise<void> {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`lock name "${name}": lower-case letters, digits and dashes`);
  const path = `/tmp/zone-test-${name}.lock`;
  const started = Date.now();
  const holder = spawn('flock', ['--exclusive', '--wait', String(Math.ceil(timeoutMs / 1000)), path, 'sh', '-c', 'echo held; exec cat > /dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => holder.once('exit', resolve));
  t.teardown(async () => {
    holder.ref();
    holder.stdin.end();
    await exited;
  });
  const held = await new Promise<boolean>((resolve, reject) => {
    holder.once('error', reject);
    holder.stdout.once('data', () => resolve(true));
    void exited.then(() => resolve(false));
  });
  if (!held) throw new Error(`waited ${timeoutMs} ms for ${path}: another test run held it all that time`);
  const waited = Date.now() - started;
  if (waited > 1000) {
    t.comment(`waited ${Math.round(waited / 1000)} s for ${path}`);
    t.setTimeout(Number(process.env.TAP_TIMEOUT ?? 30) * 1000);
  }
  // Holding the lock is no reason for this process to stay alive.
  holder.unref();
  for (const stream of [holder.stdin, holder.stdout]) (stream as unknown as { unref?: () => void }).unref?.();
}

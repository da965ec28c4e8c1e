// The engine tools' runner is bounded in time: a command that hangs is killed (SIGKILL,
// which it cannot ignore) and the error says so.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCommand } from '../../lib/exec.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-exec-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a command blocked on a FIFO is killed at its timeout', async (t) => {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const started = Date.now();
  await t.rejects(runCommand(['cat', fifo], { timeoutMs: 300 }), { name: 'CommandError', message: new RegExp(`cat ${fifo} failed \\(exit signal\\): did not finish within 0.3 s`) });
  t.ok(Date.now() - started < 5000, 'it returned soon after the timeout');
  t.equal(await runCommand(['echo', 'ok'], { timeoutMs: 5000 }), 'ok\n', 'a quick command is not affected');
});

t.test('a command that cannot start fails at once, and its timeout no longer keeps the process alive', async (t) => {
  await t.rejects(runCommand(['zone-no-such-command'], { timeoutMs: 60_000 }), { name: 'CommandError', message: /zone-no-such-command failed \(exit signal\): spawn zone-no-such-command ENOENT/ });
  // With spawn's own timeout, a process whose only work was this call lived on for the 60 s.
  const script = `import { runCommand } from ${JSON.stringify(new URL('../../lib/exec.ts', import.meta.url).href)};
    await runCommand(['zone-no-such-command'], { timeoutMs: 60000 }).catch(() => console.log('refused'));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000, encoding: 'utf8' });
  t.equal(out, 'refused\n', 'the process exited with nothing left to do (else execFileSync fails at 30 s)');
});

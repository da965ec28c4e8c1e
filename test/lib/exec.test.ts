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

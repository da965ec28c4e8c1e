// `npm start`'s entry point as a process: first start makes the operator key and says
// where it listens; SIGTERM stops it cleanly (exit 0) and a second start reuses the keys.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';

const dir = mkdtempSync(join(tmpdir(), 'zone-main-'));
const pids = new Set<number>();
t.teardown(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function runOnce(): Promise<{ lines: string[]; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../appliance/main.ts')], {
    env: { ...process.env, ZONE_DATA_DIR: dir, ZONE_LISTEN: '127.0.0.1:0', ZONE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  pids.add(child.pid!);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: string[] = [];
  for await (const line of createInterface({ input: child.stdout! })) {
    lines.push(line);
    if (/listening on http:\/\/127\.0\.0\.1:[0-9]+/.test(line)) {
      const url = /(http:\/\/\S+)/.exec(line)![1]!;
      // The API (or, without it, the bare listener) answers /healthz.
      lines.push(`healthz ${(await fetch(`${url}/healthz`)).status}`);
      child.kill('SIGTERM');
    }
  }
  const code = await exited;
  pids.delete(child.pid!);
  return { lines, code };
}

t.test('first start prints where it listens and the operator key; SIGTERM exits 0', async (t) => {
  const first = await runOnce();
  t.equal(first.code, 0);
  t.match(first.lines.join('\n'), /zone node [a-z2-7]{20} listening on http:\/\/127\.0\.0\.1:\d+/);
  t.match(first.lines.join('\n'), /first start: created operator key .*operator\.key/);
  t.ok(first.lines.includes('healthz 200'), 'healthz answers');
  const key = readFileSync(join(dir, 'node.key'), 'utf8');
  const second = await runOnce();
  t.equal(second.code, 0);
  t.notMatch(second.lines.join('\n'), /first start/);
  t.equal(readFileSync(join(dir, 'node.key'), 'utf8'), key, 'the same identity');
});

// `npm start`'s entry point as a process: first start makes the operator key and says
// where it listens; SIGTERM stops it cleanly (exit 0) and a second start reuses the keys.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { GRID_AUDIENCE, makeReadToken } from '../../lib/tokens.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { freeLoopbackPorts } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-main-'));
// Its own port for the pseudokernel's nats-server: other tests run appliances meanwhile.
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const pids = new Set<number>();
t.teardown(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Starts main.ts, calls `probe` with the URLs it prints, then SIGTERMs it; returns its stdout lines and exit code. */
async function runOnce(
  env: NodeJS.ProcessEnv = { ZONE_LISTEN: '127.0.0.1:0' },
  probe: (urls: string[], lines: string[]) => Promise<void> = async ([url], lines) => {
    lines.push(`healthz ${(await fetch(`${url}/healthz`)).status}`);
    const node = await (await fetch(`${url}/v1/node`)).json() as { drivers: { kind: string; available: boolean }[] };
    lines.push(`pseudokernel available ${node.drivers.find((d) => d.kind === 'pseudokernel')?.available}`);
  },
): Promise<{ lines: string[]; code: number | null; stopMs: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../api/main.ts')], {
    env: { ...process.env, ZONE_DATA_DIR: dir, ZONE_LOG_LEVEL: 'warn', ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}`, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  pids.add(child.pid!);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: string[] = [];
  let killedAt = 0;
  for await (const line of createInterface({ input: child.stdout! })) {
    lines.push(line);
    if (/listening on http:\/\/127\.0\.0\.1:[0-9]+/.test(line)) {
      await probe(line.match(/http:\/\/[0-9.:]+/g)!, lines);
      killedAt = Date.now();
      child.kill('SIGTERM');
    }
  }
  const code = await exited;
  pids.delete(child.pid!);
  return { lines, code, stopMs: Date.now() - killedAt };
}

t.test('first start prints where it listens and the operator key; SIGTERM exits 0', async (t) => {
  const first = await runOnce();
  t.equal(first.code, 0);
  t.match(first.lines.join('\n'), /zone node [a-z2-7]{20} listening on http:\/\/127\.0\.0\.1:\d+/);
  t.match(first.lines.join('\n'), /first start: created operator key .*operator\.key/);
  t.ok(first.lines.includes('healthz 200'), 'healthz answers');
  t.ok(first.lines.includes('pseudokernel available true'), 'the pseudokernel runs its nats-server');
  const key = readFileSync(join(dir, 'node.key'), 'utf8');
  const second = await runOnce();
  t.equal(second.code, 0);
  t.notMatch(second.lines.join('\n'), /first start/);
  t.equal(readFileSync(join(dir, 'node.key'), 'utf8'), key, 'the same identity');
});

t.test('the API listens on every configured address, with read tokens when the config asks', async (t) => {
  const reader = generateSigningKeyPair();
  const config = join(dir, 'tokens.json');
  writeFileSync(config, JSON.stringify({ readTokens: { keys: [reader.publicKey], maxTtlSeconds: 60 } }));
  const run = await runOnce({ ZONE_CONFIG: config, ZONE_LISTEN: '127.0.0.1:0,127.0.0.2:0' }, async (urls, lines) => {
    for (const url of urls) {
      const node = (authorization?: string) => fetch(`${url}/v1/node`, authorization ? { headers: { authorization } } : {}).then((r) => r.status);
      const health = await fetch(`${url}/healthz`);
      const { node: id } = await health.json() as { node: string };
      lines.push(`${new URL(url).hostname} healthz ${health.status} node ${await node()} with token ${await node(makeReadToken(reader, { aud: id, method: 'GET', path: '/v1/node' }))}`);
    }
  });
  t.equal(run.code, 0);
  t.ok(run.lines.includes('127.0.0.1 healthz 200 node 401 with token 200'), run.lines.join('\n'));
  t.ok(run.lines.includes('127.0.0.2 healthz 200 node 401 with token 200'), run.lines.join('\n'));
});

t.test('beyond loopback, reads need a token of a trust policy signer unless the config opens them, and the start says so', async (t) => {
  const operator = readSigningKey(join(dir, 'operator.key'));
  const probe = async (urls: string[], lines: string[]) => {
    for (const url of urls) {
      const node = (authorization?: string) => fetch(`${url}/v1/node`, authorization ? { headers: { authorization } } : {}).then((r) => r.status);
      lines.push(`${new URL(url).hostname} healthz ${(await fetch(`${url}/healthz`)).status} node ${await node()} operator token ${await node(makeReadToken(operator, { aud: GRID_AUDIENCE, method: 'GET', path: '/v1/node' }))} other token ${await node(makeReadToken(generateSigningKeyPair(), { aud: GRID_AUDIENCE, method: 'GET', path: '/v1/node' }))}`);
    }
  };
  const exposed = await runOnce({ ZONE_LISTEN: '127.0.0.1:0,0.0.0.0:0' }, probe);
  t.equal(exposed.code, 0);
  t.ok(exposed.lines.includes('127.0.0.1 healthz 200 node 401 operator token 200 other token 401'), exposed.lines.join('\n'));
  t.ok(exposed.lines.includes('0.0.0.0 healthz 200 node 401 operator token 200 other token 401'), 'the same on every address');
  t.equal(exposed.lines.filter((l) => l.startsWith('read protection on (the API listens beyond loopback: 0.0.0.0:0)')).length, 1, 'one line says so');

  const config = join(dir, 'public.json');
  writeFileSync(config, JSON.stringify({ readTokens: { public: true } }));
  const open = await runOnce({ ZONE_CONFIG: config, ZONE_LISTEN: '127.0.0.1:0,0.0.0.0:0' }, probe);
  t.ok(open.lines.includes('0.0.0.0 healthz 200 node 200 operator token 200 other token 200'), 'readTokens.public opens reads explicitly');
  t.notMatch(open.lines.join('\n'), /read protection on/);
  const loopback = await runOnce({ ZONE_LISTEN: '127.0.0.1:0' }, probe);
  t.ok(loopback.lines.includes('127.0.0.1 healthz 200 node 200 operator token 200 other token 200'), 'loopback only: reads open');
});

t.test('SIGTERM with event streams open on two listen addresses stops the node within 5 s', async (t) => {
  let ended = 0;
  const run = await runOnce({ ZONE_LISTEN: '127.0.0.1:0,127.0.0.2:0' }, async (urls, lines) => {
    const readers = await Promise.all(urls.flatMap((url) => [1, 2].map(async () => {
      const reader = (await fetch(`${url}/v1/events`)).body!.getReader();
      await reader.read(); // the stream's opening comment: it is open
      return reader;
    })));
    lines.push(`streams open ${readers.length}`);
    // Each stream ends (cleanly or cut) once the node stops.
    for (const reader of readers) {
      void (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done);
        ended++;
      })();
    }
  });
  t.equal(run.code, 0, 'exits 0');
  t.ok(run.lines.includes('streams open 4'), run.lines.join('\n'));
  t.ok(run.stopMs < 5000, `stopped ${run.stopMs} ms after SIGTERM`);
  await waitFor(() => ended === 4, { timeoutMs: 1000, what: 'every stream ended' });
});

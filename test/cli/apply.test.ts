// zone apply and zone delete against an in-process node (fake driver): what the
// operator sees and the exit codes.
import { execFile } from 'node:child_process';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { box, startNode } from '../api/node.ts';

const ZONE = fileURLToPath(new URL('../../cli/zone.sh', import.meta.url));

function zone(args: string[], url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ZONE, args, { env: { ...process.env, ZONE_NODE: url }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function setup(t: Test) {
  const n = await startNode(t);
  const dir = mkdtempSync(join(tmpdir(), 'zone-cli-apply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'operator.json');
  writeSigningKey(keyFile, n.operator);
  const write = (file: string, value: unknown) => {
    writeFileSync(join(dir, file), stringify(value));
    return join(dir, file);
  };
  const base = { owner: n.operator.publicKey, node: n.appliance.identity.id };
  return { n, dir, keyFile, write, base };
}

t.test('apply signs with --key, follows until every workload runs, and exits 0', async (t) => {
  const { n, keyFile, write, base } = await setup(t);
  const file = write('web.yaml', { name: 'web', version: 1, ...base, workloads: [box('a'), box('b')] });
  const r = await zone(['apply', file, '--key', keyFile], n.url);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^web: v1 accepted\n/);
  t.match(r.stdout, / {2}a +container running\n/);
  t.match(r.stdout, / {2}b +container running\n/);
  t.match(r.stdout, /web: all workloads running\n$/);
});

t.test('apply exits 1 when a workload fails, naming what to look at', async (t) => {
  const { n, keyFile, write, base } = await setup(t);
  n.driver.rejectImage('zone/missing');
  const file = write('bad.yaml', { name: 'bad', version: 1, ...base, workloads: [box('ok'), box('broken', { image: 'zone/missing' })] });
  const r = await zone(['apply', file, '--key', keyFile], n.url);
  t.equal(r.code, 1);
  t.match(r.stdout, / {2}broken +container failed \(.*image zone\/missing not found/);
  t.equal(r.stderr, 'zone: bad: not every workload is running (zone status bad; zone logs bad/WORKLOAD)\n');
});

t.test('apply --detach returns once accepted; refusals are one line and exit 1', async (t) => {
  const { n, keyFile, write, base } = await setup(t);
  const file = write('d.yaml', { name: 'd', version: 1, ...base, workloads: [box('a')] });
  const unsigned = await zone(['apply', file, '--detach'], n.url);
  t.equal(unsigned.code, 1);
  t.equal(unsigned.stderr, 'zone: refused (401 SIGNATURE): /signatures: blueprint is not signed\n');
  const stranger = join(n.dataDir, 'stranger.json');
  writeSigningKey(stranger, generateSigningKeyPair());
  const untrusted = await zone(['apply', file, '--key', stranger, '--detach'], n.url);
  t.match(untrusted, { code: 1, stderr: /^zone: refused \(403 POLICY\): .*trusted signatures weigh 0, the trust policy needs 1/ });
  const detached = await zone(['apply', file, '--key', keyFile, '--detach'], n.url);
  t.match(detached, { code: 0, stdout: 'd: v1 accepted\n' });
  const invalid = write('invalid.yaml', { name: 'x', version: 1, ...base, workloads: [{ name: 'a', kind: 'container' }] });
  t.match(await zone(['apply', invalid, '--key', keyFile], n.url), { code: 1, stderr: /^zone: .*invalid\.yaml: \/workloads\/0.*image/ });
  t.match(await zone(['apply', join(n.dataDir, 'none.yaml')], n.url), { code: 1, stderr: /none\.yaml: cannot read \(ENOENT\)/ });
});

t.test('delete sends a signed tombstone (stored version + 1) and waits for the workloads to go', async (t) => {
  const { n, keyFile, write, base } = await setup(t);
  t.equal((await zone(['apply', write('gone.yaml', { name: 'gone', version: 4, ...base, workloads: [box('a')] }), '--key', keyFile], n.url)).code, 0);
  const r = await zone(['delete', 'gone', '--key', keyFile], n.url);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^gone: tombstone v5 accepted\n[\s\S]*gone: removed\n$/);
  t.same(n.driver.snapshot(), []);
  t.match(await zone(['delete', 'gone', '--key', keyFile], n.url), { code: 1, stderr: 'zone: gone: already deleted (tombstone v5)\n' });
  t.match(await zone(['delete', 'never', '--key', keyFile], n.url), { code: 1, stderr: /refused \(404 NOT_FOUND\)/ });
});

t.test('apply gives up at --timeout when the node stops answering after it accepted (a read held open is not waited out)', async (t) => {
  // A node that takes the blueprint, then never answers again (as a VM that vanished mid-connection).
  const held: ServerResponse[] = [];
  const gone = createServer((req, res) => {
    if (req.url === '/healthz') return void res.end(JSON.stringify({ ok: true, node: 'n1' }));
    if (req.method === 'PUT') {
      req.resume();
      return void req.on('end', () => res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'late', owner: 'o', version: 1, deleted: false })));
    }
    held.push(res);
  });
  await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const res of held) res.destroy();
    gone.close();
  });
  const { write, keyFile, base } = await setup(t);
  const started = Date.now();
  const r = await zone(['apply', write('late.yaml', { name: 'late', version: 1, ...base, workloads: [box('a')] }), '--key', keyFile, '--timeout', '2'], `http://127.0.0.1:${(gone.address() as AddressInfo).port}`);
  const seconds = (Date.now() - started) / 1000;
  t.match(r, { code: 3, stdout: /^late: v1 accepted\n/, stderr: /^zone: cannot reach the node at http:\/\/127\.0\.0\.1:\d+ \(no answer in time\)\n$/ });
  t.ok(seconds < 60, `gave up after ${seconds.toFixed(1)} s, not undici's 300 s`);
});

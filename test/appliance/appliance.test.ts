import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { workloadId } from '../../drivers/names.ts';
import { ZoneError } from '../../lib/errors.ts';
import { createLogger } from '../../appliance/logger.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { sealSecret } from '../../blueprints/seal.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import type { DriverContext } from '../../drivers/contract.ts';
import { FakeDriver } from '../../drivers/fake/driver.ts';
import { waitFor } from '../helpers/wait.ts';

async function node(t: Test, clock?: () => Date) {
  const dir = mkdtempSync(join(tmpdir(), 'zone-appliance-'));
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const operator = readSigningKey(createdOperatorKey!);
  let log = '';
  const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _enc, cb) { log += String(chunk); cb(); } }) });
  const driver = new FakeDriver();
  let ctx: DriverContext | undefined;
  const appliance: ZoneAppliance = await createAppliance({
    config, trustPolicy: policy, logger,
    drivers: (c) => { ctx = c; return [driver]; },
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 50, maxMs: 500, stableMs: 60_000, crashloopAfter: 3 },
    ...(clock ? { clock } : {}),
  });
  appliance.start();
  t.teardown(async () => {
    await appliance.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const sign = (bp: Omit<Blueprint, 'owner' | 'node'> & Partial<Blueprint>) =>
    signBlueprint({ owner: operator.publicKey, node: appliance.identity.id, ...bp } as Blueprint, operator.secretKey);
  return { appliance, driver, sign, operator, ctx: () => ctx!, log: () => log };
}

async function refused(t: Test, p: Promise<unknown>, code: string, field?: string): Promise<ZoneError | undefined> {
  try {
    await p;
  } catch (err) {
    t.type(err, ZoneError);
    t.equal((err as ZoneError).code, code, (err as Error).message);
    if (field !== undefined) t.equal((err as ZoneError).field, field);
    return err as ZoneError;
  }
  t.fail(`expected ${code}`);
  return undefined;
}

const box = (name: string, extra: Record<string, unknown> = {}) => ({ name, kind: 'container' as const, image: 'zone/busybox', ...extra });

t.test('a signed blueprint is accepted, stored and applied', async (t) => {
  const n = await node(t);
  const result = await n.appliance.submit(n.sign({ name: 'web', version: 1, workloads: [box('a')] }));
  t.same(result, { name: 'web', owner: n.operator.publicKey, version: 1, deleted: false });
  t.equal(n.appliance.getBlueprint('web')?.version, 1, 'stored when submit returns');
  await waitFor(() => n.appliance.getBlueprint('web')?.workloads[0]?.state === 'running', { timeoutMs: 5000, what: 'running' });
  t.match(n.appliance.listBlueprints(), [{ name: 'web', workloads: [{ workload: 'a', state: 'running', restarts: 0 }] }]);
  const events = n.appliance.events({ blueprint: 'web' });
  t.match(events[0], { from: null, to: 'v1', reason: /version 1 accepted, signed by operator/ });
  t.same(n.appliance.events({ after: events[0]!.seq, blueprint: 'web' }).map((e) => e.to), events.slice(1).map((e) => e.to), 'resume after a seq');
});

t.test('the front door refuses replays, tampering, other nodes, overcommit and risky settings', async (t) => {
  const n = await node(t);
  const v1 = n.sign({ name: 'door', version: 1, workloads: [box('a')] });
  await n.appliance.submit(v1);
  await refused(t, n.appliance.submit(v1), 'STALE', '/version');
  await refused(t, n.appliance.submit({ ...v1, version: 2 }), 'SIGNATURE');
  await refused(t, n.appliance.submit(signBlueprint({ ...v1, version: 2, signatures: [] }, generateSigningKeyPair().secretKey)), 'POLICY', '/signatures');
  await refused(t, n.appliance.submit(n.sign({ name: 'x', version: 1, node: 'othernode' })), 'POLICY', '/node');
  const big = await refused(t, n.appliance.submit(n.sign({ name: 'big', version: 1, workloads: [box('a', { resources: { memory: '7Gi' } })] })), 'CAPACITY', '/workloads');
  t.match(big?.details, { resource: 'memory' });
  await refused(t, n.appliance.submit(n.sign({ name: 'root', version: 1, workloads: [box('a', { privileged: true })] })), 'POLICY', '/workloads/0/privileged');
  await refused(t, n.appliance.submit({ name: 'Bad Name' }), 'INVALID');
  t.same(n.appliance.listBlueprints().map((b) => b.name), ['door'], 'nothing refused was stored');
});

t.test('a tombstone removes the workloads and keeps the version (no replay of older versions)', async (t) => {
  const n = await node(t);
  await n.appliance.submit(n.sign({ name: 'tomb', version: 1, workloads: [box('a')] }));
  await waitFor(() => n.driver.snapshot().length === 1, { timeoutMs: 5000, what: 'created' });
  const r = await n.appliance.submit(n.sign({ name: 'tomb', version: 2, delete: true }));
  t.equal(r.deleted, true);
  await waitFor(() => n.driver.snapshot().length === 0, { timeoutMs: 5000, what: 'removed' });
  t.match(n.appliance.getBlueprint('tomb'), { deleted: true, workloads: [] });
  await refused(t, n.appliance.submit(n.sign({ name: 'tomb', version: 1, workloads: [box('a')] })), 'STALE');
});

t.test('drivers open sealed values with the node box key; no secret reaches the logs', async (t) => {
  const n = await node(t);
  const info = await n.appliance.nodeInfo();
  const place = { owner: n.operator.publicKey, blueprint: 'sec', field: 'workloads/a/env/TOKEN' };
  const sealed = sealSecret('hunter2-clear', info.boxKey, { ...place, node: info.id });
  t.equal(n.ctx().openSecret(sealed, place), 'hunter2-clear');
  t.throws(() => n.ctx().openSecret(sealed, { ...place, blueprint: 'other' }), /bound to blueprint sec, not other/, 'only at its place');
  await n.appliance.submit(n.sign({ name: 'sec', version: 1, workloads: [box('a', { env: { TOKEN: sealed, PLAIN: 'plain-env-value' } })] }));
  await waitFor(() => n.appliance.getBlueprint('sec')?.workloads[0]?.state === 'running', { timeoutMs: 5000, what: 'running' });
  n.driver.crash(workloadId(info.id, n.operator.publicKey, 'sec', 'a'));
  await waitFor(() => n.appliance.getBlueprint('sec')?.workloads[0]?.restarts === 1, { timeoutMs: 5000, what: 'restarted' });
  t.match(n.log(), /restarting workload/, 'the restart is logged');
  t.notMatch(n.log(), /hunter2-clear|plain-env-value/);
  t.notMatch(n.log(), sealed.slice(10, 40));
  t.notMatch(JSON.stringify(n.appliance.events({})), /hunter2-clear|plain-env-value/);
});

t.test('node info shows identity, drivers and capacity', async (t) => {
  const n = await node(t);
  await n.appliance.submit(n.sign({ name: 'cap', version: 1, workloads: [box('a', { resources: { memory: '1Gi', cpus: 1 } })] }));
  const info = await n.appliance.nodeInfo();
  t.match(info.id, /^[a-z2-7]{20}$/);
  t.match(info.drivers, [{ kind: 'container', available: true }]);
  t.same(info.capacity.reserved, { cpus: 1, memoryBytes: 3 * GIB, diskBytes: 0 }, '2 GiB for the node + 1 GiB');
  t.same(info.capacity.free, { cpus: 15, memoryBytes: 5 * GIB, diskBytes: 100 * GIB }, 'cpu overcommit 4 by default');
});

t.test('logs come from the driver; an unknown workload is NOT_FOUND', async (t) => {
  const n = await node(t);
  await n.appliance.submit(n.sign({ name: 'logs', version: 1, workloads: [box('a')] }));
  await waitFor(() => n.appliance.getBlueprint('logs')?.workloads[0]?.state === 'running', { timeoutMs: 5000, what: 'running' });
  let text = '';
  for await (const chunk of await n.appliance.logs('logs', 'a', { follow: false })) text += String(chunk);
  t.equal(text, 'a running\n');
  await refused(t, n.appliance.logs('logs', 'nope', { follow: false }), 'NOT_FOUND');
});

t.test('an expired blueprint no longer holds capacity, shows no pending workloads, and takes a later version', async (t) => {
  let now = new Date();
  const n = await node(t, () => now);
  const expires = new Date(now.getTime() + 3_600_000).toISOString();
  await n.appliance.submit(n.sign({ name: 'lease', version: 1, expires, workloads: [box('a', { resources: { memory: '5Gi' } })] }));
  await waitFor(() => n.appliance.getBlueprint('lease')?.workloads[0]?.state === 'running', { timeoutMs: 5000, what: 'lease running' });
  await refused(t, n.appliance.submit(n.sign({ name: 'next', version: 1, workloads: [box('b', { resources: { memory: '5Gi' } })] })), 'CAPACITY', '/workloads');

  now = new Date(now.getTime() + 3_600_000);
  n.appliance.reconciler.wake();
  await waitFor(() => n.appliance.getBlueprint('lease')?.workloads.length === 0, { timeoutMs: 5000, what: 'the expired workload gone, none pending' });
  t.match(n.appliance.events({ blueprint: 'lease' }).at(-1), { workload: 'a', to: 'removed' });
  t.ok(n.appliance.events({ blueprint: 'lease' }).some((e) => e.workload === null && e.to === 'expired'), 'an event says it expired');
  t.match(await n.appliance.submit(n.sign({ name: 'next', version: 1, workloads: [box('b', { resources: { memory: '5Gi' } })] })), { name: 'next' }, 'its capacity is free again');
  await refused(t, n.appliance.submit(n.sign({ name: 'lease', version: 1, workloads: [box('a')] })), 'STALE', '/version');
  t.match(await n.appliance.submit(n.sign({ name: 'lease', version: 2, workloads: [box('a', { resources: { memory: '64Mi' } })] })), { version: 2 }, 'a later version brings it back');
  await waitFor(() => n.appliance.getBlueprint('lease')?.workloads[0]?.state === 'running', { timeoutMs: 5000, what: 'lease v2 running' });
});

// Volumes through the whole appliance with the real Docker driver: a container's data
// outlives a new version, a removal behind the node's back and a kill -9 of the
// appliance; the size is enforced (ENOSPC inside, nothing else fills); two owners'
// volumes of one name hold separate data; a dropped volume is kept for the retention
// period (its data returns when listed again), then deleted; a grown size is seen inside.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { buildVolumeProvider } from '../../appliance/drivers.ts';
import type { Blueprint, Workload } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { writeSigningKey } from '../../blueprints/keys.ts';
import type { VolumeProvider } from '../../drivers/contract.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';
import { volumeId, workloadId } from '../../drivers/names.ts';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import { waitFor } from '../helpers/wait.ts';
import { startApplianceChild } from './fixtures/child-control.ts';

const MIB = 2 ** 20;
const HOUR = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), 'zone-volumes-appliance-'));
const operator = generateSigningKeyPair();
const bob = generateSigningKeyPair();
// The operator signs for any owner, so one node holds two owners' blueprints.
writeFileSync(join(dir, 'trust-policy.json'), JSON.stringify({ signers: [{ key: operator.publicKey, weight: 1, owners: '*' }], threshold: 1 }));
writeSigningKey(join(dir, 'operator.key'), operator);
const config = { ...loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir }), volumes: { retentionMs: HOUR } };
const { policy } = loadOrCreateTrustPolicy(config);
/** The engine's clock, moved forward by the retention test. */
let clockShiftMs = 0;
let provider: VolumeProvider | null = null;
let nodeId = '';

const appliance: ZoneAppliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
  volumes: (ctx) => (provider = buildVolumeProvider(ctx)),
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 3 },
  clock: () => new Date(Date.now() + clockShiftMs),
});
nodeId = appliance.identity.id;
appliance.start();

const children = new Set<ChildProcess>();
t.teardown(async () => {
  for (const c of children) c.kill('SIGKILL');
  await appliance.close();
  await removeNodeContainers([nodeId]).catch(() => {});
  for (const v of await provider!.list()) await provider!.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
});

const sign = (bp: Partial<Blueprint>, owner = operator.publicKey) => signBlueprint({ owner, node: nodeId, ...bp } as Blueprint, operator.secretKey);
const box = (command: string, over: Partial<Workload> = {}): Workload =>
  ({ name: 'db', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', `${command}; exec sleep 3600`], mounts: [{ volume: 'data', target: '/data' }], ...over } as Workload);
const inside = (id: string, command: string) => execFileSync('docker', ['exec', id, 'sh', '-c', command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const tryInside = (id: string, command: string) => {
  try {
    return inside(id, command);
  } catch {
    return null;
  }
};
const dbId = (blueprint: string, owner = operator.publicKey) => workloadId(nodeId, owner, blueprint, 'db');
const running = (blueprint: string, version: number, owner = operator.publicKey) => {
  const b = appliance.getBlueprint(blueprint, owner);
  return b?.version === version && b.workloads.find((w) => w.workload === 'db')?.state === 'running';
};
const logOf = (blueprint: string, owner?: string) => tryInside(dbId(blueprint, owner), 'cat /data/log');

t.test('the data outlives a new version that replaces the container, and a removal behind the node\'s back', async (t) => {
  await appliance.submit(sign({ name: 'shop', version: 1, volumes: [{ name: 'data', size: '32Mi' }], workloads: [box('echo v1 >> /data/log')] }));
  await waitFor(() => logOf('shop') === 'v1\n', { timeoutMs: 60_000, what: 'v1 wrote its line' });
  const first = execFileSync('docker', ['inspect', '-f', '{{.Id}}', dbId('shop')], { encoding: 'utf8' });

  await appliance.submit(sign({ name: 'shop', version: 2, volumes: [{ name: 'data', size: '32Mi' }], workloads: [box('echo v2 >> /data/log')] }));
  await waitFor(() => logOf('shop') === 'v1\nv2\n', { timeoutMs: 60_000, what: 'v2 found v1\'s line and wrote its own' });
  t.not(execFileSync('docker', ['inspect', '-f', '{{.Id}}', dbId('shop')], { encoding: 'utf8' }), first, 'the container was replaced');

  execFileSync('docker', ['rm', '-f', dbId('shop')]);
  await waitFor(() => logOf('shop') === 'v1\nv2\nv2\n', { timeoutMs: 60_000, what: 'the container made again found the data' });
  t.pass('the data is there after each');
});

t.test('writing past the size gives ENOSPC inside; the volume\'s file holds no more than its size', async (t) => {
  await waitFor(() => running('shop', 2), { timeoutMs: 30_000, what: 'shop running' });
  const out = execFileSync('docker', ['exec', dbId('shop'), 'sh', '-c', 'dd if=/dev/zero of=/data/big bs=1M count=64 2>&1; echo "exit $?"'], { encoding: 'utf8' });
  t.match(out, /No space left on device/);
  t.match(out, /exit [1-9]/);
  const file = join(dir, 'drivers', 'volumes', volumeId(nodeId, operator.publicKey, 'shop', 'data'), 'data.ext4');
  t.ok(statSync(file).blocks * 512 <= 32 * MIB, `the file holds ${statSync(file).blocks * 512} bytes, at most its 32Mi`);
  inside(dbId('shop'), 'rm /data/big');
  t.equal(logOf('shop'), 'v1\nv2\nv2\n', 'the data before is intact');
});

t.test('two owners\' volumes of one name in blueprints of one name hold separate data', async (t) => {
  const doc = (who: string) => ({ name: 'twin', version: 1, volumes: [{ name: 'data', size: '16Mi' }], workloads: [box(`echo ${who} >> /data/log`)] });
  await appliance.submit(sign(doc('operator')));
  await appliance.submit(sign(doc('bob'), bob.publicKey));
  await waitFor(() => logOf('twin') === 'operator\n' && logOf('twin', bob.publicKey) === 'bob\n', { timeoutMs: 60_000, what: 'both wrote' });
  const volumes = await appliance.listVolumes(bob.publicKey);
  t.same(volumes.map((v) => [v.blueprint, v.name, v.attachedTo]), [['twin', 'data', ['db']]], 'an owner lists only its own volumes');
  const info = await appliance.nodeInfo();
  t.match(info.volumes, { count: 3, sizeBytes: (32 + 16 + 16) * MIB }, 'GET /v1/node counts the volumes');
  t.ok((info.volumes?.usedBytes ?? 0) > 0);
  t.equal(info.capacity.reserved.diskBytes - (await appliance.nodeInfo()).capacity.reserved.diskBytes, 0);
  t.ok(info.capacity.reserved.diskBytes >= (32 + 16 + 16) * MIB, 'admission reserves their sizes on the disk');
});

t.test('a dropped volume is kept for the retention period, its data returns when listed again, and it is deleted after', async (t) => {
  const id = volumeId(nodeId, operator.publicKey, 'shop', 'data');
  const folder = join(dir, 'drivers', 'volumes', id);
  const reservedDisk = async () => (await appliance.nodeInfo()).capacity.reserved.diskBytes;
  const before = await reservedDisk();
  // v3 drops the volume: the workload no longer mounts it.
  await appliance.submit(sign({ name: 'shop', version: 3, workloads: [box('true', { mounts: [] })] }));
  await waitFor(async () => (await appliance.listVolumes(operator.publicKey)).find((v) => v.blueprint === 'shop')?.state === 'released', { timeoutMs: 60_000, what: 'the volume released' });
  t.equal(await reservedDisk(), before, 'admission still counts the released volume\'s 32Mi: its data takes the disk until it is deleted');
  const [released] = (await appliance.listVolumes(operator.publicKey)).filter((v) => v.blueprint === 'shop');
  t.match(released, { state: 'released', attachedTo: [] });
  t.ok(released?.deleteAt && Date.parse(released.deleteAt) > Date.now() + HOUR - 60_000, 'its deletion is an hour away');

  await appliance.submit(sign({ name: 'shop', version: 4, volumes: [{ name: 'data', size: '32Mi' }], workloads: [box('echo v4 >> /data/log')] }));
  await waitFor(() => logOf('shop') === 'v1\nv2\nv2\nv4\n', { timeoutMs: 60_000, what: 'listed again: the data returned' });
  t.equal((await appliance.listVolumes(operator.publicKey)).find((v) => v.blueprint === 'shop')?.state, 'ready');

  await appliance.submit(sign({ name: 'shop', version: 5, delete: true }));
  await waitFor(async () => (await appliance.listVolumes(operator.publicKey)).find((v) => v.blueprint === 'shop')?.state === 'released', { timeoutMs: 60_000, what: 'released by the tombstone' });
  t.ok(existsSync(join(folder, 'data.ext4')), 'still there within the retention');
  const tombstoned = await reservedDisk();
  clockShiftMs = 2 * HOUR;
  appliance.reconciler.wake();
  await waitFor(() => !existsSync(folder), { timeoutMs: 60_000, what: 'deleted after the retention' });
  await waitFor(async () => (await reservedDisk()) === tombstoned - 32 * MIB, { timeoutMs: 30_000, what: 'its 32Mi free again once deleted' });
  t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(id), 'no mount left');
  t.notOk(execFileSync('losetup', ['-a'], { encoding: 'utf8' }).includes(id), 'no loop device left');
  clockShiftMs = 0;
});

t.test('a grown size is seen inside the workload', async (t) => {
  await appliance.submit(sign({ name: 'grow', version: 1, volumes: [{ name: 'data', size: '32Mi' }], workloads: [box('echo one >> /data/log')] }));
  await waitFor(() => logOf('grow') === 'one\n', { timeoutMs: 60_000, what: 'grow v1 wrote' });
  await appliance.submit(sign({ name: 'grow', version: 2, volumes: [{ name: 'data', size: '96Mi' }], workloads: [box('echo two >> /data/log')] }));
  await waitFor(() => logOf('grow') === 'one\ntwo\n', { timeoutMs: 60_000, what: 'grow v2 wrote' });
  const kib = await waitFor(() => {
    const size = Number(tryInside(dbId('grow'), 'df -k /data | tail -1')?.trim().split(/\s+/)[1]);
    return size > 80 * 1024 ? size : false;
  }, { timeoutMs: 30_000, what: 'the grown size inside' });
  t.ok(kib > 80 * 1024, `df inside shows ${kib} KiB`);
  await t.rejects(appliance.submit(sign({ name: 'grow', version: 3, volumes: [{ name: 'data', size: '32Mi' }], workloads: [box('true')] })), /smaller than 96Mi of version 2; a volume grows but never shrinks/);
});

t.test('after a kill -9 of the appliance, a new version finds the data', async (t) => {
  const childDir = join(dir, 'child');
  const start = () => startApplianceChild({ ZONE_DATA_DIR: childDir, CHILD_ENGINE: 'docker' }, children);
  let node = await start();
  const key = JSON.parse(readFileSync(join(childDir, 'trust-policy.json'), 'utf8')) as { signers: { key: string }[] };
  const { readSigningKey } = await import('../../blueprints/keys.ts');
  const childOperator = readSigningKey(join(childDir, 'operator.key'));
  t.equal(key.signers[0]?.key, childOperator.publicKey);
  const signChild = (bp: Partial<Blueprint>) => signBlueprint({ owner: childOperator.publicKey, node: node.ready, ...bp } as Blueprint, childOperator.secretKey);
  const id = workloadId(node.ready, childOperator.publicKey, 'kept', 'db');
  t.teardown(async () => {
    await removeNodeContainers([node.ready]).catch(() => {});
    const volumes = buildVolumeProvider({ node: node.ready, dataDir: join(childDir, 'drivers'), openSecret: () => '' });
    for (const v of await volumes.list()) await volumes.remove(v.id);
  });

  t.match(await node.send({ submit: signChild({ name: 'kept', version: 1, volumes: [{ name: 'data', size: '16Mi' }], workloads: [box('echo before >> /data/log')] }) }), { accepted: { version: 1 } });
  await waitFor(() => tryInside(id, 'cat /data/log') === 'before\n', { timeoutMs: 60_000, what: 'the child\'s workload wrote' });
  await node.kill();
  node = await start();
  t.match(await node.send({ submit: signChild({ name: 'kept', version: 2, volumes: [{ name: 'data', size: '16Mi' }], workloads: [box('echo after >> /data/log')] }) }), { accepted: { version: 2 } });
  await waitFor(() => tryInside(id, 'cat /data/log') === 'before\nafter\n', { timeoutMs: 60_000, what: 'the new version after the kill found the data' });
  await node.kill();
});

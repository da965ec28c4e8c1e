// The appliance with the real Docker driver: the engine heals real containers (killed,
// removed behind its back), shows a crash loop, adopts running containers after an
// appliance restart and removes everything on a tombstone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { desiredWorkloads } from '../../appliance/engine/desired.ts';
import { workloadId } from '../../drivers/names.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';
import { containerCreateOptions } from '../../drivers/docker/spec.ts';
import { legacyWorkloadId } from '../../drivers/names.ts';
import { waitFor } from '../helpers/wait.ts';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const dir = mkdtempSync(join(tmpdir(), 'zone-appliance-docker-'));
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
let nodeId = '';

async function start(): Promise<ZoneAppliance> {
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger: pino({ level: 'silent' }),
    drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 2 },
  });
  nodeId = appliance.identity.id;
  appliance.start();
  return appliance;
}

let appliance = await start();
t.teardown(async () => {
  await appliance.close();
  await removeNodeContainers([nodeId]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: nodeId, ...bp } as Blueprint, operator.secretKey);
const state = (w: string) => appliance.getBlueprint('shop')?.workloads.find((x) => x.workload === w);
const id = (w: string) => workloadId(nodeId, operator.publicKey, 'shop', w);
const startedAt = async (w: string) => (await docker.getContainer(id(w)).inspect()).State.StartedAt;

t.test('real containers are healed, crash loops shown, running ones adopted, all removed by a tombstone', async (t) => {
  await appliance.submit(sign({
    name: 'shop', version: 1, workloads: [
      { name: 'web', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] },
      { name: 'flaky', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'exit 3'], restart: 'on-failure' },
    ],
  }));
  await waitFor(() => state('web')?.state === 'running', { timeoutMs: 60_000, what: 'web running' });

  await waitFor(() => state('flaky')?.state === 'crashloop', { timeoutMs: 30_000, what: 'flaky in crashloop' });
  t.match(state('flaky'), { lastError: 'exited with code 3', lastExit: 3 });
  t.ok((state('flaky')?.restarts ?? 0) >= 2, 'flaky keeps being retried');

  const firstRun = await startedAt('web');
  await docker.getContainer(id('web')).kill();
  await waitFor(async () => state('web')?.restarts === 1 && state('web')?.state === 'running' && (await startedAt('web')) !== firstRun, { timeoutMs: 30_000, what: 'web restarted after a kill' });

  await docker.getContainer(id('web')).remove({ force: true });
  await waitFor(async () => (await docker.getContainer(id('web')).inspect().catch(() => null))?.State.Running === true, { timeoutMs: 30_000, what: 'web created again' });
  await waitFor(() => state('web')?.state === 'running', { timeoutMs: 30_000, what: 'web status running' });

  const run = await startedAt('web');
  await appliance.close();
  appliance = await start();
  await appliance.reconciler.idle();
  t.equal(state('web')?.state, 'running');
  t.equal(await startedAt('web'), run, 'adopted after an appliance restart, not restarted');

  await appliance.submit(sign({ name: 'shop', version: 2, delete: true }));
  await waitFor(async () => (await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length === 0, { timeoutMs: 30_000, what: 'containers removed' });
  await waitFor(() => appliance.getBlueprint('shop')?.workloads.length === 0, { timeoutMs: 10_000, what: 'statuses gone' });
});

t.test('upgrade: a container an older appliance named (32-bit hash) is replaced under its 128-bit name; containers not ours are left alone', async (t) => {
  const bp = sign({ name: 'old', version: 1, workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }] });
  const [spec] = desiredWorkloads(nodeId, [{ owner: operator.publicKey, name: 'old', version: 1, deleted: false, document: bp, acceptedAt: new Date().toISOString() }]);
  const legacy = legacyWorkloadId(nodeId, operator.publicKey, 'old', 'web');
  // What the older appliance left running, and two containers that are not this workload.
  const planted = [
    { ...spec!, id: legacy },
    { ...spec!, id: legacyWorkloadId('othernode', operator.publicKey, 'old', 'web'), node: 'othernode' },
    { ...spec!, id: legacyWorkloadId(nodeId, operator.publicKey, 'old', 'db') },
  ];
  for (const p of planted) {
    const options = containerCreateOptions(p, null);
    // On Docker's shared bridge, where an older appliance put its containers.
    await docker.createContainer({ ...options, Labels: { ...options.Labels, 'zone-test': nodeId }, HostConfig: { ...options.HostConfig, NetworkMode: 'bridge' } });
    await docker.getContainer(p.id).start();
  }
  t.teardown(async () => {
    for (const p of planted.slice(1)) await docker.getContainer(p.id).remove({ force: true }).catch(() => undefined);
  });

  await appliance.submit(bp);
  await waitFor(async () => (await docker.getContainer(spec!.id).inspect().catch(() => null))?.State.Running === true, { timeoutMs: 60_000, what: 'web running under its new name' });
  t.equal(await docker.getContainer(legacy).inspect().then(() => 'present', () => 'gone'), 'gone', 'the old name is removed, not left beside it');
  await waitFor(() => appliance.getBlueprint('old')?.workloads.find((w) => w.workload === 'web')?.state === 'running', { timeoutMs: 30_000, what: 'web status running' });
  t.equal((await docker.getContainer(planted[1]!.id).inspect()).State.Running, true, 'another node\'s container is left alone');
  t.equal((await docker.getContainer(planted[2]!.id).inspect()).State.Running, true, 'labels of a workload on a name that is not derived from them: left alone');

  await appliance.submit(sign({ name: 'old', version: 2, delete: true }));
  await waitFor(async () => (await docker.getContainer(spec!.id).inspect().catch(() => null)) === null, { timeoutMs: 30_000, what: 'web removed by the tombstone' });
});

t.test('a container under a workload\'s name recording another owner is the workload\'s last error, naming both, and is never removed', async (t) => {
  const bp = sign({ name: 'clash', version: 1, workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }] });
  const [spec] = desiredWorkloads(nodeId, [{ owner: operator.publicKey, name: 'clash', version: 1, deleted: false, document: bp, acceptedAt: new Date().toISOString() }]);
  const other = `ed25519:${Buffer.alloc(32, 77).toString('base64')}`;
  const options = containerCreateOptions({ ...spec!, owner: other }, null);
  await docker.createContainer({ ...options, Labels: { ...options.Labels, 'zone-test': nodeId }, HostConfig: { ...options.HostConfig, NetworkMode: 'bridge' } });
  t.teardown(() => docker.getContainer(spec!.id).remove({ force: true }).catch(() => undefined));

  await appliance.submit(bp);
  const status = await waitFor(() => {
    const w = appliance.getBlueprint('clash')?.workloads.find((x) => x.workload === 'web');
    return w?.state === 'failed' ? w : null;
  }, { timeoutMs: 30_000, what: 'web failed on the name clash' });
  t.match(status.lastError, `workload clash/web of owner ${operator.publicKey} on node ${nodeId}`);
  t.match(status.lastError, `workload clash/web of owner ${other} on node ${nodeId}`);
  const held = await docker.getContainer(spec!.id).inspect();
  t.equal(held.Config.Labels['zone.owner'], other, 'the other owner\'s container is still there');
  t.equal(held.State.Status, 'created', 'and was never started');

  await appliance.submit(sign({ name: 'clash', version: 2, delete: true }));
  await waitFor(() => appliance.getBlueprint('clash')?.workloads.length === 0, { timeoutMs: 30_000, what: 'the workload forgotten' });
  t.equal((await docker.getContainer(spec!.id).inspect()).Config.Labels['zone.owner'], other, 'a tombstone does not remove it either');
});

// The pseudokernel wired into an appliance with the real Docker driver and a real
// nats-server: the owner's process table follows the node's workloads.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import t from 'tap';
import { createAppliance } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const dir = mkdtempSync(join(tmpdir(), 'zone-pk-docker-'));
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}` }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);

const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  pseudokernel: {},
});
const nodeId = appliance.identity.id;
appliance.start();
t.teardown(async () => {
  await appliance.close();
  const ours = await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } });
  await Promise.all(ours.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  rmSync(dir, { recursive: true, force: true });
});

const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: nodeId, ...bp } as Blueprint, operator.secretKey);
const procRows = async () => (await appliance.pseudokernel!.procTable(operator.publicKey)).list();

t.test('the owner\'s process table lists the node\'s workloads as they run; a tombstone removes their rows', async (t) => {
  t.equal(appliance.pseudokernel?.available, true, 'nats-server started');
  const started = Date.now();
  await appliance.submit(sign({
    name: 'proc', version: 1, workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }],
  }));
  const row = await waitFor(async () => (await procRows()).find((r) => r.workload === 'web' && r.state === 'running'), { timeoutMs: 60_000, what: 'web running in the process table' });
  t.comment(`running in the process table ${Date.now() - started} ms after the submit`);
  const status = appliance.getBlueprint('proc')!.workloads[0]!;
  t.same(row, { node: nodeId, blueprint: 'proc', workload: 'web', kind: 'container', state: 'running', restarts: 0, since: status.since });

  const deleted = Date.now();
  await appliance.submit(sign({ name: 'proc', version: 2, delete: true }));
  await waitFor(async () => (await procRows()).length === 0, { timeoutMs: 30_000, what: 'the row removed' });
  t.comment(`row removed ${Date.now() - deleted} ms after the tombstone`);
  t.equal((await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length, 0, 'the container is gone too');
});

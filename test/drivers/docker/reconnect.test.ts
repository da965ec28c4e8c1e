// dockerd goes away and comes back: the driver says so and works again. A private
// dockerd of this test is killed, never the shared one.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GIB } from '../../../appliance/admission.ts';
import { createAppliance } from '../../../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { workloadId } from '../../../drivers/names.ts';
import { createLogger } from '../../../appliance/logger.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { EngineUnavailableError, type DriverContext, type DriverEvent, type WorkloadSpec } from '../../../drivers/contract.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { PrivateDockerd } from '../../helpers/private-dockerd.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `rc${process.pid}`;
const dockerd = new PrivateDockerd();
const SOCKET = dockerd.socket;
const WORK = dockerd.work;
t.teardown(() => dockerd.close());

t.test('watch reports dockerd going away and coming back; ensure works again', async (t) => {
  await dockerd.start();

  const ctx: DriverContext = { node: NODE, dataDir: WORK, openSecret: () => { throw new Error('no secrets here'); } };
  const driver = new DockerDriver(ctx, { socketPath: SOCKET, removeGraceMs: 1000 });
  t.teardown(() => driver.close());

  // The image comes from the shared dockerd as a `docker save` tar.
  t.same(await driver.loadImage(await dockerd.saveImage()), ['zone/busybox:latest']);

  const events: DriverEvent[] = [];
  const unwatch = driver.watch((e) => events.push(e));
  t.teardown(unwatch);
  const engineEvent = (available: boolean) => waitFor(() => events.find((e) => e.type === 'engine' && e.available === available), { timeoutMs: 90_000, what: `an engine event available=${available}` });

  // No bridge in this dockerd: the workload is on a zone network (NetworkMode none).
  const definition = normalizeWorkload({ name: 'survivor', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'], networks: [{ name: 'mesh', ip: '10.88.1.10' }] });
  const owner = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
  const spec: WorkloadSpec = { node: NODE, owner, blueprint: 'bp', workload: 'survivor', id: workloadId(NODE, owner, 'bp', 'survivor'), specHash: specHash(definition), definition };
  t.equal((await driver.ensure(spec)).state, 'running');
  await waitFor(() => events.find((e) => e.type === 'started' && e.id === spec.id), { timeoutMs: 20_000, what: 'the started event' });

  await dockerd.restart(async () => {
    const down = await engineEvent(false);
    t.match(down, { type: 'engine', available: false, reason: /dockerd not reachable|events stream ended/ });
    await t.rejects(driver.ensure(spec), EngineUnavailableError, 'calls fail as unavailable while it is away');
    t.equal((await driver.fingerprint()).available, false);

  });
  await engineEvent(true);
  const engineEvents = events.filter((e) => e.type === 'engine').map((e) => e.type === 'engine' && e.available);
  t.same(engineEvents, [false, true], 'one false, then one true');
  t.equal((await driver.ensure(spec)).state, 'running', 'ensure works again');
  t.equal((await driver.fingerprint()).available, true);
  await driver.remove(spec.id);
  t.same(await driver.list(NODE), []);
  t.ok(existsSync('/sys/class/net/docker0'), 'the shared dockerd\'s bridge is untouched');
});

t.test('the appliance marks workloads unknown while dockerd is away, then repairs them', async (t) => {
  const dir = join(WORK, 'node');
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const operator = readSigningKey(createdOperatorKey ?? join(dir, 'operator.key'));
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger: createLogger({ level: 'silent' }),
    drivers: (ctx) => [new DockerDriver(ctx, { socketPath: SOCKET, removeGraceMs: 1000 })],
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 3 },
  });
  appliance.start();
  t.teardown(() => appliance.close());
  const state = () => appliance.getBlueprint('lasting')?.workloads[0]?.state;
  const reaches = (wanted: string) => waitFor(() => state() === wanted, { timeoutMs: 90_000, what: `lasting/app ${wanted}` });

  await appliance.submit(signBlueprint({
    name: 'lasting', version: 1, owner: operator.publicKey, node: appliance.identity.id,
    networks: [{ name: 'mesh', subnet: '10.88.1.0/24' }],
    workloads: [{ name: 'app', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'], networks: [{ name: 'mesh', ip: '10.88.1.10' }] }],
  } as Blueprint, operator.secretKey));
  await reaches('running');
  const id = workloadId(appliance.identity.id, operator.publicKey, 'lasting', 'app');
  const before = await dockerd.client().getContainer(id).inspect();

  // A stopping dockerd stops its containers too: the engine must start them again.
  await dockerd.restart(async () => {
    await reaches('unknown');
  });
  await reaches('running');
  const after = await dockerd.client().getContainer(id).inspect();
  t.equal(after.State.Running, true, 'running again');
  t.not(after.State.StartedAt, before.State.StartedAt, 'started again after dockerd came back');
  t.ok(appliance.events({ blueprint: 'lasting' }).some((e) => e.to === 'unknown'), 'unknown while dockerd was away, in the events');
});

// dockerd goes away and comes back: the driver says so and works again. A private
// dockerd of this test is killed, never the shared one.
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
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
import { waitFor } from '../../helpers/wait.ts';

const run = promisify(execFile);
const PID = process.pid;
const NODE = `rc${PID}`;
const DATA_ROOT = `/var/lib/zone-test-dockerd-${PID}`;
const EXEC_ROOT = `/run/zt-${PID}`; // short: containerd's sockets live under it
const SOCKET = `/run/zone-test-dockerd-${PID}.sock`;
const WORK = join(tmpdir(), `zone-test-dockerd-${PID}`);
const LOG = join(WORK, 'dockerd.log');
const IMAGE_TAR = join(WORK, 'busybox.tar');

let dockerd: ChildProcess | null = null;

function startDockerd(): ChildProcess {
  const log = openSync(LOG, 'a');
  // In a network namespace of its own: a dockerd with --bridge=none deletes `docker0`,
  // which would be the shared dockerd's. unshare execs dockerd, so the PID is dockerd's.
  const child = spawn('unshare', ['--net', 'dockerd',
    '--host', `unix://${SOCKET}`, '--data-root', DATA_ROOT, '--exec-root', EXEC_ROOT, '--pidfile', join(EXEC_ROOT, 'dockerd.pid'),
    '--bridge=none', '--iptables=false', '--ip-masq=false',
    '--containerd-namespace', `zt${PID}`, '--containerd-plugins-namespace', `zt${PID}p`,
  ], { stdio: ['ignore', log, log] });
  closeSync(log);
  return child;
}

/** dockerd makes its data root a mount point of its own, and network namespaces are mounts too. */
async function unmountUnder(roots: string[]): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '');
  const ours = mounts.filter((m) => roots.some((root) => m === root || m.startsWith(`${root}/`)));
  // Deepest first.
  for (const m of ours.sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => {});
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/**
 * Stops the test dockerd with SIGTERM, as a service manager restarts it (after a SIGKILL
 * its orphaned containerd stays a zombie until init reaps it, and a new dockerd waits
 * on that zombie's socket), runs `whileDown`, and starts it again.
 */
async function restartDockerd(whileDown: () => Promise<void>): Promise<void> {
  const first = dockerd;
  if (!first) throw new Error('the test dockerd is not running');
  first.kill('SIGTERM');
  await waitFor(() => exited(first), { timeoutMs: 60_000, what: 'the test dockerd to exit' });
  await whileDown();
  dockerd = startDockerd();
  await answering();
}

async function answering(): Promise<void> {
  await waitFor(() => new Docker({ socketPath: SOCKET }).ping().then(() => true), { timeoutMs: 90_000, what: `the test dockerd on ${SOCKET} (log: ${LOG})` });
}

t.teardown(async () => {
  // A test that failed while its dockerd was down restarts it to remove its containers.
  if (dockerd && exited(dockerd)) {
    dockerd = startDockerd();
    await answering().catch(() => {});
  }
  if (dockerd && !exited(dockerd)) {
    const docker = new Docker({ socketPath: SOCKET });
    const ours = await docker.listContainers({ all: true }).catch(() => []);
    await Promise.all(ours.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
    dockerd.kill('SIGTERM');
    const child = dockerd;
    await waitFor(() => exited(child), { timeoutMs: 30_000, what: 'the test dockerd to exit' }).catch(() => child.kill('SIGKILL'));
  }
  await unmountUnder([DATA_ROOT, EXEC_ROOT]);
  for (const path of [DATA_ROOT, EXEC_ROOT, SOCKET, WORK]) rmSync(path, { recursive: true, force: true });
});

t.test('watch reports dockerd going away and coming back; ensure works again', async (t) => {
  mkdirSync(WORK, { recursive: true });
  dockerd = startDockerd();
  await answering();

  const ctx: DriverContext = { node: NODE, dataDir: WORK, openSecret: () => { throw new Error('no secrets here'); } };
  const driver = new DockerDriver(ctx, { socketPath: SOCKET, removeGraceMs: 1000 });
  t.teardown(() => driver.close());

  // The image comes from the shared dockerd as a `docker save` tar.
  await pipeline(await new Docker().getImage('zone/busybox:latest').get(), createWriteStream(IMAGE_TAR));
  t.same(await driver.loadImage(IMAGE_TAR), ['zone/busybox:latest']);

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

  await restartDockerd(async () => {
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
  const before = await new Docker({ socketPath: SOCKET }).getContainer(id).inspect();

  // A stopping dockerd stops its containers too: the engine must start them again.
  await restartDockerd(async () => {
    await reaches('unknown');
  });
  await reaches('running');
  const after = await new Docker({ socketPath: SOCKET }).getContainer(id).inspect();
  t.equal(after.State.Running, true, 'running again');
  t.not(after.State.StartedAt, before.State.StartedAt, 'started again after dockerd came back');
  t.ok(appliance.events({ blueprint: 'lasting' }).some((e) => e.to === 'unknown'), 'unknown while dockerd was away, in the events');
});

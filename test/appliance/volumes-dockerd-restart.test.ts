// A container's volume outlives a restart of dockerd: the appliance runs against a private
// dockerd of this test (restarting the shared one would break the tests running beside
// it), which is stopped by its PID and started again; the node starts the container
// again, and the data written before is there.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { GIB } from '../../appliance/admission.ts';
import { createAppliance } from '../../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { buildVolumeProvider } from '../../appliance/drivers.ts';
import { createLogger } from '../../appliance/logger.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import type { VolumeProvider } from '../../drivers/contract.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';
import { workloadId } from '../../drivers/names.ts';
import { startPrivateDockerd } from '../helpers/private-dockerd.ts';
import { waitFor } from '../helpers/wait.ts';

const dockerd = await startPrivateDockerd();
await dockerd.loadImage();

const dir = join(dockerd.work, 'node');
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey ?? join(dir, 'operator.key'));
let volumes: VolumeProvider | null = null;
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: createLogger({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { socketPath: dockerd.socket, removeGraceMs: 1000 })],
  volumes: (ctx) => (volumes = buildVolumeProvider(ctx)),
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 3 },
});
appliance.start();
// Registered after the dockerd's: runs first, while it still answers (teardowns run last-in first-out).
t.teardown(async () => {
  await appliance.close();
  for (const v of await volumes!.list()) await volumes!.remove(v.id);
});

const id = workloadId(appliance.identity.id, operator.publicKey, 'notes', 'db');
const inside = (command: string) => {
  try {
    return execFileSync('docker', ['-H', `unix://${dockerd.socket}`, 'exec', id, 'sh', '-c', command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return null;
  }
};
const state = () => appliance.getBlueprint('notes')?.workloads[0]?.state;

t.test('the data is there after dockerd is stopped by its PID and started again', async (t) => {
  await appliance.submit(signBlueprint({
    name: 'notes', version: 1, owner: operator.publicKey, node: appliance.identity.id,
    volumes: [{ name: 'data', size: '16Mi' }],
    // This dockerd has no bridge: the workload is on a zone network (NetworkMode none).
    networks: [{ name: 'mesh', subnet: '10.88.1.0/24' }],
    workloads: [{
      name: 'db', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'echo started >> /data/log; exec sleep 3600'],
      mounts: [{ volume: 'data', target: '/data' }], networks: [{ name: 'mesh', ip: '10.88.1.10' }],
    }],
  } as Blueprint, operator.secretKey));
  await waitFor(() => inside('cat /data/log') === 'started\n', { timeoutMs: 60_000, what: 'the first start wrote its line' });
  t.equal(inside('echo "kept across the restart" > /data/notes && sync && cat /data/notes'), 'kept across the restart\n');

  const pid = dockerd.pid;
  await dockerd.restart(async () => {
    await waitFor(() => state() === 'unknown', { timeoutMs: 60_000, what: 'the workload unknown while dockerd is away' });
  });
  t.not(dockerd.pid, pid, 'another dockerd process');
  // A stopping dockerd stops its containers: the node starts it again, on the same volume.
  await waitFor(() => inside('cat /data/log') === 'started\nstarted\n', { timeoutMs: 90_000, what: 'the container started again and found the first line' });
  t.equal(inside('cat /data/notes'), 'kept across the restart\n', 'what was written before the restart is there');
  await waitFor(() => state() === 'running', { timeoutMs: 30_000, what: 'the workload running again in its record' });
  t.same((await appliance.listVolumes()).map((v) => [v.name, v.state, v.attachedTo]), [['data', 'ready', ['db']]], 'the volume stayed mounted on the host');
});

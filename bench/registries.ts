// Pulls from a registry of the node config: a local docker-registry (htpasswd auth, on
// loopback) holding an image of ~N MiB (the busybox rootfs and N MiB of random bytes):
//  pull:   the Docker driver's pull of a pinned image (credentials opened, progress lines
//          counted and rate-limited, the image ID checked) against dockerd's own pull of
//          the same reference with the same credentials and nothing else;
//  ensure: a pinned workload's ensure() (create and start) when the image is only in the
//          registry, against the same ensure() once the image is on the node.
// Run: node --import tsx bench/registries.ts [MiB, default 100] [rounds, default 3]
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import Docker from 'dockerode';
import { normalizeWorkload, specHash } from '../blueprints/normalize.ts';
import type { ContainerWorkload } from '../blueprints/schema.ts';
import { removeNodeContainers } from '../cli/cluster/grid.ts';
import type { RegistryAccess, WorkloadSpec } from '../drivers/contract.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { pullPinned } from '../drivers/docker/registries.ts';
import { KeyedLock } from '../drivers/keyed-lock.ts';
import { workloadId } from '../drivers/names.ts';
import { buildImageArchive, removeImage } from '../test/helpers/image-archive.ts';
import { startRegistry } from '../test/helpers/registry.ts';

const MIB = Number.parseInt(process.argv[2] ?? '100', 10);
const ROUNDS = Number.parseInt(process.argv[3] ?? '3', 10);
const NODE = `breg${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const REPO = `zone-bench/registry-${process.pid}`;
const docker = new Docker();
const dir = await mkdtemp('/var/tmp/zone-bench-registries-');
const registry = await startRegistry('bench', randomBytes(12).toString('hex'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seconds = async (fn: () => Promise<unknown>) => {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
};

try {
  const image = await buildImageArchive(dir, `${REPO}:build`, randomBytes(MIB * 2 ** 20), { keep: true });
  await registry.push(image.digest, REPO, '1');
  const reference = `${registry.host}/${REPO}:1`;
  const credentials = { username: registry.username, password: registry.password };
  const access: RegistryAccess = { host: registry.host, namespace: '', credentials: () => credentials };
  let lines = 0;
  const driver = new DockerDriver({
    node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); },
    registries: [access], pullProgress: () => { lines++; },
  }, { removeGraceMs: 1000 });
  const definition = normalizeWorkload({ name: 'app', kind: 'container', image: `${REPO}:1@${image.digest}`, command: ['sleep', '3600'] } as ContainerWorkload);
  const spec: WorkloadSpec = { node: NODE, owner: OWNER, blueprint: 'bench', workload: 'app', id: workloadId(NODE, OWNER, 'bench', 'app'), specHash: specHash(definition), definition };
  const removeContainer = () => docker.getContainer(spec.id).remove({ force: true }).catch(() => undefined);

  const raw: number[] = [];
  const zone: number[] = [];
  const fresh: number[] = [];
  const present: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await removeImage(image.digest);
    raw.push(await seconds(async () => {
      const stream = await docker.pull(reference, { authconfig: { ...credentials, serveraddress: registry.host } });
      await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: unknown) => (err ? reject(err) : resolve(out))));
    }));
    await removeImage(image.digest);
    zone.push(await seconds(() => pullPinned({ docker, registries: [access], pulls: new KeyedLock() }, 'app', { name: `${REPO}:1`, digest: image.digest }, 'is not here', () => { lines++; })));
    await removeImage(image.digest);
    fresh.push(await seconds(() => driver.ensure(spec)));
    await removeContainer();
    present.push(await seconds(() => driver.ensure(spec)));
    await removeContainer();
  }
  await driver.close();
  const s = (x: number) => `${x.toFixed(2)} s`;
  console.log(`registries: image of ${MIB} MiB from a local docker-registry (htpasswd auth), median of ${ROUNDS} rounds`);
  console.log(`  pull:   Zone's pinned pull ${s(median(zone))} vs dockerd's own pull ${s(median(raw))}: ratio ${(median(zone) / median(raw)).toFixed(2)} (${lines} progress lines in all)`);
  console.log(`  ensure: image only in the registry ${s(median(fresh))} vs already on the node ${s(median(present))}: ratio ${(median(fresh) / median(present)).toFixed(2)}`);
  await removeImage(image.digest);
} finally {
  await removeNodeContainers([NODE]).catch(() => undefined);
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
}

// Pinned images against the real dockerd: an image that is only in the grid (an archive
// served by an image source) is fetched, checked and loaded before its container is made;
// an archive that is not what the digest says, or a digest the owner has not pushed, is
// refused on the workload and nothing runs.
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import { WorkloadSpecError, type WorkloadSpec } from '../../../drivers/contract.ts';
import { gridStandIn } from '../../helpers/grid-stand-in.ts';
import { workloadId } from '../../../drivers/names.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { buildImageArchive, removeImage } from '../../helpers/image-archive.ts';

const run = promisify(execFile);
const NODE = `pin${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
const dir = await mkdtemp(join(tmpdir(), 'zone-pinned-'));
const image = await buildImageArchive(dir, `zone-test/pinned-${process.pid}:1`, 'only-in-the-grid\n');
const other = await buildImageArchive(dir, `zone-test/pinned-other-${process.pid}:1`, 'another image\n');

/** What the grid holds for the owner, by digest. */
const grid = gridStandIn(OWNER, 'container', [[image.digest, image.path]]);
const source = grid.source;
const { docker, driver } = testDockerDriver(NODE, { images: source, dataDir: dir });
t.teardown(async () => {
  // The containers first: an image a container uses cannot be removed.
  await driver.close();
  await removeNodeContainers([NODE]);
  await removeImage(image.digest);
  await removeImage(other.digest);
  await rm(dir, { recursive: true, force: true });
});

function specOf(workload: string, reference: string): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: reference, command: ['sleep', '3600'] } as ContainerWorkload);
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload, id: workloadId(NODE, OWNER, 'bp', workload), specHash: specHash(definition), definition };
}

const containerExists = (id: string) => docker.getContainer(id).inspect().then(() => true, () => false);

t.test('a pinned image only the grid has is fetched, loaded and run; the extra file is there', async (t) => {
  await t.rejects(docker.getImage(image.digest).inspect(), 'dockerd does not have it before');
  const spec = specOf('app', `zone-test/app@${image.digest}`);
  const observed = await driver.ensure(spec);
  t.equal(observed.state, 'running');
  t.equal(grid.fetches(), 1, 'fetched once');
  const { stdout } = await run('docker', ['exec', spec.id, 'cat', '/zone-extra.txt']);
  t.equal(stdout, 'only-in-the-grid\n');
  t.equal((await docker.getContainer(spec.id).inspect()).Image, image.digest, 'the container runs the pinned image');
  t.same((await docker.getImage(image.digest).inspect()).RepoTags, [], 'loaded without the names it was saved with');
  await t.rejects(docker.getImage(image.tag).inspect(), 'so it takes no name other workloads use');
  await driver.ensure(specOf('again', `zone-test/app@${image.digest}`));
  t.equal(grid.fetches(), 1, 'a second workload of the same image fetches nothing');
});

t.test('an archive that is not the pinned image is refused as a digest mismatch; nothing is loaded or run', async (t) => {
  // The grid's object for `forged` holds another image's archive.
  const forged = `sha256:${'ab'.repeat(32)}`;
  grid.files.set(forged, other.path);
  const spec = specOf('forged', `zone-test/app@${forged}`);
  const err = await driver.ensure(spec).catch((e: unknown) => e);
  t.ok(err instanceof WorkloadSpecError, 'a spec error, shown on the workload');
  t.match((err as Error).message, /workload forged: image: image digest mismatch: .*holds sha256:[0-9a-f]{64}; not run/);
  t.notOk(await containerExists(spec.id), 'no container');
  await t.rejects(docker.getImage(other.digest).inspect(), 'the other image was not loaded');

  // One byte changed in the archive of the pinned digest: refused as well.
  const tampered = join(dir, 'tampered.tar');
  const bytes = await readFile(other.path);
  bytes[bytes.length - 4096 - 600]! ^= 1;
  await writeFile(tampered, bytes);
  grid.files.set(other.digest, tampered);
  const spec2 = specOf('tampered', `zone-test/other@${other.digest}`);
  await t.rejects(driver.ensure(spec2), { name: 'WorkloadSpecError', message: /image digest mismatch/ });
  t.notOk(await containerExists(spec2.id));
});

t.test("a digest the owner has not pushed is refused, even when dockerd has that image", async (t) => {
  const spec = specOf('stranger', `zone/busybox@${(await docker.getImage('zone/busybox').inspect()).Id}`);
  await t.rejects(driver.ensure(spec), { name: 'WorkloadSpecError', message: /is not in the owner's grid image store/ });
  t.notOk(await containerExists(spec.id));
});

// The node's collector against the real dockerd: an image the node loaded from the grid is
// removed once no blueprint of the node pins it for the grace period, never while one pins
// it, never while a container still uses it; images the node did not load itself
// (zone/busybox, one a human loaded) are never touched, pinned or not.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import { ImageService } from '../../../appliance/images/service.ts';
import type { WorkloadSpec } from '../../../drivers/contract.ts';
import { gridStandIn } from '../../helpers/grid-stand-in.ts';
import { workloadId } from '../../../drivers/names.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { buildImageArchive, removeImage } from '../../helpers/image-archive.ts';

const GRACE = 60_000;
const NODE = `lgc${randomBytes(3).toString('hex')}`;
const OWNER = `ed25519:${Buffer.alloc(32, 3).toString('base64')}`;
const dir = await mkdtemp(join(tmpdir(), 'zone-local-gc-'));
const [a, b] = await Promise.all(['a', 'b'].map((x) => buildImageArchive(dir, `zone-test/lgc-${x}-${process.pid}:1`, `image ${x}\n`)));
// Loaded by a human (kept in dockerd): the owner pushed it too, so a blueprint may pin it.
const human = await buildImageArchive(dir, `zone-test/lgc-human-${process.pid}:1`, 'by hand\n', { keep: true });
/** What the grid holds for the owner, by digest. */
const grid = gridStandIn(OWNER, 'container', [[a!.digest, a!.path], [b!.digest, b!.path], [human.digest, human.path]]);
const source = grid.source;
const { docker, driver } = testDockerDriver(NODE, { images: source, dataDir: dir });
t.teardown(async () => {
  await driver.close();
  for (const image of [a!, b!, human]) await removeImage(image.digest);
  await rm(dir, { recursive: true, force: true });
});

let pinned: string[] = [];
let now = new Date();
const service = new ImageService({
  node: NODE, uploadsDir: join(dir, 'uploads'), ownerImageBytes: 2 ** 30, imageStoreBytes: 2 ** 30, acceptsOwner: () => true,
  gcGraceMs: GRACE, pinned: () => pinned.map((digest) => ({ owner: OWNER, digest })), localImages: [driver.localImages],
  openStore: () => Promise.reject(new Error('the node\'s own images need no grid store')), logger: pino({ level: 'silent' }), clock: () => now,
});

function specOf(workload: string, digest: string): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: `zone-test/x@${digest}`, command: ['sleep', '3600'] } as ContainerWorkload);
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload, id: workloadId(NODE, OWNER, 'bp', workload), specHash: specHash(definition), definition };
}
const present = (reference: string) => docker.getImage(reference).inspect().then(() => true, () => false);
const later = (ms: number) => { now = new Date(now.getTime() + ms); };

t.test('images the node loaded go after the grace period without a pin, never while pinned or used', async (t) => {
  const [sa, sb, sh] = [specOf('a', a!.digest), specOf('b', b!.digest), specOf('h', human.digest)];
  for (const s of [sa, sb, sh]) await driver.ensure(s);
  t.same((await driver.localImages.list()).map((i) => i.digest).sort(), [a!.digest, b!.digest].sort(), 'the node recorded what it loaded, not the image a human loaded');

  pinned = [a!.digest, b!.digest, human.digest];
  later(10 * GRACE);
  t.same(await service.collectLocal(), [], 'pinned images stay, however long since they were loaded');

  // The blueprints are gone; b's container is still there (the engine has not removed it yet).
  await driver.remove(sa.id);
  await driver.remove(sh.id);
  pinned = [];
  later(GRACE - 1);
  t.same(await service.collectLocal(), [], 'nothing goes within the grace period after the last pin');
  t.ok(await present(a!.digest), 'a is still there');

  later(1);
  t.same(await service.collectLocal(), [a!.digest], 'a goes once the grace period is over');
  t.notOk(await present(a!.digest), 'gone from dockerd');
  t.ok(await present(b!.digest), 'b stays while a container uses it');
  t.ok(await present(human.digest), 'the image a human loaded stays');
  t.ok(await present('zone/busybox'), 'zone/busybox stays');

  await driver.remove(sb.id);
  later(1000);
  t.same(await service.collectLocal(), [b!.digest], 'b goes at the next pass once its container is gone');
  t.notOk(await present(b!.digest));
  t.same(await driver.localImages.list(), [], 'nothing left on the record');
  t.ok(await present(human.digest), 'the image a human loaded is never the collector\'s');
});

t.test('an image the collector removed is fetched again when a blueprint pins it anew', async (t) => {
  const s = specOf('again', a!.digest);
  t.equal((await driver.ensure(s)).state, 'running');
  t.ok(await present(a!.digest), 'a is still there');
  await driver.remove(s.id);
});

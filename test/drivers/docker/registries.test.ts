// Where the Docker driver finds a workload's image, against the real dockerd and a real
// registry (docker-registry with htpasswd auth): on the node when it is the owner's to
// run, then the owner's grid store, then the node's registries; another owner's image
// loaded from the grid is never run for someone who cannot get it either way; a registry
// that never answers is given up and the next one asked.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import type { WorkloadSpec } from '../../../drivers/contract.ts';
import { gridStandIn } from '../../helpers/grid-stand-in.ts';
import { ensureNamedImage } from '../../../drivers/docker/registries.ts';
import { KeyedLock } from '../../../drivers/keyed-lock.ts';
import { workloadId } from '../../../drivers/names.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { buildImageArchive, removeImage } from '../../helpers/image-archive.ts';
import { registryForFile } from '../../helpers/registry.ts';

const NODE = `reg${process.pid}`;
const owner = (n: number) => `ed25519:${Buffer.alloc(32, n).toString('base64')}`;
const [ALICE, BOB, CAROL] = [owner(21), owner(22), owner(23)];
const dir = await mkdtemp(join(tmpdir(), 'zone-registries-'));
const registry = await registryForFile('zone', 'registry-pass');
const repo = (what: string) => `zone-test/${what}-${process.pid}`;

/** in both: Alice's grid store and the registry; registryOnly: only the registry; gridOnly: only Alice's grid store. */
const both = await buildImageArchive(dir, `${repo('both')}:1`, 'in the grid and the registry\n', { keep: true });
const registryOnly = await buildImageArchive(dir, `${repo('registry')}:1`, 'only in the registry\n', { keep: true });
const gridOnly = await buildImageArchive(dir, `${repo('grid')}:1`, 'only in the grid\n');
await registry.push(both.digest, repo('both'), '1');
await registry.push(registryOnly.digest, repo('registry'), '1');
await removeImage(both.digest);
await removeImage(registryOnly.digest);

/** What the grid holds for the owner, by digest. */
const grid = gridStandIn(ALICE, 'container', [[both.digest, both.path], [gridOnly.digest, gridOnly.path]]);
const source = grid.source;
const lines: { workload: string; line: string }[] = [];
const { docker, driver } = testDockerDriver(NODE, {
  images: source, dataDir: dir,
  registries: [{ host: registry.host, namespace: '', credentials: () => ({ username: registry.username, password: registry.password }) }],
  pullProgress: (who, line) => lines.push({ workload: who.workload, line }),
});
t.teardown(async () => {
  // The containers first: an image a container uses cannot be removed.
  await driver.close();
  await removeNodeContainers([NODE]);
  await Promise.all([both, registryOnly, gridOnly].map((i) => removeImage(i.digest)));
  await rm(dir, { recursive: true, force: true });
});

function specOf(o: string, workload: string, reference: string): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: reference, command: ['sleep', '3600'] } as ContainerWorkload);
  return { node: NODE, owner: o, blueprint: 'bp', workload, id: workloadId(NODE, o, 'bp', workload), specHash: specHash(definition), definition };
}
const pulledFor = (workload: string) => lines.filter((l) => l.workload === workload && l.line.startsWith('pulled ')).length;
const containerExists = (id: string) => docker.getContainer(id).inspect().then(() => true, () => false);

t.test('the grid store comes before the registries', async (t) => {
  const observed = await driver.ensure(specOf(ALICE, 'a1', `${repo('both')}:1@${both.digest}`));
  t.equal(observed.state, 'running');
  t.equal(grid.fetches(), 1, 'fetched from the grid');
  t.equal(pulledFor('a1'), 0, 'not pulled');
});

t.test('an image on the node that another owner loaded from the grid is pulled from the registry for one who may have it', async (t) => {
  t.same((await docker.getImage(both.digest).inspect()).RepoDigests, [], 'here, loaded from Alice\'s grid store');
  const observed = await driver.ensure(specOf(BOB, 'b1', `${repo('both')}:1@${both.digest}`));
  t.equal(observed.state, 'running');
  t.equal(pulledFor('b1'), 1, 'Bob has it through the registry, not through Alice');
  t.equal(grid.fetches(), 1);
});

t.test('another owner\'s image from the grid that no registry has is refused, though the node has it', async (t) => {
  await driver.ensure(specOf(ALICE, 'a2', `${repo('grid')}:1@${gridOnly.digest}`));
  const spec = specOf(BOB, 'b2', `${repo('grid')}:1@${gridOnly.digest}`);
  await t.rejects(driver.ensure(spec), {
    name: 'WorkloadSpecError',
    message: new RegExp(`image ${repo('grid')}:1@${gridOnly.digest} is not in the owner's grid image store \\(push it with \`zone image push\`\\), and no registry gave it: ${registry.host}: .*manifest unknown`),
  });
  t.notOk(await containerExists(spec.id), 'nothing runs');
});

t.test('an image pulled from a registry is anyone\'s on this node: a second owner runs it without another pull', async (t) => {
  t.equal((await driver.ensure(specOf(BOB, 'b3', `${repo('registry')}:1@${registryOnly.digest}`))).state, 'running');
  t.equal(pulledFor('b3'), 1);
  t.equal((await driver.ensure(specOf(CAROL, 'c3', `${repo('registry')}:1@${registryOnly.digest}`))).state, 'running');
  t.equal(lines.filter((l) => l.workload === 'c3').length, 0, 'no pull for the second');
});

t.test('a registry that takes the connection and never answers is given up after the stall time; the next one is asked', async (t) => {
  const held: Socket[] = [];
  const silent = createServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    held.forEach((s) => s.destroy());
    silent.close();
  });
  const name = `${repo('registry')}:1`;
  const said: string[] = [];
  await ensureNamedImage({
    docker, pulls: new KeyedLock(), stallMs: 1000,
    registries: [
      { host: `127.0.0.1:${(silent.address() as AddressInfo).port}`, namespace: '', credentials: () => null },
      { host: registry.host, namespace: '', credentials: () => ({ username: registry.username, password: registry.password }) },
    ],
  }, 'w', name, (line) => said.push(line));
  t.equal((await docker.getImage(name).inspect()).Id, registryOnly.digest, 'pulled from the second registry, tagged as named');
  t.match(said[0], /^pulling 127\.0\.0\.1:\d+\/zone-test\/registry-\d+:1 from registry 127\.0\.0\.1:\d+$/, 'the silent one was asked first');
  t.ok(held.length > 0, 'and dockerd did connect to it');
  await docker.getImage(name).remove();
});

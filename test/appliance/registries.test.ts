// The node config's registries with the real Docker driver and a real registry (Debian's
// docker-registry with htpasswd auth): an image that is only in the registry is pulled
// with the sealed credentials and runs, with its progress in the events; wrong
// credentials are the workload's error without the password; a pin the registry's
// image does not match is refused and nothing runs.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { loadOrCreateIdentity } from '../../appliance/identity.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { sealSecret } from '../../blueprints/seal.ts';
import { registryPasswordField } from '../../blueprints/sealed-fields.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';
import { workloadId } from '../../drivers/names.ts';
import { buildImageArchive, removeImage } from '../helpers/image-archive.ts';
import { registryForFile } from '../helpers/registry.ts';
import { waitFor } from '../helpers/wait.ts';

const run = promisify(execFile);
const docker = new Docker();
const dir = mkdtempSync(join(tmpdir(), 'zone-registries-'));
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const WRONG = `wrong-${randomBytes(12).toString('hex')}`;
const registry = await registryForFile('zone', PASSWORD);

// An image nobody has but the registry: built, pushed, removed from dockerd.
const REPO = `zone-test/registry-app-${process.pid}`;
const image = await buildImageArchive(dir, `${REPO}:build`, `from the registry ${process.pid}\n`, { keep: true });
const manifest = await registry.push(image.digest, REPO, '1');
await removeImage(image.digest);

const identity = loadOrCreateIdentity(dir);
const seal = (clear: string) => sealSecret(clear, identity.box.publicKey, {
  owner: identity.signing.publicKey, node: identity.id, blueprint: '*', field: registryPasswordField(registry.host),
});
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir }));
const operator = readSigningKey(createdOperatorKey!);

/** Everything the appliance logged, at every level: a password must never be in it. */
let logged = '';
const logStream = new PassThrough().on('data', (chunk: Buffer) => {
  logged += chunk.toString('utf8');
});

async function start(password: string): Promise<ZoneAppliance> {
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ registries: [{ url: registry.host, username: registry.username, password: seal(password) }] }));
  const appliance = await createAppliance({
    config: loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir }), trustPolicy: policy, logger: pino({ level: 'trace' }, logStream),
    drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 200, maxMs: 1000, stableMs: 60_000, crashloopAfter: 5 },
  });
  appliance.start();
  return appliance;
}

let appliance = await start(WRONG);
t.teardown(async () => {
  await appliance.close();
  await removeNodeContainers([identity.id]).catch(() => undefined);
  await removeImage(image.digest);
  rmSync(dir, { recursive: true, force: true });
});

const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: identity.id, ...bp } as Blueprint, operator.secretKey);
const status = (bp: string, w: string) => appliance.getBlueprint(bp)?.workloads.find((x) => x.workload === w);
const failed = (bp: string, w: string, what: string) => waitFor(() => {
  const s = status(bp, w);
  return s?.state === 'failed' ? s : null;
}, { timeoutMs: 60_000, what });
const container = (bp: string, w: string) => docker.getContainer(workloadId(identity.id, operator.publicKey, bp, w)).inspect().catch(() => null);
const allEvents = () => appliance.events({ limit: 10_000 });

t.test('wrong credentials: a clear error on the workload, without the password anywhere', async (t) => {
  await appliance.submit(sign({ name: 'app', version: 1, workloads: [{ name: 'pinned', kind: 'container', image: `${REPO}:1@${image.digest}`, command: ['sleep', '3600'] }] }));
  const s = await failed('app', 'pinned', 'the pull refused');
  t.match(s.lastError, `image ${REPO}:1@${image.digest}`);
  t.match(s.lastError, `no registry gave it: ${registry.host}: unauthorized: authentication required`);
  t.equal(await container('app', 'pinned'), null, 'nothing was created');
  const seen = JSON.stringify([appliance.getBlueprint('app'), allEvents()]) + logged;
  t.notMatch(seen, WRONG, 'the sealed password is in no status, event or log line');
  t.notMatch(seen, PASSWORD);
});

t.test('right credentials: the pinned image is pulled, checked and runs; a name without a digest too; the pull shows in the events', async (t) => {
  await appliance.close();
  appliance = await start(PASSWORD);
  await appliance.submit(sign({
    name: 'app', version: 2, workloads: [
      { name: 'pinned', kind: 'container', image: `${REPO}:1@${image.digest}`, command: ['sleep', '3600'] },
      { name: 'named', kind: 'container', image: `${REPO}:1`, command: ['sleep', '3600'] },
    ],
  }));
  await waitFor(() => status('app', 'pinned')?.state === 'running' && status('app', 'named')?.state === 'running', { timeoutMs: 60_000, what: 'both workloads running' });
  const { stdout } = await run('docker', ['exec', workloadId(identity.id, operator.publicKey, 'app', 'pinned'), 'cat', '/zone-extra.txt']);
  t.equal(stdout, `from the registry ${process.pid}\n`, 'the registry\'s image is the one that runs');
  t.equal((await container('app', 'pinned'))?.Image, image.digest);
  t.equal((await docker.getImage(`${REPO}:1`).inspect()).Id, image.digest, 'the name without a digest is tagged as the blueprint names it');

  const pulls = allEvents().filter((e) => e.to === 'image pull' && e.blueprint === 'app');
  const reference = `${registry.host}/${REPO}:1`;
  t.ok(pulls.some((e) => e.reason === `pulling ${reference} from registry ${registry.host} as zone`), 'the start of the pull');
  t.ok(pulls.some((e) => /^pulling .*: \d+\/\d+ layers, [\d.]+ (B|KiB|MiB) of [\d.]+ (B|KiB|MiB)$/.test(e.reason)), 'layers and bytes done');
  t.ok(pulls.some((e) => new RegExp(`^pulled ${reference} \\(${image.digest}\\) in [\\d.]+ s: 1/1 layers`).test(e.reason)), 'the end, with what came');
  t.ok(pulls.length < 20, `rate-limited (${pulls.length} lines)`);
  t.notMatch(JSON.stringify(allEvents()) + logged, PASSWORD);
});

t.test('a pin the registry\'s image does not match is refused and nothing runs', async (t) => {
  const wrong = `sha256:${'e'.repeat(64)}`;
  await appliance.submit(sign({ name: 'bad', version: 1, workloads: [{ name: 'w', kind: 'container', image: `${REPO}:1@${wrong}`, command: ['sleep', '3600'] }] }));
  const s = await failed('bad', 'w', 'the mismatch refused');
  t.match(s.lastError, `image digest mismatch: ${REPO}:1@${wrong}: ${registry.host} has ${registry.host}/${REPO}:1 as ${image.digest}; not run`);
  t.equal(await container('bad', 'w'), null);

  // The digest `docker push` printed is the manifest's, not the image ID a blueprint pins: the error says so.
  await appliance.submit(sign({ name: 'bad', version: 2, workloads: [{ name: 'w', kind: 'container', image: `${REPO}:1@${manifest}`, command: ['sleep', '3600'] }] }));
  const m = await waitFor(() => {
    const x = status('bad', 'w');
    return x?.lastError?.includes(manifest) ? x : null;
  }, { timeoutMs: 60_000, what: 'the manifest digest refused' });
  t.match(m.lastError, `${manifest} is the digest of its manifest; a blueprint pins the image ID`);
  t.equal(await container('bad', 'w'), null);
});

t.test('a name that names a registry the config does not list is refused without asking it', async (t) => {
  await appliance.submit(sign({ name: 'far', version: 1, workloads: [{ name: 'w', kind: 'container', image: 'registry.invalid:5000/app:1', command: ['sleep', '3600'] }] }));
  const s = await failed('far', 'w', 'the unlisted registry refused');
  t.match(s.lastError, `image registry.invalid:5000/app:1 names registry registry.invalid:5000, which is not among this node's registries (${registry.host})`);
});

// The grid's release store on a real nats-server: a node that receives a bundle stores
// it; another takes it by digest or version, verified and unpacked as an upload is; an
// object changed in the store (a file tampered with, another release under the name, a
// release its signers cannot carry) is refused and nothing of it is unpacked.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import pino from 'pino';
import t from 'tap';
import { writeBundle } from '../../../appliance/release/bundle.ts';
import { releaseGridOf } from '../../../appliance/release/grid-releases.ts';
import { releaseDigest, validateSignedRelease, type SignedRelease } from '../../../appliance/release/manifest.ts';
import { NodeRelease } from '../../../appliance/release/node-release.ts';
import { signRelease } from '../../../appliance/release/sign.ts';
import type { ReleaseRef } from '../../../appliance/release/state.ts';
import { EventLog } from '../../../appliance/events.ts';
import { MIGRATIONS } from '../../../appliance/migrations.ts';
import { Store } from '../../../appliance/store.ts';
import type { ZoneEvent } from '../../../appliance/types.ts';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';
import { natsForFile } from '../../helpers/nats.ts';
import { waitFor } from '../../helpers/wait.ts';

const logger = pino({ level: 'silent' });
const nc = await natsForFile('grid-releases', logger);
const dir = mkdtempSync(join(tmpdir(), 'zone-grid-releases-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const operator = generateSigningKeyPair();
const stranger = generateSigningKeyPair();
const policy = { signers: [{ key: operator.publicKey, weight: 1, label: 'operator' }], threshold: 1 };

const tree = join(dir, 'tree');
mkdirSync(join(tree, 'api'), { recursive: true });
writeFileSync(join(tree, 'api/main.ts'), 'console.log("v2");\n');
const fileOf = (path: string) => {
  const bytes = readFileSync(join(tree, path));
  return { path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
};
const releaseOf = (version: string): SignedRelease => validateSignedRelease({
  manifest: { format: 'zone-release-v1', version, engines: { node: '>=20' }, storeSchema: MIGRATIONS.length, builtAt: '2026-11-30T00:00:00Z', files: [fileOf('api/main.ts')] },
});
const good = signRelease(releaseOf('0.2.0'), operator.secretKey);
const bundles = { good: join(dir, 'good.tar.gz'), tampered: join(dir, 'tampered.tar.gz'), other: join(dir, 'other.tar.gz'), stranger: join(dir, 'stranger.tar.gz') };
await writeBundle(bundles.good, good, tree);
await writeBundle(bundles.tampered, good, tree, new Map([['api/main.ts', Buffer.from('console.log("v3");\n')]]));
await writeBundle(bundles.other, signRelease(releaseOf('0.3.0'), operator.secretKey), tree);
await writeBundle(bundles.stranger, signRelease(releaseOf('0.2.0'), stranger.secretKey), tree);

/** A node's release part on its own data dir, with a supervisor that records what it is asked to switch to. */
function nodeRelease(name: string, withGrid = true) {
  const dataDir = join(dir, name);
  mkdirSync(dataDir);
  const store = new Store(join(dataDir, 'zone.db'));
  const events = new EventLog(store, logger);
  const seen: ZoneEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const asked: ReleaseRef[] = [];
  t.teardown(() => store.close());
  const release = new NodeRelease({
    version: '0.1.0', node: name, dataDir, policy, events, logger,
    supervisor: { requestUpgrade: (to) => asked.push(to) },
    grid: withGrid ? releaseGridOf(async () => nc, 1) : null,
  });
  const unpacked = () => readdirSync(join(dataDir, 'releases')).filter((f) => f !== '0.2.0');
  return { release, dataDir, asked, seen, unpacked };
}

/** Puts a bundle into the store under `name`, described as release `as` (what a forged or damaged object looks like). */
async function forge(name: string, bundle: string, as: SignedRelease): Promise<void> {
  const objects = await new Objm(jetstream(nc)).open('zone-releases');
  const description = JSON.stringify({ version: name, digest: releaseDigest(as.manifest), storedAt: new Date().toISOString(), storedBy: 'forger' });
  await objects.put({ name, description }, new Response(readFileSync(bundle)).body!);
}

const a = nodeRelease('a');
const b = nodeRelease('b');
const digest = releaseDigest(good.manifest);

t.test('a node that receives a bundle stores it in the grid; another takes it by digest, verified and unpacked', async (t) => {
  t.same(await a.release.install(createReadStream(bundles.good)), { version: '0.2.0', digest, from: '0.1.0', signers: ['operator'], stored: true });
  t.match(a.seen.at(-1), { to: 'release-installed', reason: /^release 0\.2\.0 received \(stored in the grid's release store as sha256:[0-9a-f]{64}\) and unpacked, signed by operator; the supervisor/ });
  t.same(readdirSync(join(a.dataDir, 'releases')), ['0.2.0'], 'the copy of the upload is gone');

  t.same(await b.release.installStored(digest), { version: '0.2.0', digest, from: '0.1.0', signers: ['operator'], stored: true });
  t.equal(readFileSync(join(b.dataDir, 'releases/0.2.0/api/main.ts'), 'utf8'), 'console.log("v2");\n');
  t.match(b.seen.at(-1), { reason: /^release 0\.2\.0 fetched from the grid's release store \(sha256:[0-9a-f]{64}\) and unpacked, signed by operator; the supervisor/ });
  await waitFor(() => b.asked.length === 1, { timeoutMs: 5000, what: 'the supervisor asked to switch' });
  t.same(b.asked, [{ version: '0.2.0', dir: join(b.dataDir, 'releases/0.2.0') }]);
  t.match(await b.release.installStored('0.2.0'), { version: '0.2.0', digest }, 'by version too');
});

t.test('a release the store does not hold, a reference that is neither, and a node outside a cluster are told so', async (t) => {
  await t.rejects(b.release.installStored(`sha256:${'0'.repeat(64)}`), { code: 'NOT_FOUND', message: /is not in the grid's release store: upload its bundle/ });
  await t.rejects(b.release.installStored('9.9.9'), { code: 'NOT_FOUND' });
  await t.rejects(b.release.installStored('latest'), { code: 'INVALID', field: '/release', message: /neither a version .* nor a digest/ });
  const lone = nodeRelease('lone', false);
  await t.rejects(lone.release.installStored(digest), { code: 'UNAVAILABLE', message: /not part of a NATS cluster/ });
});

t.test('an object changed in the store is refused as a tampered upload is, and nothing of it is unpacked', async (t) => {
  const c = nodeRelease('c');
  await forge('0.2.0', bundles.tampered, good);
  await t.rejects(c.release.installStored(digest), { code: 'SIGNATURE', message: /api\/main\.ts does not match the digest in its signed manifest \(tampered\)/ });
  await forge('0.2.0', bundles.other, good);
  await t.rejects(c.release.installStored('0.2.0'), { code: 'CONFLICT', message: /holds another bundle under 0\.2\.0 \(it is release 0\.3\.0/ });
  await t.rejects(c.release.installStored(digest), { code: 'CONFLICT' });
  await forge('0.2.0', bundles.stranger, good);
  await t.rejects(c.release.installStored('0.2.0'), { code: 'POLICY', message: /trusted signatures weigh 0/ });
  t.notOk(existsSync(join(c.dataDir, 'releases/0.2.0')));
  t.same(c.unpacked(), [], 'no folder left');
  t.same(c.asked, [], 'the supervisor was never asked');
});

t.test('a refused upload is not stored, and its copy is not left behind', async (t) => {
  const d = nodeRelease('d');
  await t.rejects(d.release.install(createReadStream(bundles.tampered)), { code: 'SIGNATURE' });
  await t.rejects(d.release.install(createReadStream(bundles.stranger)), { code: 'POLICY' });
  t.same(readdirSync(join(d.dataDir, 'releases')), [], 'no copy, no folder');
  const objects = await new Objm(jetstream(nc)).open('zone-releases');
  t.match(await objects.info('0.2.0'), { description: /"storedBy":"forger"/ }, 'what the store held is unchanged');
});

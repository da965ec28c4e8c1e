// The grid's storage bounds through the API, against a real appliance and nats-server:
// an upload past the file limit is 413, past the owner's quota 507, one owner too many
// 429; each names its bound, changes nothing, and the node keeps serving.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { generateSigningKeyPair, type SigningKeyPair } from '../../lib/ed25519.ts';
import { box, call, ownerToken, startNode, type TestNode } from './node.ts';

const MIB = 2 ** 20;
const FILE_LIMIT = MIB;

/** An owner's Authorization header for one call (a token is accepted once, for its method and path). */
type Auth = (method: string, url: string) => Record<string, string>;
const ownerOf = (n: TestNode, key: SigningKeyPair): Auth => (method, url) => ownerToken(key, n.appliance.identity.id, method, url);

async function stillServes(t: Test, n: TestNode, auth: Auth): Promise<void> {
  t.equal((await call(`${n.url}/healthz`)).status, 200, '/healthz answers');
  t.equal((await call(`${n.url}/v1/grid/fs/`, { headers: auth('GET', `${n.url}/v1/grid/fs/`) })).status, 200, 'a listing of the owner\'s files answers');
}

const put = (url: string, auth: Auth, body: Buffer | ReadableStream<Uint8Array> | string) =>
  fetch(url, { method: 'PUT', headers: { ...auth('PUT', url), 'content-type': 'application/octet-stream' }, body, duplex: 'half' } as RequestInit).then(async (r) => ({ status: r.status, json: await r.json().catch(() => undefined) as Record<string, unknown> | undefined }));
const get = (url: string, auth: Auth) => call(url, { headers: auth('GET', url) });

t.test('uploads: past the file limit 413 (declared or streamed), past the owner\'s quota 507; a removal makes room again', async (t) => {
  const n = await startNode(t, { gridFileBytes: FILE_LIMIT }, { pseudokernel: true, limits: { ownerBytes: 2 * MIB, ownerKvBytes: 256 * 1024 } });
  const auth = ownerOf(n, n.operator);
  const fs = `${n.url}/v1/grid/fs`;

  t.match(await put(`${fs}/big.bin`, auth, randomBytes(FILE_LIMIT + 1)), { status: 413, json: { error: 'TOO_LARGE', message: new RegExp(`larger than ${FILE_LIMIT} bytes.*limits\\.gridFileBytes`) } });
  // Without a content-length the limit holds as the bytes arrive.
  const chunks = [randomBytes(MIB / 2), randomBytes(MIB / 2), randomBytes(MIB / 2)];
  const streamed = new ReadableStream<Uint8Array>({ pull(c) { const next = chunks.shift(); if (next) c.enqueue(next); else c.close(); } });
  t.match(await put(`${fs}/big.bin`, auth, streamed), { status: 413, json: { error: 'TOO_LARGE' } });
  t.match(await get(`${fs}/big.bin`, auth), { status: 404 }, 'nothing was stored');

  const a = randomBytes(900 * 1024);
  t.equal((await put(`${fs}/a.bin`, auth, a)).status, 204);
  t.equal((await put(`${fs}/b.bin`, auth, randomBytes(900 * 1024))).status, 204);
  t.match(await put(`${fs}/c.bin`, auth, randomBytes(900 * 1024)), { status: 507, json: { error: 'NO_SPACE', message: /\/c\.bin: the owner's shared storage is full \(limits\.ownerBytes = 2097152/ } });
  t.match(await get(`${fs}/c.bin`, auth), { status: 404 }, 'the refused file is not there');
  const got = await fetch(`${fs}/a.bin`, { headers: auth('GET', `${fs}/a.bin`) });
  t.ok(Buffer.from(await got.arrayBuffer()).equals(a), 'what was stored reads back whole');
  await stillServes(t, n, auth);

  t.equal((await fetch(`${fs}/a.bin`, { method: 'DELETE', headers: auth('DELETE', `${fs}/a.bin`) })).status, 204, 'a full store can still remove');
  t.equal((await put(`${fs}/c.bin`, auth, randomBytes(900 * 1024))).status, 204, 'and the freed room takes a new file');
});

t.test('owners: storage for one owner too many is 429; an owner of a blueprint here is always taken', async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true, limits: { owners: 2, ownerBytes: MIB, ownerKvBytes: 256 * 1024 } });
  const tokenOf = () => ownerOf(n, generateSigningKeyPair());
  const [first, second, third] = [tokenOf(), tokenOf(), tokenOf()];
  t.equal((await get(`${n.url}/v1/grid/fs/`, first)).status, 200);
  t.equal((await put(`${n.url}/v1/grid/fs/x`, second, 'x')).status, 204);
  t.match(await get(`${n.url}/v1/grid/fs/`, third), { status: 429, json: { error: 'TOO_MANY', message: /holds the shared storage of 2 owners, the most it takes \(limits\.owners = 2\)/ } });
  t.match(await get(`${n.url}/v1/grid/proc`, third), { status: 429 }, 'the process table is storage too');
  t.equal((await get(`${n.url}/v1/grid/fs/`, first)).status, 200, 'owners with storage keep it');
  await stillServes(t, n, second);

  t.equal((await call(`${n.url}/v1/blueprints/mine`, { method: 'PUT', body: n.sign({ name: 'mine', version: 1, workloads: [box('a')] }) })).status, 202);
  t.equal((await get(`${n.url}/v1/grid/fs/`, ownerOf(n, n.operator))).status, 200, "the operator's blueprint is here: its owner gets storage past the cap");
});

t.test("JetStream's max_file_store: an owner whose buckets no longer fit in it is 507, and the node keeps serving the others", async (t) => {
  // Each owner reserves 32 + 3 x 8 MiB of the server's 64: the second does not fit.
  const n = await startNode(t, {}, { pseudokernel: true, limits: { jetstreamFileBytes: 64 * MIB, ownerBytes: 32 * MIB, ownerKvBytes: 8 * MIB, owners: 10 } });
  const first = ownerOf(n, n.operator);
  t.equal((await get(`${n.url}/v1/grid/fs/`, first)).status, 200);
  t.match(await get(`${n.url}/v1/grid/fs/`, ownerOf(n, generateSigningKeyPair())), { status: 507, json: { error: 'NO_SPACE', message: /this node's JetStream storage is full or reserved.*limits\.jetstreamFileBytes/ } });
  await stillServes(t, n, first);
});

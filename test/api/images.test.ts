// The grid's image store through the API, on one node with its nats-server: an upload
// cut half-way is resumed into one stored image with the right digest, a tampered archive
// is refused, the owner's quota says when it is full, nobody else sees the images, and
// the collector removes an image nobody pins after the grace period, never a pinned one.
// A VM disk is stored under the sha256 of its file; one that leans on a backing file is refused.
import t from 'tap';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { buildImageArchive } from '../helpers/image-archive.ts';
import { buildBootDisk } from '../helpers/boot-sector.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, ownerCall, ownerToken, startNode, type TestNode } from './node.ts';

const MIB = 2 ** 20;
const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), 'zone-images-api-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((x) => buildImageArchive(dir, `zone-test/api-${x}-${process.pid}:1`, `image ${x}\n`)));

/** Sends `bytes` from `offset` as one part. */
async function part(n: TestNode, id: string, offset: number, bytes: Uint8Array) {
  const url = `${n.url}/v1/grid/images/uploads/${id}`;
  const res = await fetch(url, {
    method: 'PATCH', body: bytes as Uint8Array<ArrayBuffer>,
    headers: { ...ownerToken(n.operator, n.appliance.identity.id, 'PATCH', url), 'content-type': 'application/octet-stream', 'upload-offset': String(offset) },
  });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

/** The whole push: open, one part, commit. */
async function push(n: TestNode, bytes: Buffer, about: { kind?: 'disk'; name?: string } = {}) {
  const owner = ownerCall(n.operator, n.appliance.identity.id);
  const opened = await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: bytes.length, ...about } });
  if (opened.status !== 201) return opened;
  const id = String(opened.json.id);
  const sent = await part(n, id, 0, bytes);
  if (sent.status !== 200) return { ...sent, text: JSON.stringify(sent.json) };
  return owner(`${n.url}/v1/grid/images/uploads/${id}/commit`, { method: 'POST' });
}

t.test('images of an owner', async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true, limits: { ownerImageBytes: 5 * MIB }, images: { gcGraceMs: 8000 } });
  const node = n.appliance.identity.id;
  // Image a is pinned from the start (before its push): the collector must keep it however long the subtests take.
  const submitted = await call(`${n.url}/v1/blueprints/pins`, { method: 'PUT', body: n.sign({ name: 'pins', version: 1, workloads: [box('app', { image: `zone-test/a@${a!.digest}` })] }) });
  t.equal(submitted.status, 202, submitted.text);
  const owner = ownerCall(n.operator, node);
  const list = async () => ((await owner(`${n.url}/v1/grid/images/`)).json.images as { digest: string; name: string; size: number; usedBy: { node: string }[] }[]);
  const archiveA = await readFile(a!.path);

  await t.test('an upload cut half-way and resumed is stored once, under the image ID', async (t) => {
    const opened = await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: archiveA.length } });
    t.equal(opened.status, 201, opened.text);
    const id = String(opened.json.id);
    // Half the archive, then the connection breaks.
    const url = `${n.url}/v1/grid/images/uploads/${id}`;
    const half = Math.floor(archiveA.length / 2);
    const cut = request(url, { method: 'PATCH', headers: { ...ownerToken(n.operator, node, 'PATCH', url), 'content-type': 'application/octet-stream', 'upload-offset': '0', 'content-length': String(archiveA.length) } });
    cut.on('error', () => undefined);
    cut.write(archiveA.subarray(0, half), () => setImmediate(() => cut.destroy()));
    // The node answers with the offset once the broken part is done with.
    const offset = await waitFor(async () => {
      const status = Number((await owner(url)).json.offset);
      return status > 0 ? status : null;
    }, { timeoutMs: 10_000, what: 'what arrived of the first half to be kept' });
    t.ok(offset <= half, `${offset} bytes of the ${half} sent before the cut are kept`);
    t.match(await owner(`${url}/commit`, { method: 'POST' }), { status: 409, json: { error: 'CONFLICT', details: { offset } } }, 'an incomplete upload is not committed');
    t.match(await part(n, id, 0, archiveA), { status: 409, json: { field: '/headers/upload-offset', details: { offset } } }, 'a part at the wrong offset is refused, naming the offset');
    t.match(await part(n, id, offset, archiveA.subarray(offset)), { status: 200, json: { offset: archiveA.length } });
    const committed = await owner(`${url}/commit`, { method: 'POST' });
    t.match(committed, { status: 201, json: { digest: a!.digest, name: a!.tag, size: archiveA.length, stored: true } });
    t.match(await push(n, archiveA), { status: 201, json: { digest: a!.digest, stored: false } }, 'pushed again: nothing stored again');
    t.match(await list(), [{ digest: a!.digest, name: a!.tag, size: archiveA.length }]);
    t.equal((await list()).length, 1, 'one stored object');
  });

  await t.test('a tampered archive is refused and nothing is stored', async (t) => {
    const bytes = await readFile(b!.path);
    bytes[Math.floor(bytes.length / 2)]! ^= 1;
    t.match(await push(n, bytes), { status: 400, json: { error: 'INVALID', field: '/body', message: /refused, nothing stored: image archive: layer 0 .* has sha256:/ } });
    t.equal((await list()).length, 1);
    t.match(await push(n, Buffer.from('not a tar at all')), { status: 400, json: { error: 'INVALID' } });
  });

  await t.test('the owner\'s quota refuses what would pass it, saying which bound', async (t) => {
    t.match(await push(n, await readFile(b!.path)), { status: 201, json: { digest: b!.digest, stored: true } });
    t.match(await push(n, await readFile(c!.path)), { status: 507, json: { error: 'NO_SPACE', message: /limits\.ownerImageBytes = 5242880/ } });
    t.match(await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: 6 * MIB } }), { status: 507, json: { error: 'NO_SPACE', field: '/body/size' } });
    t.equal((await list()).length, 2);
  });

  await t.test('another owner sees none of them; a call without a token is refused', async (t) => {
    const stranger = ownerCall(generateSigningKeyPair(), node);
    t.match(await stranger(`${n.url}/v1/grid/images/`), { status: 200, json: { images: [] } });
    t.match(await stranger(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: 10 } }), { status: 403, json: { error: 'POLICY', message: /no signer of this node's trust policy/ } }, 'a key no signer acts for pushes nothing');
    const opened = await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: 10 } });
    t.match(await stranger(`${n.url}/v1/grid/images/uploads/${String(opened.json.id)}`), { status: 404 });
    t.match(await call(`${n.url}/v1/grid/images/`), { status: 401 });
  });

  await t.test('an owner has a few uploads open at a time', async (t) => {
    // Two are open: the push refused for the quota (kept, to be committed once there is room) and the test before's.
    for (let i = 0; i < 2; i++) t.equal((await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: 10 } })).status, 201);
    t.match(await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: 10 } }), { status: 429, json: { error: 'TOO_MANY', message: /4 image uploads of this owner are open/ } });
  });

  await t.test('the collector removes an image nobody pins after the grace period, never a pinned one', async (t) => {
    await waitFor(async () => (await list()).length === 1, { timeoutMs: 20_000, what: 'image b collected' }).catch((err: unknown) => {
      t.comment(n.log().split('\n').filter((l) => /image/.test(l)).join('\n'));
      throw err;
    });
    t.match(await list(), [{ digest: a!.digest, usedBy: [{ node }] }], 'the pinned image stays, used by this node');
  });
});

t.test('VM disks', async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  const owner = ownerCall(n.operator, n.appliance.identity.id);
  const disk = await buildBootDisk(join(dir, 'boot.qcow2'), 'booted', 'qcow2');
  t.match(await push(n, await readFile(disk.path), { kind: 'disk', name: 'boot.qcow2' }), { status: 201, json: { digest: disk.digest, name: 'boot.qcow2', kind: 'disk', stored: true } }, 'stored under the sha256 of the file');
  t.match((await owner(`${n.url}/v1/grid/images/`)).json, { images: [{ digest: disk.digest, kind: 'disk' }] }, 'listed as a disk');

  const leaning = join(dir, 'leaning.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', disk.path, '-F', 'qcow2', leaning]);
  t.match(await push(n, await readFile(leaning), { kind: 'disk' }), { status: 400, json: { error: 'INVALID', field: '/body', message: /refused, nothing stored: disk image .* has a backing file/ } }, 'a disk reading another file is refused');
  t.match(await owner(`${n.url}/v1/grid/images/uploads`, { method: 'POST', body: { size: 10, kind: 'floppy' } }), { status: 400, json: { error: 'INVALID' } }, 'a kind it does not know is refused');
  t.equal(((await owner(`${n.url}/v1/grid/images/`)).json.images as unknown[]).length, 1, 'nothing else stored');

  // An image's config, pushed as a raw disk, has the image's digest: the image is then refused, not taken for the disk.
  const hex = a!.digest.slice(7);
  // Docker before 25 saves the config as HEX.json; later ones in an OCI layout.
  const config = (await run('tar', ['-xOf', a!.path, `${hex}.json`], { encoding: 'buffer' }).catch(() => run('tar', ['-xOf', a!.path, `blobs/sha256/${hex}`], { encoding: 'buffer' }))).stdout;
  t.match(await push(n, config, { kind: 'disk' }), { status: 201, json: { digest: a!.digest, kind: 'disk' } }, 'the config as a raw disk');
  t.match(await push(n, await readFile(a!.path)), { status: 409, json: { error: 'CONFLICT', message: /is stored as a disk, not a container/ } }, 'one digest, one kind');

});

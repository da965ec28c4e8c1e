// Uploads in parts on the node's disk: appended only at their end, never past their
// declared size, bounded per owner and in all, owned, and dropped when left alone.
import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ImageUploads } from '../../../appliance/images/uploads.ts';

const A = `ed25519:${Buffer.alloc(32, 1).toString('base64')}`;
const B = `ed25519:${Buffer.alloc(32, 2).toString('base64')}`;

async function uploads(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'zone-uploads-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { dir, uploads: new ImageUploads(dir, { maxBytes: 100, perOwner: 2, totalBytes: 150, idleMs: 1000 }) };
}
const bytes = (text: string) => Readable.from([Buffer.from(text)]);

t.test('parts are appended at the end only; past the declared size nothing is kept', async (t) => {
  const { uploads: u } = await uploads(t);
  const { id } = await u.begin(A, 10);
  t.match(await u.append(A, id, 0, bytes('hello')), { offset: 5 });
  await t.rejects(u.append(A, id, 0, bytes('again')), { code: 'CONFLICT', details: { offset: 5 } });
  await t.rejects(u.append(A, id, 5, bytes('too long!!!')), { code: 'TOO_LARGE' });
  t.match(await u.status(A, id), { offset: 5 }, 'the refused part left nothing');
  await t.rejects(u.complete(A, id), { code: 'CONFLICT' });
  await u.append(A, id, 5, bytes('world'));
  t.equal(await readFile(await u.complete(A, id), 'utf8'), 'helloworld');
});

t.test('an upload is its owner\'s only', async (t) => {
  const { uploads: u } = await uploads(t);
  const { id } = await u.begin(A, 10);
  await t.rejects(u.status(B, id), { code: 'NOT_FOUND' });
  await t.rejects(u.append(B, id, 0, bytes('x')), { code: 'NOT_FOUND' });
  await t.rejects(u.status(A, '../../etc/passwd'), { code: 'NOT_FOUND' });
});

t.test('bounded: the size per upload, the uploads per owner, the bytes in all', async (t) => {
  const { uploads: u } = await uploads(t);
  await t.rejects(u.begin(A, 101), { code: 'NO_SPACE', field: '/body/size' });
  await u.begin(A, 50);
  await u.begin(A, 50);
  await t.rejects(u.begin(A, 10), { code: 'TOO_MANY', message: /2 image uploads of this owner/ });
  await t.rejects(u.begin(B, 60), { code: 'TOO_MANY', message: /declare 100 bytes; this one would pass 150/ });
  t.ok(await u.begin(B, 50));
});

t.test('an upload left alone for the idle time is dropped', async (t) => {
  const { dir, uploads: u } = await uploads(t);
  const idle = await u.begin(A, 10);
  const busy = await u.begin(A, 10);
  const now = Date.now();
  const old = new Date(now - 5000);
  await utimes(join(dir, `${idle.id}.part`), old, old);
  await u.sweep(now);
  await t.rejects(u.status(A, idle.id), { code: 'NOT_FOUND' });
  t.ok(await u.status(A, busy.id));
});

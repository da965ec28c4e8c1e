// NatsGridFs against a real nats-server (one node, replicas 1) started through the supervisor.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { keyOf, NatsGridFs } from '../../../../appliance/pseudokernel/fs/grid-fs.ts';
import { bucketsOf, ownerIdOf } from '../../../../appliance/pseudokernel/nats/buckets.ts';
import { natsForFile } from '../../../helpers/nats.ts';
import { waitFor } from '../../../helpers/wait.ts';

const MiB = 2 ** 20;
const owner = (n: number) => `ed25519:${Buffer.alloc(32, n).toString('base64')}`;
const OWNER = owner(1);
const logger = createLogger({ level: 'warn' });
let nc: NatsConnection;
let fs: NatsGridFs;

t.before(async () => {
  nc = await natsForFile('gridfs', logger);
  fs = await NatsGridFs.open(nc, { owner: OWNER, replicas: 1, logger });
});

const text = async (path: string, grid = fs) => (await buffer(await grid.read(path))).toString();
const write = (path: string, content: string | Buffer, mode?: number, grid = fs) => grid.write(path, Readable.from([Buffer.from(content)]), mode);
/** `text` made longer than a small file's content kept in its entry (1 KiB): stored as an object. */
const stored = (text: string) => text.repeat(Math.ceil(1100 / text.length));

// Live memory, not garbage the collector has not reached yet: the 64 MiB test checks
// that neither a write nor a read holds the file whole.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
function liveBuffersMiB(): number {
  collectGarbage();
  return process.memoryUsage().arrayBuffers / MiB;
}

/** `size` random bytes in 1 MiB chunks, hashed as they are made (never held whole). */
function randomSource(size: number, onChunk: () => void = () => {}): { source: Readable; digest: () => string } {
  const hash = createHash('sha256');
  function* chunks() {
    for (let left = size; left > 0; left -= MiB) {
      onChunk();
      const chunk = randomBytes(Math.min(left, MiB));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { source: Readable.from(chunks(), { objectMode: false }), digest: () => hash.digest('hex') };
}

/** The stream's sha256 and length; `onChunk` is called as each chunk arrives. */
async function digestOf(stream: Readable, onChunk: (index: number) => void = () => {}): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  let index = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    onChunk(index++);
  }
  return { digest: hash.digest('hex'), size };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(() => undefined, (err: { code?: string }) => err.code);
}

/** The owner's objects that are not deleted: the file versions still stored. */
async function storedVersions(owner = OWNER): Promise<number> {
  const files = await new Objm(nc).open(bucketsOf(owner).files);
  return (await files.list()).filter((info) => !info.deleted).length;
}

t.test('bucket and key names: per owner, only safe characters; bad input is named', async (t) => {
  t.match(ownerIdOf(OWNER), /^[0-9a-f]{32}$/);
  t.not(ownerIdOf(OWNER), ownerIdOf(owner(2)));
  t.match(bucketsOf(OWNER), { namespace: `zone-fs-${ownerIdOf(OWNER)}`, files: `zone-files-${ownerIdOf(OWNER)}` });
  t.throws(() => ownerIdOf('ed25519:short'), /not an ed25519 public key/);
  t.equal(keyOf('/'), 'fs');
  t.equal(keyOf('/a/b.txt'), 'fs.YQ.Yi50eHQ');
  t.match(keyOf('/with space/ünï.*>'), /^fs\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  for (const bad of ['', 'a', '/a/', '/a//b', '/a/./b', '/a/../b']) t.throws(() => keyOf(bad), { code: 'EINVAL' }, JSON.stringify(bad));
});

t.test('/ always exists; mkdir, list, stat, rmdir', async (t) => {
  t.match(await fs.stat('/'), { type: 'dir', size: 0, mode: 0o1777 });
  await fs.mkdir('/docs');
  await fs.mkdir('/docs/old', 0o700);
  await write('/docs/a.txt', 'a');
  t.same(await fs.list('/docs'), ['a.txt', 'old']);
  t.ok((await fs.list('/')).includes('docs'));
  t.match(await fs.stat('/docs/old'), { type: 'dir', mode: 0o700 });
  t.equal(await fs.stat('/docs/none'), null);
  await fs.rmdir('/docs/old');
  t.equal(await fs.stat('/docs/old'), null);
  t.same(await fs.list('/docs'), ['a.txt']);
  // a name that is not a valid subject token
  await write('/docs/with space.*>', 'x');
  t.same(await fs.list('/docs'), ['a.txt', 'with space.*>']);
});

t.test('errors carry POSIX codes and name the path', async (t) => {
  await fs.mkdir('/err');
  await write('/err/file', 'f');
  await fs.mkdir('/err/full');
  await write('/err/full/x', 'x');
  t.equal(await codeOf(fs.mkdir('/err')), 'EEXIST');
  t.equal(await codeOf(fs.mkdir('/err/file')), 'EEXIST');
  t.equal(await codeOf(fs.mkdir('/')), 'EEXIST');
  t.equal(await codeOf(fs.mkdir('/err/missing/sub')), 'ENOENT');
  t.equal(await codeOf(fs.mkdir('/err/file/sub')), 'ENOTDIR');
  t.equal(await codeOf(fs.list('/err/file')), 'ENOTDIR');
  t.equal(await codeOf(fs.list('/err/missing')), 'ENOENT');
  t.equal(await codeOf(fs.rmdir('/err/full')), 'ENOTEMPTY');
  t.equal(await codeOf(fs.rmdir('/err/file')), 'ENOTDIR');
  t.equal(await codeOf(fs.rmdir('/err/missing')), 'ENOENT');
  t.equal(await codeOf(fs.rmdir('/')), 'EBUSY');
  t.equal(await codeOf(fs.unlink('/err/full')), 'EISDIR');
  t.equal(await codeOf(fs.unlink('/err/missing')), 'ENOENT');
  t.equal(await codeOf(fs.read('/err/full')), 'EISDIR');
  t.equal(await codeOf(fs.read('/err/missing')), 'ENOENT');
  t.equal(await codeOf(fs.read('/err/file/x')), 'ENOTDIR', 'below a file');
  t.equal(await fs.stat('/err/file/x'), null);
  t.equal(await codeOf(write('/err/full', 'no')), 'EISDIR');
  t.equal(await codeOf(write('/', 'no')), 'EISDIR');
  t.equal(await codeOf(write('/err/missing/f', 'no')), 'ENOENT');
  t.equal(await codeOf(write('/err/file/f', 'no')), 'ENOTDIR');
  await t.rejects(fs.read('/err/nothing'), { code: 'ENOENT', message: 'ENOENT: /err/nothing does not exist' });
  await t.rejects(fs.rmdir('/err/full'), { message: /\/err\/full is not empty/ });
  const versions = await storedVersions();
  await codeOf(write('/err/full', 'no'));
  t.equal(await storedVersions(), versions, 'a refused write leaves no version behind');
});

t.test('write, read, append by rewriting, mode and size', async (t) => {
  await write('/notes.txt', 'hello', 0o600);
  t.equal(await text('/notes.txt'), 'hello');
  const before = (await fs.stat('/notes.txt'))!;
  t.match(before, { type: 'file', size: 5, mode: 0o600 });
  await write('/notes.txt', `${await text('/notes.txt')} world`);
  t.equal(await text('/notes.txt'), 'hello world');
  const after = (await fs.stat('/notes.txt'))!;
  t.match(after, { size: 11, mode: 0o600 }, 'a rewrite without a mode keeps the mode');
  t.ok(after.mtimeMs >= before.mtimeMs);
  await write('/notes.txt', 'x', 0o644);
  t.match(await fs.stat('/notes.txt'), { size: 1, mode: 0o644 });
  const versions = await storedVersions();
  await fs.chmod('/notes.txt', 0o640);
  t.match(await fs.stat('/notes.txt'), { size: 1, mode: 0o640 }, 'chmod sets the mode');
  t.equal(await text('/notes.txt'), 'x', 'and keeps the content');
  t.equal(await storedVersions(), versions, 'without storing it again');
  t.equal(await codeOf(fs.chmod('/nope', 0o600)), 'ENOENT');
  await fs.unlink('/notes.txt');
  t.equal(await fs.stat('/notes.txt'), null);
  t.equal(await codeOf(fs.unlink('/notes.txt')), 'ENOENT');
});

t.test('sizes 0 B, 1 B and 1 MiB are byte-exact', async (t) => {
  for (const size of [0, 1, MiB]) {
    const { source, digest } = randomSource(size);
    await fs.write(`/size-${size}`, source);
    t.same(await digestOf(await fs.read(`/size-${size}`)), { digest: digest(), size }, `${size} bytes`);
    t.equal((await fs.stat(`/size-${size}`))?.size, size);
  }
});

t.test('a small file keeps its content in its entry: no object up to 1 KiB, one past it; byte-exact either way, by read and by open', async (t) => {
  const versions = await storedVersions();
  const small = randomBytes(1024);
  await write('/small', small);
  t.equal(await storedVersions(), versions, '1 KiB: no object');
  t.ok((await buffer(await fs.read('/small'))).equals(small), 'read whole');
  const version = await fs.open('/small');
  t.ok((await version.read(1000, 100)).equals(small.subarray(1000)), 'read by range');
  t.match(await fs.stat('/small'), { type: 'file', size: 1024 });
  const larger = randomBytes(1025);
  await write('/small', larger);
  t.equal(await storedVersions(), versions + 1, '1 KiB and a byte: an object');
  t.ok((await buffer(await fs.read('/small'))).equals(larger));
  t.ok((await version.read(0, 2048)).equals(small), 'an open version stays as it was');
  await version.close();
  // Streamed in pieces, as a write-behind gives them: the bound is on the whole content.
  await fs.write('/small', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
  await waitFor(async () => (await storedVersions()) === versions, { timeoutMs: 5000, what: 'the object version discarded for a small one' });
  t.equal(await text('/small'), 'abcd');
  await fs.unlink('/small');
  t.equal(await fs.stat('/small'), null);
});

t.test('64 MiB is byte-exact and never held whole in memory', async (t) => {
  const base = liveBuffersMiB();
  let writePeak = 0;
  const { source, digest } = randomSource(64 * MiB, () => (writePeak = Math.max(writePeak, liveBuffersMiB() - base)));
  await fs.write('/big.bin', source);
  t.equal((await fs.stat('/big.bin'))?.size, 64 * MiB);
  let readPeak = 0;
  const read = await digestOf(await fs.read('/big.bin'), (i) => {
    if (i % 16 === 0) readPeak = Math.max(readPeak, liveBuffersMiB() - base);
  });
  t.equal(read.size, 64 * MiB);
  t.equal(read.digest, digest());
  t.ok(writePeak < 24, `writing held at most ${writePeak.toFixed(1)} MiB`);
  t.ok(readPeak < 24, `reading held at most ${readPeak.toFixed(1)} MiB`);
  await fs.unlink('/big.bin');
});

t.test('rename: a file, over a file, a directory with what it holds; and the refusals', async (t) => {
  await fs.mkdir('/mv');
  // Larger than what an entry keeps itself: each is an object.
  const [a, b] = [stored('A'), stored('B')];
  await write('/mv/a', a);
  await write('/mv/b', b);
  await fs.rename('/mv/a', '/mv/c');
  t.equal(await fs.stat('/mv/a'), null);
  t.equal(await text('/mv/c'), a);
  const versions = await storedVersions();
  await fs.rename('/mv/c', '/mv/b');
  t.equal(await text('/mv/b'), a, 'the target is replaced');
  t.same(await fs.list('/mv'), ['b']);
  t.equal(await storedVersions(), versions - 1, 'the replaced target\'s version is deleted');

  await fs.mkdir('/mv/tree');
  await fs.mkdir('/mv/tree/sub');
  await write('/mv/tree/sub/deep.txt', 'deep');
  await write('/mv/tree/top.txt', 'top');
  await fs.mkdir('/mv/empty');
  await fs.rename('/mv/tree', '/mv/empty');
  t.same(await fs.list('/mv'), ['b', 'empty'], 'an empty directory is replaced');
  t.same(await fs.list('/mv/empty'), ['sub', 'top.txt']);
  t.equal(await text('/mv/empty/sub/deep.txt'), 'deep');
  t.equal(await codeOf(fs.list('/mv/tree')), 'ENOENT');
  t.equal(await fs.stat('/mv/tree/sub/deep.txt'), null);
  await fs.rename('/mv/empty', '/moved');
  t.equal(await text('/moved/top.txt'), 'top');

  await fs.mkdir('/mv/dir');
  await write('/mv/dir/x', 'x');
  t.equal(await codeOf(fs.rename('/mv/b', '/mv/dir')), 'EISDIR');
  t.equal(await codeOf(fs.rename('/moved', '/mv/b')), 'ENOTDIR');
  t.equal(await codeOf(fs.rename('/moved', '/mv/dir')), 'ENOTEMPTY');
  t.equal(await codeOf(fs.rename('/moved', '/moved/sub/inside')), 'EINVAL');
  t.equal(await codeOf(fs.rename('/mv/none', '/mv/z')), 'ENOENT');
  t.equal(await codeOf(fs.rename('/mv/b', '/mv/none/z')), 'ENOENT');
  t.equal(await codeOf(fs.rename('/', '/x')), 'EBUSY');
  await fs.rename('/mv/b', '/mv/b');
  t.equal(await text('/mv/b'), a, 'a rename onto itself changes nothing');
});

t.test('owners, modes and times: kept per entry, set by chown, chmod and utimens; a setgid directory gives its group', async (t) => {
  await fs.mkdir('/own', 0o750, { uid: 1000, gid: 100 });
  t.match(await fs.stat('/own'), { type: 'dir', mode: 0o750, uid: 1000, gid: 100 });
  await fs.mknod('/own/f', 'file', 0o640, { uid: 1000, gid: 100 });
  const made = (await fs.stat('/own/f'))!;
  t.match(made, { type: 'file', size: 0, mode: 0o640, uid: 1000, gid: 100, nlink: 1 });
  t.equal(await text('/own/f'), '', 'a file made by mknod reads empty');
  await fs.chown('/own/f', 2000, undefined);
  t.match(await fs.stat('/own/f'), { uid: 2000, gid: 100 });
  await fs.chown('/own/f', undefined, 300);
  t.match(await fs.stat('/own/f'), { uid: 2000, gid: 300 });
  await fs.utimens('/own/f', 100_000, 200_000);
  const timed = (await fs.stat('/own/f'))!;
  t.match(timed, { atimeMs: 100_000, mtimeMs: 200_000 });
  t.ok(timed.ctimeMs! >= made.ctimeMs!, 'the change time moves on');
  await fs.utimens('/own/f', undefined, 300_000);
  t.match(await fs.stat('/own/f'), { atimeMs: 100_000, mtimeMs: 300_000 }, 'an omitted time is left as it is');
  await write('/own/f', 'data');
  t.match(await fs.stat('/own/f'), { uid: 2000, gid: 300, mode: 0o640, size: 4 }, 'a write keeps the owner');
  await fs.mkdir('/own/sgid', 0o2775, { uid: 1000, gid: 555 });
  await fs.mkdir('/own/sgid/sub', 0o755, { uid: 7, gid: 7 });
  await fs.mknod('/own/sgid/file', 'file', 0o644, { uid: 7, gid: 7 });
  t.match(await fs.stat('/own/sgid/sub'), { uid: 7, gid: 555, mode: 0o2755 });
  t.match(await fs.stat('/own/sgid/file'), { uid: 7, gid: 555, mode: 0o644 });
  t.match(await fs.stat('/own/sgid'), { nlink: 3 }, 'a directory links 2 + its subdirectories');
  await fs.rename('/own/sgid/sub', '/own/sub');
  t.match(await fs.stat('/own/sgid'), { nlink: 2 });
  t.match(await fs.stat('/own'), { nlink: 4 });
  await fs.rmdir('/own/sub');
  t.match(await fs.stat('/own'), { nlink: 3 });
  const dirBefore = (await fs.stat('/own'))!;
  await new Promise((resolve) => setTimeout(resolve, 5));
  await fs.unlink('/own/f');
  t.ok((await fs.stat('/own'))!.mtimeMs > dirBefore.mtimeMs, 'removing an entry changes its directory\'s mtime');
});

t.test('symlinks, FIFOs and sockets are entries; names over NAME_MAX bytes are ENAMETOOLONG', async (t) => {
  await fs.mkdir('/kinds');
  await fs.symlink('../elsewhere/target', '/kinds/link', { uid: 5, gid: 6 });
  t.match(await fs.stat('/kinds/link'), { type: 'symlink', size: 19, target: '../elsewhere/target', uid: 5, gid: 6 });
  t.equal(await fs.readlink('/kinds/link'), '../elsewhere/target');
  await fs.mknod('/kinds/fifo', 'fifo', 0o600, { uid: 0, gid: 0 });
  await fs.mknod('/kinds/sock', 'socket', 0o600, { uid: 0, gid: 0 });
  t.match(await fs.stat('/kinds/fifo'), { type: 'fifo', mode: 0o600 });
  t.match(await fs.stat('/kinds/sock'), { type: 'socket' });
  t.equal(await codeOf(fs.readlink('/kinds/fifo')), 'EINVAL');
  t.equal(await codeOf(fs.read('/kinds/fifo')), 'EINVAL');
  t.equal(await codeOf(fs.mknod('/kinds/fifo', 'fifo', 0o600, { uid: 0, gid: 0 })), 'EEXIST');
  t.equal(await codeOf(fs.list('/kinds/link/x')), 'ENOTDIR', 'the server never follows a symlink');
  await fs.rename('/kinds/link', '/kinds/moved');
  t.equal(await fs.readlink('/kinds/moved'), '../elsewhere/target');
  for (const name of ['moved', 'fifo', 'sock']) await fs.unlink(`/kinds/${name}`);
  t.same(await fs.list('/kinds'), []);
  await fs.mknod(`/kinds/${'n'.repeat(255)}`, 'file', 0o644, { uid: 0, gid: 0 });
  t.equal(await codeOf(fs.mknod(`/kinds/${'n'.repeat(256)}`, 'file', 0o644, { uid: 0, gid: 0 })), 'ENAMETOOLONG');
  t.equal(await codeOf(fs.stat(`/kinds/${'é'.repeat(128)}`)), 'ENAMETOOLONG', 'bytes, not characters');
  const deep = Array.from({ length: 15 }, (_, i) => `${i}`.padEnd(255, 'd'));
  for (let i = 1; i <= deep.length; i++) await fs.mkdir(`/kinds/${deep.slice(0, i).join('/')}`);
  t.match(await fs.stat(`/kinds/${deep.join('/')}`), { type: 'dir' }, 'a path of nearly PATH_MAX bytes');
});

t.test('hard links: one entry under several names, counted; the content goes with the last name', async (t) => {
  await fs.mkdir('/hl');
  await write('/hl/a', 'one', 0o600);
  await fs.link('/hl/a', '/hl/b');
  t.match(await fs.stat('/hl/a'), { nlink: 2, mode: 0o600 });
  t.match(await fs.stat('/hl/b'), { nlink: 2, mode: 0o600 });
  const two = stored('two');
  await write('/hl/b', two);
  t.equal(await text('/hl/a'), two, 'a write through one name is seen through the other');
  await fs.chmod('/hl/a', 0o644);
  t.match(await fs.stat('/hl/b'), { mode: 0o644 });
  await fs.link('/hl/b', '/hl/c');
  t.match(await fs.stat('/hl/a'), { nlink: 3 });
  t.equal(await codeOf(fs.link('/hl/a', '/hl/c')), 'EEXIST');
  t.equal(await codeOf(fs.link('/hl', '/hl/d')), 'EPERM', 'a directory has no hard links');
  t.equal(await codeOf(fs.link('/hl/none', '/hl/d')), 'ENOENT');
  await fs.rename('/hl/a', '/hl/c');
  t.match(await fs.stat('/hl/a'), { nlink: 3 }, 'a rename onto another name of the same entry does nothing');
  await fs.rename('/hl/c', '/hl/moved');
  t.match(await fs.stat('/hl/moved'), { nlink: 3 });
  const versions = await storedVersions();
  await fs.unlink('/hl/a');
  await fs.unlink('/hl/b');
  t.match(await fs.stat('/hl/moved'), { nlink: 1 });
  t.equal(await text('/hl/moved'), two);
  t.equal(await storedVersions(), versions, 'the content stays while a name is left');
  await fs.unlink('/hl/moved');
  t.equal(await storedVersions(), versions - 1, 'and goes with the last one');
  await write('/hl/x', 'x');
  await write('/hl/y', 'y');
  await fs.link('/hl/x', '/hl/x2');
  await fs.rename('/hl/y', '/hl/x2');
  t.match(await fs.stat('/hl/x'), { nlink: 1 }, 'a rename over one name of a linked entry drops that link');
  t.equal(await text('/hl/x2'), 'y');
});

t.test('a root stored before owners were kept is made everyone\'s (1777), as new roots are', async (t) => {
  const legacy = await NatsGridFs.open(nc, { owner: owner(5), replicas: 1, logger });
  const namespace = await new Kvm(nc).open(legacy.buckets.namespace);
  await namespace.put(keyOf('/'), JSON.stringify({ type: 'dir', size: 0, mtimeMs: 1000, mode: 0o755 }));
  t.match(await legacy.stat('/'), { mode: 0o755, uid: 0 });
  const reopened = await NatsGridFs.open(nc, { owner: owner(5), replicas: 1, logger });
  t.match(await reopened.stat('/'), { type: 'dir', mode: 0o1777, uid: 0, gid: 0 });
});

t.test('a FIFO entry: made, seen by another handle, renamed like a file, unlinked; no content of its own', async (t) => {
  await fs.mkdir('/fifos');
  await fs.mknod('/fifos/p', 'fifo', 0o600, { uid: 0, gid: 0 });
  const other = await NatsGridFs.open(nc, { owner: OWNER, replicas: 1, logger });
  t.match(await other.stat('/fifos/p'), { type: 'fifo', size: 0, mode: 0o600 });
  await t.rejects(fs.mknod('/fifos/p', 'fifo', 0o600, { uid: 0, gid: 0 }), { code: 'EEXIST' });
  await t.rejects(fs.mknod('/fifos/none/p', 'fifo', 0o600, { uid: 0, gid: 0 }), { code: 'ENOENT' });
  await t.rejects(fs.read('/fifos/p'), 'it has no content to read through GridFs');
  await fs.mkdir('/fifos/d');
  await t.rejects(fs.rename('/fifos/p', '/fifos/d'), { code: 'EISDIR' });
  await t.rejects(fs.rename('/fifos/d', '/fifos/p'), { code: 'ENOTDIR' });
  await write('/fifos/f', 'x');
  await fs.rename('/fifos/p', '/fifos/f');
  t.match(await fs.stat('/fifos/f'), { type: 'fifo' }, 'over a file, as a file would');
  await fs.unlink('/fifos/f');
  t.same(await other.list('/fifos'), ['d']);
});

t.test('two owners: the same path, separate contents and buckets', async (t) => {
  const other = await NatsGridFs.open(nc, { owner: owner(2), replicas: 1, logger });
  t.not(other.buckets.namespace, fs.buckets.namespace);
  t.not(other.buckets.files, fs.buckets.files);
  await write('/shared.txt', 'mine');
  await write('/shared.txt', 'theirs', undefined, other);
  t.equal(await text('/shared.txt'), 'mine');
  t.equal(await text('/shared.txt', other), 'theirs');
  t.same(await other.list('/'), ['shared.txt']);
  await other.unlink('/shared.txt');
  t.equal(await text('/shared.txt'), 'mine');
});

t.test('a reader that opened before a write or an unlink keeps the old content; the version goes after it', async (t) => {
  const v1 = randomBytes(MiB);
  const v2 = randomBytes(MiB);
  await write('/kept.bin', v1);
  const versions = await storedVersions();
  const early = await fs.read('/kept.bin');
  await write('/kept.bin', v2);
  t.ok((await buffer(await fs.read('/kept.bin'))).equals(v2), 'a new reader sees the new content');
  t.equal(await storedVersions(), versions + 1, 'the old version is kept while read');
  t.ok((await buffer(early)).equals(v1), 'the early reader reads the old content whole');
  await waitFor(async () => (await storedVersions()) === versions, { timeoutMs: 5000, what: 'the old version deleted after its reader closed' });

  const before = await fs.read('/kept.bin');
  await fs.unlink('/kept.bin');
  t.ok((await buffer(before)).equals(v2), 'an unlinked file stays readable for who opened it');
  await waitFor(async () => (await storedVersions()) === versions - 1, { timeoutMs: 5000, what: 'the unlinked version deleted' });
  // An object's meta is one subject of the store's stream; a deleted object's would stay as a "deleted" record.
  const bucket = bucketsOf(OWNER).files;
  const { state } = await (await jetstreamManager(nc)).streams.info(`OBJ_${bucket}`, { subjects_filter: `$O.${bucket}.M.>` });
  t.equal(Object.keys(state.subjects ?? {}).length, versions - 1, 'deleted versions leave no record in the object store');
});

t.test('a hold whose reader died expires, and the next discarded version collects it too', async (t) => {
  const quick = await NatsGridFs.open(nc, { owner: owner(3), replicas: 1, logger, readerLeaseMs: 1500 });
  await write('/f', stored('old'), undefined, quick);
  await write('/g', stored('g'), undefined, quick);
  const versions = await storedVersions(owner(3));
  // A reader's hold as a dead reader leaves it: put once, never refreshed nor released.
  const namespace = await new Kvm(nc).open(quick.buckets.namespace);
  const object = (await namespace.get(keyOf('/f')))!.json<{ object: string }>().object;
  await (await new Kvm(nc).open(quick.buckets.readers)).put(`${object}.dead`, '');
  await write('/f', stored('new'), undefined, quick);
  t.equal(await storedVersions(owner(3)), versions + 1, 'held: kept');
  await waitFor(async () => {
    await write('/g', stored('g'), undefined, quick);
    return (await storedVersions(owner(3))) === versions;
  }, { timeoutMs: 10_000, intervalMs: 300, what: 'the dead reader\'s version collected when /g is rewritten' });
  t.equal(await text('/f', quick), stored('new'));
});

t.test('open() reads a version by range, across chunks, as of the open; its close lets the version go', async (t) => {
  const v1 = randomBytes(MiB + 12_345);
  await write('/ranged.bin', v1);
  const versions = await storedVersions();
  const version = await fs.open('/ranged.bin');
  t.equal(version.size, v1.length);
  const replaced = stored('replaced');
  await write('/ranged.bin', replaced);
  const chunk = 128 * 1024;
  for (const [position, length] of [[0, 10], [chunk - 5, 10], [3 * chunk, 2 * chunk + 1], [v1.length - 7, 100], [v1.length, 10], [v1.length + 5, 10], [0, v1.length]] as const) {
    t.ok((await version.read(position, length)).equals(v1.subarray(position, position + length)), `bytes ${position}..+${length}`);
  }
  // Sequentially, as a reader through FUSE asks (a consumer delivers the chunks ahead).
  const parts: Buffer[] = [];
  for (let position = 0; position < v1.length; position += 100_000) parts.push(await version.read(position, 100_000));
  t.ok(Buffer.concat(parts).equals(v1), 'read sequentially in 100 kB steps, byte-exact');
  t.equal(await text('/ranged.bin'), replaced, 'a new open sees the new content');
  t.equal(await storedVersions(), versions + 1, 'the old version is held while open');
  await version.close();
  await version.close();
  await t.rejects(version.read(0, 1), { code: 'EBADF' });
  await waitFor(async () => (await storedVersions()) === versions, { timeoutMs: 5000, what: 'the old version deleted after its close' });
  t.equal((await fs.open('/ranged.bin')).size, replaced.length);
});

t.test("a bounded owner: a write past its quota is ENOSPC naming the bound and stores nothing; removing makes room; open buckets get the bound", async (t) => {
  const quota = { ownerBytes: MiB, ownerKvBytes: 128 * 1024 };
  const small = await NatsGridFs.open(nc, { owner: owner(4), replicas: 1, logger, quota });
  await write('/a', randomBytes(600 * 1024), undefined, small);
  await t.rejects(write('/b', randomBytes(600 * 1024), undefined, small), { code: 'ENOSPC', message: /\/b: the owner's shared storage is full \(limits\.ownerBytes = 1048576/ });
  t.equal(await small.stat('/b'), null, 'the refused file is not there');
  const jsm = await jetstreamManager(nc);
  t.equal((await jsm.streams.info(`OBJ_${small.buckets.files}`)).state.bytes < 700 * 1024, true, 'no chunk of the refused file is left');
  await small.unlink('/a');
  await write('/b', randomBytes(600 * 1024), undefined, small);
  t.equal((await small.stat('/b'))?.size, 600 * 1024, 'the freed room took the file');

  // Buckets made without a bound (an older node) get it at the next open.
  const larger = { ownerBytes: 2 * MiB, ownerKvBytes: 256 * 1024 };
  await NatsGridFs.open(nc, { owner: owner(4), replicas: 1, logger, quota: larger });
  t.equal((await jsm.streams.info(`OBJ_${small.buckets.files}`)).config.max_bytes, 2 * MiB);
  t.equal((await jsm.streams.info(`KV_${small.buckets.namespace}`)).config.max_bytes, 256 * 1024);
});

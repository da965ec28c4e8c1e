// /zone/fs as one POSIX file system across nodes: two supervised nats-servers clustered on
// loopback (buckets with 2 replicas), a /zone mount on each. What one node's mount makes
// (symlinks, hard links, owners) the other's shows; a non-root process is refused where
// POSIX refuses it; a rename racing a write on the other node always leaves one whole
// version, as two compare-and-sets from one revision through both servers leave one stored.
// Every access to a mount is a child process (this process serves both mounts).
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { NatsGridFs } from '../../../../appliance/pseudokernel/fs/grid-fs.ts';
import { mountZone, type ZoneMount } from '../../../../appliance/pseudokernel/mount/mount.ts';
import { compareAndSet } from '../../../../appliance/pseudokernel/nats/kv-cas.ts';
import { NatsServer } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { startLoopbackCluster } from '../../../helpers/nats-grid.ts';
import { MemoryProcTable } from '../memory-grid.ts';

const run = promisify(execFile);
const SERVERS = 2;
const OWNER = `ed25519:${Buffer.alloc(32, 42).toString('base64')}`;
const NOBODY = 65534;
const logger = createLogger({ level: 'error' });
const base = await mkdtemp(join(tmpdir(), 'zone-posix-cluster-'));
// The non-root processes reach the mounts through it.
await chmod(base, 0o755);
const servers: NatsServer[] = [];
const connections: NatsConnection[] = [];
const grids: NatsGridFs[] = [];
const mounts: ZoneMount[] = [];

t.teardown(async () => {
  await Promise.allSettled(mounts.map((mount) => mount.unmount()));
  await Promise.allSettled(connections.map((nc) => nc.close()));
  await Promise.allSettled(servers.map((server) => server.stop()));
  await rm(base, { recursive: true, force: true });
});

await startLoopbackCluster(base, Array.from({ length: SERVERS }, (_, i) => `n${i}`), 'zone-posix', logger, { servers, connections });
for (let i = 0; i < SERVERS; i++) {
  const grid = await NatsGridFs.open(connections[i]!, { owner: OWNER, replicas: SERVERS, logger });
  grids.push(grid);
  const self = { name: 'w', blueprint: 'b', node: `n${i}`, owner: OWNER, ip: null };
  mounts.push(await mountZone({ mountpoint: join(base, `zone${i}`), grid, proc: new MemoryProcTable([]), self, logger, scratchParent: base }));
}

/** A busybox script in node `node`'s /zone/fs, as root or as `uid` (also its gid, no other groups). */
async function sh(node: number, script: string, uid?: number): Promise<{ code: number; out: string }> {
  const shell = ['busybox', 'sh', '-c', `cd ${mounts[node]!.mountpoint}/fs && { ${script}; }`];
  const [command, ...args] = uid === undefined ? shell : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...shell];
  return run(command!, args, { timeout: 30_000 }).then(
    ({ stdout }) => ({ code: 0, out: stdout }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
  );
}

t.test('a symlink and a hard link made on one node are read on the other', async (t) => {
  t.equal((await sh(0, 'mkdir links && echo content > links/file && ln -s file links/sym && ln links/file links/hard')).code, 0);
  t.equal((await sh(1, 'readlink links/sym; cat links/sym links/hard')).out, 'file\ncontent\ncontent\n');
  t.equal((await sh(1, 'stat -c "%F %h" links/sym links/file links/hard')).out, 'symbolic link 1\nregular file 2\nregular file 2\n');
  t.equal((await sh(1, 'echo changed > links/hard && cat links/file')).out, 'changed\n', 'both names are one file');
  t.equal((await sh(0, 'cat links/file; rm links/file; stat -c %h links/hard; cat links/hard; cat links/sym')).out,
    'changed\n1\nchanged\ncat: can\'t open \'links/sym\': No such file or directory\n', 'unlinking one name leaves the other; the symlink dangles');
});

t.test('an owner set on one node is seen on the other; new entries belong to their creator', async (t) => {
  t.equal((await sh(0, 'echo x > owned && chown 1234:5678 owned')).code, 0);
  t.equal((await sh(1, 'stat -c %u:%g owned')).out, '1234:5678\n');
  t.equal((await sh(0, `echo y > made-by-nobody`, NOBODY)).code, 0, 'a non-root process creates in the sticky root');
  t.equal((await sh(1, 'stat -c %u:%g made-by-nobody')).out, `${NOBODY}:${NOBODY}\n`);
});

t.test('a non-root process is refused where POSIX refuses it', async (t) => {
  t.equal((await sh(0, 'mkdir -m 755 private && echo secret > private/f && chmod 600 private/f')).code, 0);
  t.match((await sh(1, 'echo x > private/new', NOBODY)).out, /Permission denied/, 'creating in a directory it may not write to');
  t.match((await sh(1, 'cat private/f', NOBODY)).out, /Permission denied/, 'reading a file it may not read');
  t.match((await sh(1, 'chmod 666 private/f', NOBODY)).out, /Operation not permitted/, 'chmod of a file it does not own');
  t.match((await sh(1, 'chown 65534 private/f', NOBODY)).out, /Operation not permitted/, 'giving away a file');
  t.match((await sh(1, 'rm made-by-nobody')).out, '', 'root may remove from the sticky root');
  t.equal((await sh(0, 'ls private')).out, 'f\n', 'nothing was made');
});

t.test('a rename racing a write on the other node always leaves one whole version at the target', async (t) => {
  const [g0, g1] = grids as [NatsGridFs, NatsGridFs];
  await g0.mkdir('/race');
  for (let round = 0; round < 15; round++) {
    const moved = `moved-${round}-`.padEnd(200_000, 'm');
    const written = `written-${round}-`.padEnd(150_000, 'w');
    const source = `source-write-${round}-`.padEnd(100_000, 's');
    await g0.write('/race/target', Readable.from([Buffer.from('old')]));
    await g0.write('/race/source', Readable.from([Buffer.from(moved)]));
    // The target written on n1 and the source rewritten on n1 while n0 renames.
    await Promise.all([
      g0.rename('/race/source', '/race/target'),
      g1.write('/race/target', Readable.from([Buffer.from(written)])),
      g1.write('/race/source', Readable.from([Buffer.from(source)])).catch(() => {}),
    ]);
    for (const grid of grids) {
      const content = (await buffer(await grid.read('/race/target'))).toString();
      // The source rewritten before the rename read it is moved too: a whole version as well.
      t.ok([moved, written, source].includes(content), `round ${round}: the target is one whole version (${content.slice(0, 20)}…, ${content.length} bytes)`);
    }
  }
});

t.test('of two compare-and-sets from one revision, one through each server, exactly one is stored', async (t) => {
  // nats-server 2.9.10 alone accepts both of most such pairs (nats-io/nats-server#4320).
  // A key beside the paths in the owner's namespace: a stream with its leader elected already.
  const bucket = grids[0]!.buckets.namespace;
  const kvs = await Promise.all(connections.map((nc) => new Kvm(jetstream(nc)).open(bucket)));
  const keys = connections.map((nc, i) => ({ js: jetstream(nc), kv: kvs[i]!, bucket, key: 'cas-race' }));
  const outcomes: string[] = [];
  for (let pair = 0; pair < 30; pair++) {
    const revision = await kvs[0]!.put('cas-race', 'base');
    // Every other pair a delete against a put, as a rename against a write.
    const won = await Promise.all(keys.map((key, i) => compareAndSet(key, pair % 2 === 1 && i === 0 ? null : `v${i}`, revision)));
    outcomes.push(won.map(Number).join(''));
  }
  t.same(outcomes.filter((outcome) => outcome !== '10' && outcome !== '01'), [], 'never both, never neither');
});

// /zone mounts of three nodes over three nats-servers clustered on loopback (files in
// 3 copies): a big file written through one node's mount streams to JetStream while it
// is written (write-behind) and reads byte-exact through another's, one whole version
// while a third node writes a new one; many small files made in a row are all there.
// Every access is a child process: this process serves the mounts.
// ZONE_TEST_BIG_MIB sets the big file's size (64 MiB here; bench/zonefs.ts and a run
// with 1024 cover 1 GiB).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { NatsGridFs } from '../../../../appliance/pseudokernel/fs/grid-fs.ts';
import { mountZone, type ZoneMount } from '../../../../appliance/pseudokernel/mount/mount.ts';
import { NatsServer } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { startLoopbackCluster } from '../../../helpers/nats-grid.ts';

const run = promisify(execFile);
const SERVERS = 3;
const OWNER = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
const BIG_MIB = Number.parseInt(process.env.ZONE_TEST_BIG_MIB ?? '64', 10);
const SMALL_FILES = 300;
/** Two versions of the big file at once (the default quota is 256 MiB). */
const QUOTA = { ownerBytes: Math.max(256, 3 * BIG_MIB) * 2 ** 20, ownerKvBytes: 16 * 2 ** 20 };
const dir = mkdtempSync('/var/tmp/zone-mount-cluster-');
const logger = createLogger({ level: 'error' });
const servers: NatsServer[] = [];
const connections: NatsConnection[] = [];
const mounts: ZoneMount[] = [];

t.before(async () => {
  await startLoopbackCluster(dir, Array.from({ length: SERVERS }, (_, i) => `n${i}`), 'zone-mounts', logger, { servers, connections });
  for (const [i, nc] of connections.entries()) {
    const fs = await NatsGridFs.open(nc, { owner: OWNER, replicas: SERVERS, logger, quota: QUOTA });
    mounts.push(await mountZone({
      mountpoint: join(dir, `mnt${i}`), grid: fs, proc: { list: async () => [] }, logger, scratchParent: dir, maxScratchBytes: QUOTA.ownerBytes,
      self: { name: 'w', blueprint: 'b', node: `n${i}`, owner: OWNER, ip: null },
    }));
  }
});

t.teardown(async () => {
  for (const mount of mounts) await mount.unmount();
  await Promise.all(connections.map((nc) => nc.close()));
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** `name` below node `i`'s fs/. */
const at = (i: number, name: string) => join(mounts[i]!.mountpoint, 'fs', name);

/** A local file of `mib` MiB of random bytes (written in pieces), and its sha256. */
async function randomFile(name: string, mib: number): Promise<{ path: string; sha: string }> {
  const path = join(dir, name);
  const file = await open(path, 'w');
  for (let i = 0; i < mib; i += 16) await file.write(randomBytes(Math.min(16, mib - i) * 2 ** 20));
  await file.close();
  return { path, sha: await sha256Of(path) };
}

/** sha256 of a file, in a child process. */
async function sha256Of(path: string): Promise<string> {
  return (await run('sha256sum', [path], { timeout: 300_000 })).stdout.split(' ')[0]!;
}

async function dd(from: string, to: string): Promise<number> {
  const start = performance.now();
  await run('dd', [`if=${from}`, `of=${to}`, 'bs=1M'], { timeout: 600_000 });
  return (performance.now() - start) / 1000;
}

t.test(`a ${BIG_MIB} MiB file written on n0 reads byte-exact on n2, one whole version while n1 writes another`, async (t) => {
  const [first, second] = [await randomFile('first', BIG_MIB), await randomFile('second', BIG_MIB)];
  const seconds = await dd(first.path, at(0, 'big'));
  t.comment(`written through n0's mount at ${(BIG_MIB / seconds).toFixed(1)} MiB/s`);
  t.equal(await sha256Of(at(2, 'big')), first.sha, 'n2 reads what n0 wrote');

  // n1 writes the second version while n2 reads the path over and over.
  let writing = true;
  const writer = dd(second.path, at(1, 'big')).finally(() => { writing = false; });
  const seen: string[] = [];
  do seen.push(await sha256Of(at(2, 'big'))); while (writing);
  await writer;
  t.ok(seen.length > 0);
  t.same(seen.filter((sha) => sha !== first.sha && sha !== second.sha), [], `each of ${seen.length} reads during the write saw one whole version`);
  t.equal(await sha256Of(at(2, 'big')), second.sha, 'after the close, n2 reads the new version');
  t.equal(await sha256Of(at(0, 'big')), second.sha, 'and so does n0');
  await run('rm', [at(0, 'big'), first.path, second.path]);
});

t.test(`${SMALL_FILES} small files made on n0 in a row are all there, byte-exact, on n2`, async (t) => {
  const start = performance.now();
  await run('sh', ['-c', `mkdir ${at(0, 'small')} && cd ${at(0, 'small')} && i=0; while [ $i -lt ${SMALL_FILES} ]; do echo "file $i" > f$i; i=$((i+1)); done`], { timeout: 300_000 });
  t.comment(`${(SMALL_FILES / ((performance.now() - start) / 1000)).toFixed(0)} files/s through n0's mount`);
  const names = Array.from({ length: SMALL_FILES }, (_, i) => `f${i}`).sort();
  t.same((await run('ls', [at(2, 'small')])).stdout.split('\n').filter(Boolean), names);
  const { stdout } = await run('sh', ['-c', `cd ${at(2, 'small')} && cat ${names.join(' ')}`], { timeout: 60_000 });
  t.equal(stdout, names.map((name) => `file ${name.slice(1)}\n`).join(''));
});

// /zone over a real NatsGridFs whose owner has a small quota: a write past it fails with
// ENOSPC in the workload, stores nothing, and the mount keeps serving. As in the other
// mount tests, every access is a busybox child process (this process serves the mount).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { mountZone } from '../../../../appliance/pseudokernel/mount/mount.ts';
import { NatsGridFs } from '../../../../appliance/pseudokernel/fs/grid-fs.ts';
import { natsForFile } from '../../../helpers/nats.ts';
import { MemoryProcTable } from '../memory-grid.ts';

const run = promisify(execFile);
const MiB = 2 ** 20;
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const logger = createLogger({ level: 'warn' });
const nc = await natsForFile('fuse-quota', logger);
const grid = await NatsGridFs.open(nc, { owner: OWNER, replicas: 1, logger, quota: { ownerBytes: MiB, ownerKvBytes: 128 * 1024 } });
const base = await mkdtemp(join(tmpdir(), 'zone-fuse-quota-'));
const mnt = join(base, 'zone');
const self = { name: 'w', blueprint: 'b', node: 'n1', owner: OWNER, ip: null };
const mount = await mountZone({ mountpoint: mnt, grid, proc: new MemoryProcTable([]), self, logger, scratchParent: base });
t.teardown(async () => {
  await mount.unmount();
  await rm(base, { recursive: true, force: true });
});

/** A busybox script in the mount: its exit code and output. */
async function sh(script: string): Promise<{ code: number; out: string }> {
  return run('busybox', ['sh', '-c', `cd ${mnt}/fs; ${script}`], { timeout: 30_000 }).then(
    ({ stdout }) => ({ code: 0, out: stdout }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
  );
}

const src = join(base, 'src');

t.test('a write past the owner\'s quota is "No space left on device"; what fits is kept; removing makes room', async (t) => {
  t.equal((await sh(`head -c 600000 /dev/urandom > ${src} && cp ${src} a.bin`)).code, 0, 'the first 600 KB fit');
  const refused = await sh(`cp ${src} b.bin`);
  t.not(refused.code, 0, 'the second copy fails');
  t.match(refused.out, /No space left on device/);
  t.equal((await sh(`cmp a.bin ${src} && echo same`)).out, 'same\n', 'the file that fit reads back whole');
  t.equal((await sh(`ls`)).out.includes('a.bin'), true, 'the mount still serves');
  t.equal((await sh(`rm -f b.bin a.bin && cp ${src} c.bin && wc -c < c.bin`)).out.trim(), '600000', 'after a removal the file fits');
});

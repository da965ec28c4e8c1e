// /zone/fs sequential write and read through the FUSE mount (close-to-open: the write
// includes publishing the file to JetStream at close; the read reads the version open by range)
// against the host's local disk, in the same run, with dd in a child process (the
// process serving a FUSE mount must never touch it itself).
//  write: dd of 64 MiB, fsync'd on the local disk; on /zone until dd has closed the file
//  read:  dd of the same file to /dev/null; the local file after dropping the page cache
// Run: node --import tsx bench/zonefs.ts [MiB, default 64] [rounds, default 3]
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../appliance/logger.ts';
import { mountZone } from '../appliance/pseudokernel/fuse-mount.ts';
import { NatsGridFs } from '../appliance/pseudokernel/grid-fs.ts';
import { NatsServer } from '../appliance/pseudokernel/nats-server.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';

const run = promisify(execFile);
const MIB = Number.parseInt(process.argv[2] ?? '64', 10);
const ROUNDS = Number.parseInt(process.argv[3] ?? '3', 10);
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;

const dir = mkdtempSync('/var/tmp/zone-bench-zonefs-');
const logger = createLogger({ level: 'warn' });
const [port] = (await freeLoopbackPorts(1)) as [number];
const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: 'bench', host: '127.0.0.1', port, logger });

/** Seconds one command takes. */
async function timed(command: string): Promise<number> {
  const start = performance.now();
  await run('sh', ['-c', command]);
  return (performance.now() - start) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rate = (seconds: number) => `${(MIB / seconds).toFixed(1)} MiB/s`;
const dropCaches = () => {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
    return true;
  } catch {
    return false;
  }
};

await server.start();
const nc = await server.connect();
const grid = await NatsGridFs.open(nc, { owner: OWNER, replicas: 1, logger });
const mount = await mountZone({
  mountpoint: join(dir, 'mnt'), grid, proc: { list: async () => [] }, logger, scratchParent: dir,
  self: { name: 'bench', blueprint: 'bench', node: 'bench', owner: OWNER, ip: null },
});
try {
  const local = { write: [] as number[], read: [] as number[] };
  const zone = { write: [] as number[], read: [] as number[] };
  let cold = true;
  for (let i = 0; i < ROUNDS; i++) {
    const file = join(dir, `local-${i}`);
    local.write.push(await timed(`dd if=/dev/zero of=${file} bs=1M count=${MIB} conv=fsync 2>/dev/null`));
    cold = dropCaches() && cold;
    local.read.push(await timed(`dd if=${file} of=/dev/null bs=1M 2>/dev/null`));
    const shared = join(mount.mountpoint, 'fs', `big-${i}`);
    zone.write.push(await timed(`dd if=/dev/zero of=${shared} bs=1M count=${MIB} 2>/dev/null`));
    zone.read.push(await timed(`dd if=${shared} of=/dev/null bs=1M 2>/dev/null`));
  }
  console.log(`/zone/fs benchmark, ${MIB} MiB sequential, median of ${ROUNDS}; local reads ${cold ? 'after dropping the page cache' : 'from the page cache (could not drop it)'}`);
  console.log(`write  local disk (fsync) ${rate(median(local.write))}   /zone/fs (published at close) ${rate(median(zone.write))}   zone/local ${(median(local.write) / median(zone.write)).toFixed(2)}x`);
  console.log(`read   local disk         ${rate(median(local.read))}   /zone/fs (read by range)      ${rate(median(zone.read))}   zone/local ${(median(local.read) / median(zone.read)).toFixed(2)}x`);
} finally {
  await mount.unmount();
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

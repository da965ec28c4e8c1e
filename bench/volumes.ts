// What a volume costs against the other places a container can keep data, measured with
// fio inside a container in one run: sequential 1 MiB and random 4 KiB reads and writes
// (O_DIRECT, so the page cache does not hide the storage) on
// - a volume (ext4 in a sparse file, loop-mounted, bind-mounted into the container),
// - the container's writable layer (overlayfs),
// - a host directory on the node's data disk, bind-mounted (the baseline).
// The same fio binary runs in all three (copied with its libraries into an image).
// Run: node --import tsx bench/volumes.ts   (root, dockerd, fio on the host)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HostVolumes } from '../drivers/volumes/provider.ts';
import { volumeId } from '../drivers/names.ts';
import { buildFioImage, FIO_IMAGE, FIO_JOBS, FIO_RUNTIME_S, FIO_SIZE, fioArgv, fioResult, formatFio, removeFioImage, type FioJob } from './fio.ts';

/** fio's result (MiB/s or IOPS) for one job in a fresh container with `mounts`, in `directory`. */
function fio(job: FioJob, directory: string, mounts: string[]): number {
  const out = execFileSync('docker', ['run', '--rm', ...mounts.flatMap((m) => ['-v', m]), FIO_IMAGE, ...fioArgv(job, { directory })], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return fioResult(job, out);
}

const dir = mkdtempSync(join(process.cwd(), '.zone-bench-volumes-'));
const volumes = new HostVolumes(join(dir, 'volumes'), 'bench');
const owner = 'ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
try {
  buildFioImage();
  const volume = await volumes.ensure({ node: 'bench', owner, blueprint: 'bench', volume: 'data', id: volumeId('bench', owner, 'bench', 'data'), kind: 'filesystem', sizeBytes: 1024 * 2 ** 20 });
  const hostDir = join(dir, 'host');
  mkdirSync(hostDir);
  const places = [
    { name: 'host data dir', directory: '/bench', mounts: [`${hostDir}:/bench`] },
    { name: 'volume', directory: '/bench', mounts: [`${volume.path}:/bench`] },
    { name: 'writable layer', directory: '/var', mounts: [] },
  ];
  console.log(`fio ${FIO_SIZE} file, ${FIO_RUNTIME_S} s per job, O_DIRECT, psync, inside a container`);
  console.log(['job', ...places.map((p) => p.name), 'volume/host', 'layer/host'].map((s) => s.padEnd(16)).join(''));
  for (const job of FIO_JOBS) {
    const [host, vol, layer] = places.map((p) => fio(job, p.directory, p.mounts)) as [number, number, number];
    const f = (n: number) => formatFio(job, n);
    console.log([job.name, f(host), f(vol), f(layer), `${(vol / host).toFixed(2)}x`, `${(layer / host).toFixed(2)}x`].map((s) => s.padEnd(16)).join(''));
  }
} finally {
  for (const v of await volumes.list()) await volumes.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
  removeFioImage();
}

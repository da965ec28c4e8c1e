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

const IMAGE = 'zone-bench/fio:1';
const SIZE = '256M';
const RUNTIME_S = 5;
const JOBS = [
  { name: 'seq write', rw: 'write', bs: '1M', unit: 'MiB/s' },
  { name: 'seq read', rw: 'read', bs: '1M', unit: 'MiB/s' },
  { name: 'rand 4k write', rw: 'randwrite', bs: '4k', unit: 'IOPS' },
  { name: 'rand 4k read', rw: 'randread', bs: '4k', unit: 'IOPS' },
] as const;

const run = (cmd: string, args: string[], input?: Buffer) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...(input ? { input } : {}) });

/** An image holding zone/busybox and the host's fio with the libraries it loads. */
function buildFioImage(): void {
  const libs = run('ldd', ['/usr/bin/fio']).split('\n').map((l) => /=> (\/\S+)|^\s*(\/\S+)/.exec(l)).flatMap((m) => (m ? [m[1] ?? m[2] ?? ''] : [])).filter(Boolean);
  const tar = execFileSync('tar', ['-chf', '-', '/usr/bin/fio', ...libs], { maxBuffer: 512 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const container = run('docker', ['create', 'zone/busybox', 'true']).trim();
  try {
    execFileSync('docker', ['cp', '-', `${container}:/`], { input: tar });
    run('docker', ['commit', container, IMAGE]);
  } finally {
    run('docker', ['rm', '-f', container]);
  }
}

/** fio's result (MiB/s or IOPS) for one job in a fresh container with `mounts`, in `directory`. */
function fio(job: (typeof JOBS)[number], directory: string, mounts: string[]): number {
  const out = run('docker', ['run', '--rm', ...mounts.flatMap((m) => ['-v', m]), IMAGE, 'fio',
    '--name=bench', `--directory=${directory}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--size=${SIZE}`, '--direct=1', '--ioengine=psync',
    '--time_based', `--runtime=${RUNTIME_S}`, '--output-format=json']);
  const r = (JSON.parse(out) as { jobs: { read: { bw: number; iops: number }; write: { bw: number; iops: number } }[] }).jobs[0]!;
  const side = job.rw.includes('read') ? r.read : r.write;
  return job.unit === 'IOPS' ? side.iops : side.bw / 1024;
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
  console.log(`fio ${SIZE} file, ${RUNTIME_S} s per job, O_DIRECT, psync, inside a container`);
  console.log(['job', ...places.map((p) => p.name), 'volume/host', 'layer/host'].map((s) => s.padEnd(16)).join(''));
  for (const job of JOBS) {
    const [host, vol, layer] = places.map((p) => fio(job, p.directory, p.mounts)) as [number, number, number];
    const f = (n: number) => `${n.toFixed(job.unit === 'IOPS' ? 0 : 1)} ${job.unit}`;
    console.log([job.name, f(host), f(vol), f(layer), `${(vol / host).toFixed(2)}x`, `${(layer / host).toFixed(2)}x`].map((s) => s.padEnd(16)).join(''));
  }
} finally {
  for (const v of await volumes.list()) await volumes.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
  execFileSync('docker', ['rmi', '-f', IMAGE], { stdio: 'ignore' });
}

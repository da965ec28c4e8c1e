// fio for the volume benchmarks: an image holding zone/busybox and the host's fio with the
// libraries it loads (the same binary in a container and in a VM booted from the image),
// the four jobs, and fio's JSON read back.
import { execFileSync } from 'node:child_process';

export const FIO_IMAGE = 'zone-bench/fio:1';
export const FIO_SIZE = '256M';
export const FIO_RUNTIME_S = 5;
/** In this order: the writes first, so the reads never read blocks nobody wrote (a qcow2 answers those with zeros, no I/O). */
export const FIO_JOBS = [
  { name: 'seq write', rw: 'write', bs: '1M', unit: 'MiB/s' },
  { name: 'seq read', rw: 'read', bs: '1M', unit: 'MiB/s' },
  { name: 'rand 4k write', rw: 'randwrite', bs: '4k', unit: 'IOPS' },
  { name: 'rand 4k read', rw: 'randread', bs: '4k', unit: 'IOPS' },
] as const;
export type FioJob = (typeof FIO_JOBS)[number];

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });

export function buildFioImage(): void {
  const libs = run('ldd', ['/usr/bin/fio']).split('\n').map((l) => /=> (\/\S+)|^\s*(\/\S+)/.exec(l)).flatMap((m) => (m ? [m[1] ?? m[2] ?? ''] : [])).filter(Boolean);
  const tar = execFileSync('tar', ['-chf', '-', '/usr/bin/fio', ...libs], { maxBuffer: 512 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const container = run('docker', ['create', 'zone/busybox', 'true']).trim();
  try {
    execFileSync('docker', ['cp', '-', `${container}:/`], { input: tar });
    run('docker', ['commit', container, FIO_IMAGE]);
  } finally {
    run('docker', ['rm', '-f', container]);
  }
}

export function removeFioImage(): void {
  execFileSync('docker', ['rmi', '-f', FIO_IMAGE], { stdio: 'ignore' });
}

/** fio's argv for `job` on a file in `target.directory` or on `target.filename` (a block device): O_DIRECT, queue depth 1. */
export function fioArgv(job: FioJob, target: { directory: string } | { filename: string }): string[] {
  return ['fio', '--name=bench', 'directory' in target ? `--directory=${target.directory}` : `--filename=${target.filename}`,
    `--rw=${job.rw}`, `--bs=${job.bs}`, `--size=${FIO_SIZE}`, '--direct=1', '--ioengine=psync',
    '--time_based', `--runtime=${FIO_RUNTIME_S}`, '--output-format=json'];
}

/** The job's result (MiB/s or IOPS) from fio's JSON output. */
export function fioResult(job: FioJob, json: string): number {
  const r = (JSON.parse(json) as { jobs: { read: { bw: number; iops: number }; write: { bw: number; iops: number } }[] }).jobs[0]!;
  const side = job.rw.includes('read') ? r.read : r.write;
  return job.unit === 'IOPS' ? side.iops : side.bw / 1024;
}

export const formatFio = (job: FioJob, n: number) => `${n.toFixed(job.unit === 'IOPS' ? 0 : 1)} ${job.unit}`;

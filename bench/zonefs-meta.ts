// /zone/fs small-file metadata operations per second (create, stat, rename, unlink)
// against the host's local disk, in the same run. One perl process per phase set does the
// syscalls in a loop (one process, so process start-up does not hide the file system's
// cost), in a directory on the local disk and in one of a /zone mount on one
// nats-server (JetStream file storage on the same disk). Rounds alternate local and zone,
// so the machine's other load hits both alike.
// Run: node --import tsx bench/zonefs-meta.ts [files, default 300] [rounds, default 3]
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../appliance/logger.ts';
import { mountZone, type ZoneMount } from '../appliance/pseudokernel/mount/mount.ts';
import { NatsGridFs } from '../appliance/pseudokernel/fs/grid-fs.ts';
import { NatsServer } from '../appliance/pseudokernel/nats/nats-server.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';

const run = promisify(execFile);
const FILES = Number.parseInt(process.argv[2] ?? '300', 10);
const ROUNDS = Number.parseInt(process.argv[3] ?? '3', 10);
const OWNER = `ed25519:${Buffer.alloc(32, 11).toString('base64')}`;
const PHASES = ['create', 'stat', 'rename', 'unlink'] as const;
type Phase = (typeof PHASES)[number];

// Seconds of each phase over FILES files in the current directory, as JSON.
const PERL = `
use strict; use Time::HiRes qw(time);
my $n = shift; my %t; my $s;
$s = time; for my $i (1..$n) { open(my $f, '>', "f$i") or die "create f$i: $!"; close($f); } $t{create} = time - $s;
$s = time; for my $i (1..$n) { my @st = lstat("f$i") or die "stat f$i: $!"; } $t{stat} = time - $s;
$s = time; for my $i (1..$n) { rename("f$i", "g$i") or die "rename f$i: $!"; } $t{rename} = time - $s;
$s = time; for my $i (1..$n) { unlink("g$i") or die "unlink g$i: $!"; } $t{unlink} = time - $s;
print join(',', map { "\\"$_\\":$t{$_}" } sort keys %t), "\\n";
`;

async function phases(dir: string): Promise<Record<Phase, number>> {
  // Into the directory by the shell, not spawn's cwd: a chdir into the mount in the forked
  // child would wait for this process's main thread, which waits for the exec.
  const { stdout } = await run('sh', ['-c', 'mkdir "$1" && cd "$1" && exec perl -e "$2" "$3"', 'sh', dir, PERL, String(FILES)]);
  return JSON.parse(`{${stdout.trim()}}`) as Record<Phase, number>;
}

const dir = mkdtempSync('/var/tmp/zone-bench-meta-');
const logger = createLogger({ level: 'warn' });
const [port] = (await freeLoopbackPorts(1)) as [number];
const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: 'meta', host: '127.0.0.1', port, logger, startTimeoutMs: 30_000 });
let mount: ZoneMount | null = null;
try {
  await server.start();
  const nc = await server.connect();
  const grid = await NatsGridFs.open(nc, { owner: OWNER, replicas: 1, logger });
  mount = await mountZone({
    mountpoint: join(dir, 'zone'), grid, proc: { list: async () => [] }, logger, scratchParent: dir,
    self: { name: 'bench', blueprint: 'bench', node: 'meta', owner: OWNER, ip: null },
  });
  const local: Record<Phase, number>[] = [];
  const zone: Record<Phase, number>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    local.push(await phases(join(dir, `local-${i}`)));
    zone.push(await phases(join(mount.mountpoint, 'fs', `round-${i}`)));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const opsPerSecond = (runs: Record<Phase, number>[], phase: Phase) => FILES / median(runs.map((r) => r[phase]));
  console.log(`/zone/fs metadata benchmark: ${FILES} empty files per phase, median of ${ROUNDS}; one nats-server, JetStream file storage on the local disk`);
  for (const phase of PHASES) {
    const [l, z] = [opsPerSecond(local, phase), opsPerSecond(zone, phase)];
    console.log(`${phase.padEnd(6)}  local disk ${l.toFixed(0).padStart(7)} ops/s   /zone/fs ${z.toFixed(0).padStart(6)} ops/s   zone/local ${(z / l).toFixed(4)}x`);
  }
  await nc.close();
} finally {
  await mount?.unmount();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

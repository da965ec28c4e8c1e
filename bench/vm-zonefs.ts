// /zone/fs from inside a VM (virtio-9p to the host's FUSE mount) against the same from a
// container (bind mount of the same kind of FUSE mount) and against the VM's own disk (a
// block volume, virtio-blk over qcow2), one run, through one appliance with the real
// libvirt and Docker drivers and its pseudokernel (a lone nats-server).
//  write: dd of N MiB of zeros; on /zone/fs until dd has closed the file (close publishes it);
//         on the disk with conv=fsync
//  read:  dd to /dev/null of a file the bench put into the owner's files before (so each
//         mount reads it first: no page cache, no local copy of its writer; the share is
//         cache=none); the disk after dropping the guest's page cache
// Each workload times itself from /proc/uptime (centiseconds) and prints the figures on
// its output; the VM runs under TCG on the test machines, which the figures include.
// Run: node --import tsx bench/vm-zonefs.ts [MiB, default 32]
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import pino from 'pino';
import { GIB } from '../appliance/admission.ts';
import { createAppliance } from '../appliance/appliance.ts';
import { buildVolumeProvider } from '../appliance/drivers.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../appliance/config.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { removeNodeContainers } from '../cli/cluster/grid.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { LibvirtDriver } from '../drivers/libvirt/driver.ts';
import { workloadId } from '../drivers/names.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';
import { waitFor } from '../test/helpers/wait.ts';

const MIB = Number.parseInt(process.argv[2] ?? '32', 10);
const BOUND_MS = 600_000;

/** A shell line that runs `command` and prints `label SECONDS`, timed by /proc/uptime. */
const timed = (label: string, command: string) =>
  `t0=$(cut -d" " -f1 /proc/uptime); ${command}; t1=$(cut -d" " -f1 /proc/uptime); echo "${label} $t0 $t1"`;
const zoneRuns = (who: string) => [
  timed('zone-write', `dd if=/dev/zero of=/zone/fs/${who}.bin bs=1M count=${MIB} 2>/dev/null`),
  timed('zone-read', 'dd if=/zone/fs/seed.bin of=/dev/null bs=1M 2>/dev/null'),
];

const dir = mkdtempSync('/var/tmp/zone-bench-vmzone-');
chmodSync(dir, 0o711); // qemu walks to the initrd, the disk and the /zone mount
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}` }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 0 }), new LibvirtDriver(ctx, { removeGraceMs: 0 })],
  volumes: buildVolumeProvider,
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  pseudokernel: { startTimeoutMs: 60_000 },
});
appliance.start();
const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: appliance.identity.id, ...bp } as Blueprint, operator.secretKey);

/** label -> seconds, from a workload's output once it printed `done`. */
async function figures(workload: string): Promise<Map<string, number>> {
  const out = await waitFor(async () => {
    const log = await text(await appliance.logs('vmzonefs', workload, { follow: false }));
    if (/no \/zone/.test(log)) throw new Error(`${workload} has no /zone: ${log.slice(-800)}`);
    return /^done\r?$/m.test(log) && log;
  }, { timeoutMs: BOUND_MS, what: `${workload}'s figures` });
  return new Map([...out.matchAll(/^([a-z-]+) ([\d.]+) ([\d.]+)\r?$/gm)].map((m) => [m[1]!, Number(m[3]) - Number(m[2])]));
}

try {
  const grid = await appliance.pseudokernel!.gridFs(operator.publicKey);
  await grid.write('/seed.bin', Readable.from((function* () { for (let i = 0; i < MIB; i++) yield Buffer.alloc(2 ** 20, i); })()));
  // One after the other, so neither steals the other's CPU: the container once the VM is done.
  await appliance.submit(sign({
    name: 'vmzonefs', version: 1, volumes: [{ name: 'scratch', kind: 'block', size: `${MIB + 16}Mi` }],
    workloads: [{
      name: 'vm', kind: 'vm', image: 'zone/busybox', resources: { memory: '256Mi' }, disks: [{ volume: 'scratch' }], restart: 'never',
      command: ['sh', '-c', [
        ...zoneRuns('vm'),
        timed('disk-write', `dd if=/dev/zero of=/dev/vda bs=1M count=${MIB} conv=fsync 2>/dev/null`),
        'sync; echo 3 > /proc/sys/vm/drop_caches',
        timed('disk-read', `dd if=/dev/vda of=/dev/null bs=1M count=${MIB} 2>/dev/null`),
        'echo done',
      ].join('; ')],
    }],
  }));
  const vm = await figures('vm');
  await appliance.submit(sign({
    name: 'vmzonefs', version: 2, volumes: [{ name: 'scratch', kind: 'block', size: `${MIB + 16}Mi` }],
    workloads: [{ name: 'box', kind: 'container', image: 'zone/busybox', restart: 'never', command: ['sh', '-c', [...zoneRuns('box'), 'echo done'].join('; ')] }],
  }));
  const box = await figures('box');
  const rate = (seconds: number | undefined) => (seconds ? MIB / seconds : NaN);
  console.log(`/zone/fs from a VM (9p, TCG) vs from a container vs the VM's own disk (virtio-blk qcow2 volume), ${MIB} MiB sequential, one run; lone nats-server`);
  for (const op of ['write', 'read'] as const) {
    const vmZone = rate(vm.get(`zone-${op}`));
    const boxZone = rate(box.get(`zone-${op}`));
    const vmDisk = rate(vm.get(`disk-${op}`));
    console.log(`${op.padEnd(5)}  VM /zone/fs ${vmZone.toFixed(1)} MiB/s   container /zone/fs ${boxZone.toFixed(1)} MiB/s   VM disk ${vmDisk.toFixed(1)} MiB/s   VM/container ${(vmZone / boxZone).toFixed(2)}x   VM zone/VM disk ${(vmZone / vmDisk).toFixed(2)}x`);
  }
} finally {
  await appliance.submit(sign({ name: 'vmzonefs', version: 3, delete: true })).catch(() => undefined);
  await waitFor(() => appliance.pseudokernel!.mounted().size === 0, { timeoutMs: 60_000, what: 'the /zone mounts released' }).catch(() => undefined);
  await appliance.close();
  await removeNodeContainers([appliance.identity.id]).catch(() => undefined);
  const domain = workloadId(appliance.identity.id, operator.publicKey, 'vmzonefs', 'vm');
  for (const cmd of ['destroy', 'undefine']) spawnSync('virsh', ['-c', 'qemu:///system', cmd, domain]);
  rmSync(dir, { recursive: true, force: true });
}

// What a block volume costs a VM, measured with fio inside the guest in one run:
// sequential 1 MiB and random 4 KiB reads and writes (O_DIRECT, queue depth 1) on /dev/vda
// - a zone block volume (the volume provider's qcow2) given to a VM by the libvirt driver,
// - a qcow2 made by `qemu-img create` given to a domain defined by plain `virsh create`
//   (the baseline): the same kernel, the same initrd (copied from the zone VM's), the same
//   memory and vCPU, the disk on the same bus,
// - a second zone volume and VM after the baseline (a-b-a): the ratio is over the mean of
//   the two zone runs, and their spread shows how much of it is the machine's noise.
// fio is the host's, copied with its libraries into the image the VM boots (bench/fio.ts).
// Run: node --import tsx bench/vm-volumes.ts   (root, dockerd, libvirtd, the VM kernel)
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { normalizeWorkload, specHash } from '../blueprints/normalize.ts';
import { LibvirtDriver } from '../drivers/libvirt/driver.ts';
import { shellQuote } from '../drivers/libvirt/guest-init.ts';
import { KERNEL_CMDLINE } from '../drivers/libvirt/spec.ts';
import { volumeId, workloadId } from '../drivers/names.ts';
import { HostVolumes } from '../drivers/volumes/provider.ts';
import { buildFioImage, FIO_IMAGE, FIO_JOBS, FIO_RUNTIME_S, FIO_SIZE, fioArgv, fioResult, formatFio, removeFioImage } from './fio.ts';

const run = promisify(execFile);
const KERNEL = '/var/cache/zone/kernel/vmlinuz';
const MEMORY_MIB = 1024; // the initrd (busybox, fio and its libraries) unpacks into RAM, at most half of it
const VOLUME_BYTES = 1024 * 2 ** 20;
const BOUND_MS = 15 * 60_000;
const NODE = `bench${process.pid}`;
const OWNER = 'ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const PLAIN = `zbench-plain-${process.pid}`;
const virsh = (...args: string[]) => run('virsh', ['-c', 'qemu:///system', ...args]);

/** Every job on /dev/vda, each one's JSON between markers, then the guest powers off (the guest init does). */
const GUEST = FIO_JOBS.map((job) => `echo fio-begin ${job.rw}; ${fioArgv(job, { filename: '/dev/vda' }).map(shellQuote).join(' ')} 2>/dev/null; echo fio-end ${job.rw}`).join('\n');

/** Waits for the guest init's exit line in `log`, then reads each job's result from the console. */
async function results(log: string): Promise<number[]> {
  const until = Date.now() + BOUND_MS;
  let text = '';
  while (!/zone: exited \d+/.test(text)) {
    if (Date.now() > until || text.includes('Kernel panic')) throw new Error(`the guest did not finish (within ${BOUND_MS / 1000} s); console: ${text.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    text = readFileSync(log, 'utf8').replace(/\r/g, '');
  }
  return FIO_JOBS.map((job) => {
    const m = new RegExp(`fio-begin ${job.rw}\\n([\\s\\S]*?)fio-end ${job.rw}`).exec(text);
    if (!m?.[1]) throw new Error(`no result of ${job.rw}; console: ${text.slice(-2000)}`);
    return fioResult(job, m[1].slice(m[1].indexOf('{')));
  });
}

const dir = mkdtempSync('/var/tmp/zone-bench-vmvol-');
chmodSync(dir, 0o711); // qemu (libvirt's qemu user) walks to the initrds and the disks
const volumes = new HostVolumes(join(dir, 'volumes'), NODE);
const driver = new LibvirtDriver({ node: NODE, dataDir: join(dir, 'drivers'), openSecret: () => '' }, { removeGraceMs: 0 });
const id = workloadId(NODE, OWNER, 'bench', 'fio');
try {
  buildFioImage();
  const accelerator = String((await driver.fingerprint()).details.accelerator);

  // (a) a zone block volume, given to the VM by the driver as the engine would.
  const definition = normalizeWorkload({
    name: 'fio', kind: 'vm', image: FIO_IMAGE, command: ['sh', '-c', GUEST], restart: 'never', resources: { memory: `${MEMORY_MIB}Mi` }, disks: [{ volume: 'data' }],
  });
  const domainDir = join(dir, 'drivers/libvirt/domains', id);
  const zoneRun = async (name: string): Promise<number[]> => {
    const volume = await volumes.ensure({ node: NODE, owner: OWNER, blueprint: 'bench', volume: name, id: volumeId(NODE, OWNER, 'bench', name), kind: 'block', sizeBytes: VOLUME_BYTES });
    await driver.ensure({ node: NODE, owner: OWNER, blueprint: 'bench', workload: 'fio', id, specHash: specHash(definition), definition, volumePaths: { data: volume.path! } });
    return results(join(domainDir, 'console.log'));
  };
  const zone = await zoneRun('data');

  // (b) the baseline: plain virsh, a plain qcow2, the same guest.
  const plainDir = join(dir, 'plain');
  mkdirSync(plainDir, { mode: 0o711 });
  const initrd = join(plainDir, 'initrd.cpio.gz');
  copyFileSync(join(domainDir, 'initrd.cpio.gz'), initrd);
  chmodSync(initrd, 0o644);
  await driver.remove(id);
  const disk = join(plainDir, 'plain.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, String(VOLUME_BYTES)]);
  const log = join(plainDir, 'console.log');
  writeFileSync(join(plainDir, 'domain.xml'), `<domain type='${accelerator === 'kvm' ? 'kvm' : 'qemu'}'>
  <name>${PLAIN}</name>
  <memory unit='MiB'>${MEMORY_MIB}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${KERNEL}</kernel><initrd>${initrd}</initrd><cmdline>${KERNEL_CMDLINE}</cmdline></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <serial type='file'><source path='${log}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`);
  await virsh('create', join(plainDir, 'domain.xml'));
  const plain = await results(log);
  // (a') a fresh volume and VM again: how far two zone runs differ.
  const zoneAgain = await zoneRun('again');

  console.log(`fio on /dev/vda inside a VM (${accelerator}, 1 vCPU, ${MEMORY_MIB} MiB, busybox + the host's fio in the initrd), ${FIO_SIZE}, ${FIO_RUNTIME_S} s per job, O_DIRECT, psync`);
  console.log(['job', 'zone volume', 'plain virsh', 'zone again', 'volume/plain', 'zone spread'].map((s) => s.padEnd(16)).join(''));
  FIO_JOBS.forEach((job, i) => {
    const [a, b, a2] = [zone[i]!, plain[i]!, zoneAgain[i]!];
    const cells = [formatFio(job, a), formatFio(job, b), formatFio(job, a2), `${((a + a2) / 2 / b).toFixed(2)}x`, `${(Math.max(a, a2) / Math.min(a, a2)).toFixed(2)}x`];
    console.log([job.name, ...cells].map((s) => s.padEnd(16)).join(''));
  });
} finally {
  await driver.remove(id).catch(() => undefined);
  await driver.close();
  await virsh('destroy', PLAIN).catch(() => undefined);
  for (const v of await volumes.list()) await volumes.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
  removeFioImage();
}

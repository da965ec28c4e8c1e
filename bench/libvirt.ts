// libvirt driver benchmark, baseline in the same run (medians of N, interleaved):
//  (a)  raw `virsh create` of the same generated domain XML (same kernel, same initrd),
//       until the guest's marker `zone: started <workload>` is in the console log
//  (b)  a signed blueprint submitted to the appliance, until the same marker
//  (b') LibvirtDriver.ensure of the same workload alone, until the same marker
// The image's rootfs archive is built once before timing (it is cached per image id).
// Run: node --import tsx bench/libvirt.ts [N]
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import pino from 'pino';
import { GIB } from '../appliance/admission.ts';
import { createAppliance } from '../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../appliance/config.ts';
import { workloadId } from '../drivers/names.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import { normalizeWorkload, specHash } from '../blueprints/normalize.ts';
import type { Blueprint, Workload } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import type { WorkloadSpec } from '../drivers/contract.ts';
import { domainXml } from '../drivers/libvirt/domain-xml.ts';
import { LibvirtDriver } from '../drivers/libvirt/driver.ts';
import { guestInitScript, startedMarker } from '../drivers/libvirt/guest-init.ts';
import { imageRootfs, writeWorkloadInitrd } from '../drivers/libvirt/initramfs.ts';
import { KERNEL_CMDLINE } from '../drivers/libvirt/spec.ts';

const run = promisify(execFile);
const N = Number.parseInt(process.argv[2] ?? '3', 10);
const KERNEL = '/var/cache/zone/kernel/vmlinuz';
const BOUND_MS = 180_000;
const COMMAND = ['sh', '-c', 'while true; do sleep 5; done'];
const WORKLOAD: Workload = { name: 'box', kind: 'vm', image: 'zone/busybox', command: COMMAND, resources: { memory: '128Mi' } };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};
const secs = (x: number) => `${(x / 1000).toFixed(2)} s`;
const virsh = (...args: string[]) => run('virsh', ['-c', 'qemu:///system', ...args]);

/** Polls `read` every 50 ms until it contains the marker; the elapsed ms since `t0`. */
async function untilMarker(read: () => Promise<string>, t0: number): Promise<number> {
  const marker = startedMarker(WORKLOAD.name);
  while (Date.now() - t0 < BOUND_MS) {
    if ((await read().catch(() => '')).includes(marker)) return Date.now() - t0;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no marker within ${BOUND_MS} ms`);
}

async function streamText(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text;
}

const dir = mkdtempSync('/var/tmp/zone-bench-lv-');
chmodSync(dir, 0o711);
const rawNames: string[] = [];
const driverIds: string[] = [];

async function main(): Promise<void> {
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const operator = readSigningKey(createdOperatorKey!);
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger: pino({ level: 'silent' }),
    drivers: (ctx) => [new LibvirtDriver(ctx, { removeGraceMs: 0 })],
    hostCapacity: { cpus: 2, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  });
  appliance.start();
  const nodeId = appliance.identity.id;
  const driversDir = join(dir, 'drivers');
  const driver = new LibvirtDriver({ node: `bench${process.pid}`, dataDir: driversDir, openSecret: () => '' }, { removeGraceMs: 0 });
  const accelerator = String((await driver.fingerprint()).details.accelerator);

  // The baseline boots the same kernel and the same initrd layout the driver builds.
  const image = await imageRootfs(new Docker(), 'zone/busybox', join(driversDir, 'libvirt/images'));
  const rawDir = join(dir, 'raw');
  mkdirSync(rawDir, { mode: 0o711 });
  const initrd = join(rawDir, 'initrd.cpio.gz');
  await writeWorkloadInitrd(image.archive, guestInitScript({ workload: WORKLOAD.name, argv: COMMAND, env: image.env, workdir: image.workdir }), initrd);

  const a: number[] = [];
  const b: number[] = [];
  const b2: number[] = [];
  for (let i = 0; i < N; i++) {
    // (a) virsh create
    const name = `zbench-raw-${process.pid}-${i}`;
    rawNames.push(name);
    const log = join(rawDir, `${name}.log`);
    const xmlPath = join(rawDir, `${name}.xml`);
    writeFileSync(xmlPath, domainXml({
      name, accelerator: accelerator === 'kvm' ? 'kvm' : 'tcg', vcpus: 1, memoryBytes: 128 * 1024 * 1024,
      boot: { kind: 'kernel', kernel: KERNEL, initrd, cmdline: KERNEL_CMDLINE },
      consoleLog: log, consoleSocket: join(rawDir, `${i}.sock`), controlSocket: join(rawDir, `${i}.ctl`), bridges: [],
      metadata: { node: 'bench-raw', owner: 'bench', blueprint: 'bench', workload: WORKLOAD.name, specHash: 'ab'.repeat(32) },
    }));
    let t0 = Date.now();
    await virsh('create', xmlPath);
    a.push(await untilMarker(async () => readFileSync(log, 'utf8'), t0));
    await virsh('destroy', name);

    // (b) blueprint through the appliance
    const bpName = `lvbench${i}`;
    driverIds.push(workloadId(nodeId, operator.publicKey, bpName, WORKLOAD.name));
    const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: nodeId, ...bp } as Blueprint, operator.secretKey);
    t0 = Date.now();
    await appliance.submit(sign({ name: bpName, version: 1, workloads: [WORKLOAD] }));
    b.push(await untilMarker(async () => streamText(await appliance.logs(bpName, WORKLOAD.name, { follow: false })), t0));
    await appliance.submit(sign({ name: bpName, version: 2, delete: true }));

    // (b') the driver alone
    const definition = normalizeWorkload(WORKLOAD);
    const spec: WorkloadSpec = {
      node: `bench${process.pid}`, owner: 'ed25519:bench', blueprint: `bench${i}`, workload: WORKLOAD.name,
      id: workloadId(`bench${process.pid}`, 'ed25519:bench', `bench${i}`, WORKLOAD.name), specHash: specHash(definition), definition,
    };
    driverIds.push(spec.id);
    t0 = Date.now();
    await driver.ensure(spec);
    b2.push(await untilMarker(async () => streamText(await driver.logs(spec.id, { follow: false })), t0));
    await driver.remove(spec.id);
  }
  await appliance.reconciler.idle();
  await appliance.close();
  await driver.close();

  console.log(`libvirt benchmark, N=${N}, accelerator ${accelerator}, 1 vCPU, 128 MiB, zone/busybox booted with the Debian kernel`);
  console.log(`(a)  virsh create until the guest marker:          median ${secs(median(a))}  [${a.map(secs).join(', ')}]`);
  console.log(`(b)  blueprint submitted until the guest marker:   median ${secs(median(b))}  [${b.map(secs).join(', ')}]  ratio b/a ${(median(b) / median(a)).toFixed(2)}`);
  console.log(`(b') LibvirtDriver.ensure until the guest marker:  median ${secs(median(b2))}  [${b2.map(secs).join(', ')}]  ratio b'/a ${(median(b2) / median(a)).toFixed(2)}`);
}

try {
  await main();
} finally {
  for (const name of [...rawNames, ...driverIds]) {
    await virsh('destroy', name).catch(() => undefined);
    await virsh('undefine', name).catch(() => undefined);
  }
  rmSync(dir, { recursive: true, force: true });
}

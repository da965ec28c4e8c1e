// The nodes of `zone cluster up --vm`: each a VM booted from the node image (through
// libvirt, KVM where it works, TCG otherwise), on a bridge the CLI makes on the host with
// the cluster's static address plan (layout.ts: the host first, node i the (10+i)th). No
// libvirt network: those need dnsmasq, and the plan is static anyway. Each node gets its
// identity, trust policy, API address and NATS routes from its config disk; its files on
// the host (disk overlay, config disk, console log) live in DIR/nI.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { probeAccelerator } from '../../drivers/libvirt/accelerator.ts';
import { DATA_DIR_MODE } from '../../appliance/config.ts';
import { loadOrCreateIdentity, BOX_KEY_FILE, SIGNING_KEY_FILE } from '../../appliance/identity.ts';
import { runCommand } from '../../lib/exec.ts';
import { buildNodeImage, bootCommandLine, type NodeImage } from '../node-image/build.ts';
import { writeConfigDisk } from '../node-image/config-disk.ts';
import type { ClusterLayout } from './layout.ts';
import { nodeDomainXml, nodeMac } from './vm-domain.ts';

const VIRSH = ['virsh', '-c', 'qemu:///system', '-q'];
/** What one node VM gets: the node keeps the larger of 10 % and 2 GiB for itself (admission), workloads get the rest. */
const VM_MEMORY_MIB = 3072;
const VM_VCPUS = 2;

/** A node VM that did not come up, with what its console said. */
export class VmNodeError extends Error {
  override name = 'VmNodeError';
}

export interface VmFiles {
  domain: string;
  disk: string;
  configDisk: string;
  console: string;
}

/** The host's end of the cluster's network: a bridge named as the namespace cluster's host link. */
export async function makeBridge(layout: ClusterLayout): Promise<void> {
  await runCommand(['ip', 'link', 'add', layout.hostLink, 'type', 'bridge']);
  await runCommand(['ip', 'addr', 'add', `${layout.hostAddress}/${layout.prefixLength}`, 'dev', layout.hostLink]);
  await runCommand(['ip', 'link', 'set', layout.hostLink, 'up']);
  // br_netfilter hands bridged frames to iptables, whose FORWARD policy Docker sets to DROP:
  // node-to-node traffic on the bridge is let through (removed again by down).
  await runCommand(['iptables', '-I', 'FORWARD', '-i', layout.hostLink, '-o', layout.hostLink, '-j', 'ACCEPT']);
}

export async function removeBridge(hostLink: string): Promise<void> {
  await runCommand(['iptables', '-D', 'FORWARD', '-i', hostLink, '-o', hostLink, '-j', 'ACCEPT']).catch(() => undefined);
  await runCommand(['ip', 'link', 'del', hostLink]).catch(() => undefined);
}

export interface VmNodePlan {
  domain: string;
  address: string;
  /** The node's files on the host. */
  dir: string;
  /** The node's data directory as it starts: config.json, trust policy, route credentials (names relative to it). */
  data: Record<string, string | Buffer>;
}

export interface VmStart {
  image: NodeImage;
  accelerator: Awaited<ReturnType<typeof probeAccelerator>>;
}

/**
 * qemu runs as its own user: it must be able to walk down to the node's files (libvirt
 * hands it the files themselves, not the folders above them).
 */
export async function checkWalkable(dir: string): Promise<void> {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const mode = await stat(d).then((s) => s.mode, () => null);
    if (mode !== null && (mode & 0o001) === 0) throw new VmNodeError(`${d} is not searchable by others (mode ${(mode & 0o777).toString(8)}): qemu, as its own user, could not reach the node VMs' disks below it (chmod o+x it, or give --dir elsewhere)`);
    if (d === dirname(d)) return;
  }
}

/** The image (built or cached) and the accelerator, once per `up`. */
export async function prepareVms(log: (line: string) => void): Promise<VmStart> {
  const image = await buildNodeImage({ log });
  const accelerator = await probeAccelerator({ kernel: image.kernel });
  return { image, accelerator };
}

/** The node's identity, made on the host so that its id and box key are known before it boots. */
export async function vmIdentity(dir: string): Promise<{ id: string; boxKey: string; files: Record<string, Buffer> }> {
  await mkdir(dir, { recursive: true, mode: DATA_DIR_MODE });
  const identity = loadOrCreateIdentity(dir);
  return {
    id: identity.id, boxKey: identity.box.publicKey,
    files: { [SIGNING_KEY_FILE]: await readFile(join(dir, SIGNING_KEY_FILE)), [BOX_KEY_FILE]: await readFile(join(dir, BOX_KEY_FILE)) },
  };
}

/** Makes the node's disk overlay and config disk, and starts its domain. */
export async function startVmNode(layout: ClusterLayout, start: VmStart, plan: VmNodePlan): Promise<VmFiles> {
  const files: VmFiles = { domain: plan.domain, disk: join(plan.dir, 'disk.qcow2'), configDisk: join(plan.dir, 'config.img'), console: join(plan.dir, 'console.log') };
  await runCommand(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', start.image.disk, files.disk]);
  await writeConfigDisk(files.configDisk, {
    network: { address: `${plan.address}/${layout.prefixLength}`, gateway: layout.hostAddress, hostname: plan.domain },
    data: plan.data,
  });
  const xml = nodeDomainXml({
    name: plan.domain, accelerator: start.accelerator.accelerator, vcpus: VM_VCPUS, memoryMiB: VM_MEMORY_MIB,
    kernel: start.image.kernel, initrd: start.image.initrd, cmdline: bootCommandLine(),
    disk: files.disk, configDisk: files.configDisk, bridge: layout.hostLink, mac: nodeMac(plan.address), consoleLog: files.console,
  });
  const xmlFile = join(plan.dir, 'domain.xml');
  await writeFile(xmlFile, xml, { mode: 0o600 });
  await runCommand([...VIRSH, 'create', xmlFile], { timeoutMs: 120_000 });
  return files;
}

/** Whether libvirt runs the domain. */
export async function domainRuns(domain: string): Promise<boolean> {
  const state = await runCommand([...VIRSH, 'domstate', domain]).catch(() => '');
  return state.trim() === 'running';
}

/** Stops the node's domain at once (its disk goes with the cluster's folder). */
export async function destroyVm(domain: string): Promise<void> {
  if (await runCommand([...VIRSH, 'domstate', domain]).then(() => true, () => false)) {
    await runCommand([...VIRSH, 'destroy', domain], { timeoutMs: 60_000 }).catch(() => undefined);
  }
}

/** The last lines of a node's serial console. */
export async function consoleTail(file: string, lines = 8): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').slice(-lines).join('\n  ');
}

/** Waits until the node's API answers; fails when its domain stops or at the timeout, with its console's last lines. */
export async function untilVmAnswering(api: string, files: VmFiles, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answered = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(2000) }).then(() => true, () => false);
    if (answered) return;
    const runs = await domainRuns(files.domain);
    if (!runs || Date.now() > deadline) {
      const why = runs ? `did not answer on ${api} within ${timeoutMs / 1000}s` : 'stopped';
      throw new VmNodeError(`node VM ${files.domain} ${why}; last lines of its console ${files.console}:\n  ${await consoleTail(files.console)}`);
    }
    await delay(1000);
  }
}

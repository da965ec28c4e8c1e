// Pure: which workload specs a VM can honour, and how its image boots.
import { createHash } from 'node:crypto';
import type { VmLink, WorkloadSpec } from '../contract.ts';
import { WorkloadSpecError } from '../contract.ts';

/** Domain names we create (and the only ones we build paths from). */
export const DOMAIN_ID = /^[a-z0-9][a-z0-9-]{0,199}$/;

export const KERNEL_CMDLINE = 'console=ttyS0 panic=-1 quiet';

/**
 * An absolute path is a disk image (qcow2/raw) on the node; anything else is a container
 * image, or a pinned VM disk of the grid (`name@sha256:...`: what the grid stored it as says which).
 */
export function imageKindOf(image: string): 'disk' | 'container' {
  return image.startsWith('/') ? 'disk' : 'container';
}

/**
 * The name of the volume that holds a disk-image VM's root disk (a qcow2 overlay over the
 * image, made and kept by the volume provider like any block volume); null for a VM
 * booted from a container image (its root is an initrd) or for a container. The `.` keeps
 * it apart from every name a blueprint can give a volume; the image's digest in it makes
 * another image another root disk (the old one is released, kept for the retention
 * period, and comes back if the image does).
 */
/** The guest's name of its `index`th virtio disk (0: vda): the order the domain lists them in. */
export function virtioDiskName(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= 26) throw new RangeError(`at most 26 virtio disks, got index ${index}`);
  return `vd${String.fromCharCode(97 + index)}`;
}

export function rootVolumeOf(w: { name: string; kind: string; image: string }): string | null {
  if (w.kind !== 'vm' || imageKindOf(w.image) !== 'disk') return null;
  return `${w.name}.root-${createHash('sha256').update(w.image).digest('hex').slice(0, 16)}`;
}

/** The host path of a disk-image VM's root disk, from the paths the engine gave (the volume is ensured first). */
export function vmRootDisk(spec: WorkloadSpec): string {
  const name = rootVolumeOf(spec.definition);
  const path = name === null ? undefined : spec.volumePaths?.[name];
  if (!name || !path) {
    throw new WorkloadSpecError(spec.workload, 'image', `the root disk of disk image ${spec.definition.image} is volume ${name ?? '(none)'}, which has no disk on this node (the engine makes it, through the node's volume provider, before the VM)`);
  }
  return path;
}

export function vcpusOf(spec: WorkloadSpec): number {
  const d = spec.definition;
  return d.vcpus >= 1 ? Math.floor(d.vcpus) : Math.max(1, Math.ceil(d.cpus));
}

// Container-only settings a VM cannot honour: refused rather than silently ignored.
const CONTAINER_ONLY: [keyof WorkloadSpec['definition'], (spec: WorkloadSpec['definition']) => boolean, string][] = [
  ['ports', (d) => d.ports.length > 0, 'published ports need the VM network, which is not attached yet'],
  ['mounts', (d) => d.mounts.length > 0, 'host mounts are not passed to VMs'],
  ['devices', (d) => d.devices.length > 0, 'host devices are not passed to VMs'],
  ['capabilities', (d) => d.capabilities.length > 0, 'capabilities apply to containers only'],
  ['privileged', (d) => d.privileged, 'privileged applies to containers only'],
  ['hostNetwork', (d) => d.hostNetwork, 'hostNetwork applies to containers only'],
  ['health', (d) => d.health !== null, 'health commands need a guest agent, which VMs do not have yet'],
];

/**
 * The VM's interfaces, one per network it joins, in the blueprint's order: the links
 * the network driver made for it, which the engine hands over in the spec.
 */
export function vmNics(spec: WorkloadSpec): VmLink[] {
  return spec.definition.networks.map((n, i) => {
    if (!n.subnet) throw new WorkloadSpecError(spec.workload, `networks/${i}/name`, `network ${n.name} is not declared in the blueprint`);
    const link = spec.vmLinks?.find((l) => l.network === n.name);
    // Not the spec's fault: retried with the backoff once the network driver made it.
    if (!link) throw new Error(`workload ${spec.workload}: networks/${i}/name: network ${n.name} has no link to this VM on this node yet (the network driver makes it before the VM starts)`);
    return link;
  });
}

/** Throws WorkloadSpecError naming the field when the spec cannot run as a VM. */
export function checkVmSpec(spec: WorkloadSpec): void {
  const d = spec.definition;
  const fail = (field: string, reason: string): never => { throw new WorkloadSpecError(spec.workload, field, reason); };
  if (d.kind !== 'vm') fail('kind', `the libvirt driver runs kind vm, not ${d.kind}`);
  if (!DOMAIN_ID.test(spec.id)) fail('name', `engine id ${JSON.stringify(spec.id)} is not a valid domain name ([a-z0-9-])`);
  if (!(d.memoryBytes >= 32 * 1024 * 1024)) fail('resources.memory', 'a VM needs at least 32Mi');
  for (const [field, present, reason] of CONTAINER_ONLY) if (present(d)) fail(field, reason);
  if (imageKindOf(d.image) === 'disk') checkDiskBoot(spec);
}

/** Throws WorkloadSpecError naming the field the spec sets that a disk, which boots its own init, cannot honour. */
export function checkDiskBoot(spec: WorkloadSpec): void {
  const d = spec.definition;
  const fail = (field: string, reason = `${field} applies to container images`): never => {
    throw new WorkloadSpecError(spec.workload, field, `a disk image boots its own init; ${reason}`);
  };
  if (d.command) fail('command');
  if (Object.keys(d.env).length > 0) fail('env');
  if (d.workdir) fail('workdir');
  if (d.stdin || d.stdout) fail('pipes', 'it does not join pipes; a VM booted from a container image does');
}

/** The VM's block volumes in the blueprint's order, from the paths the engine gave (each ensured before). */
export function vmVolumes(spec: WorkloadSpec): { path: string }[] {
  return (spec.definition.disks ?? []).map((d, i) => {
    const path = spec.volumePaths?.[d.volume];
    if (!path) throw new WorkloadSpecError(spec.workload, `disks/${i}/volume`, `volume ${d.volume} has no disk image on this node (the engine ensures a workload's volumes before it asks the driver)`);
    return { path };
  });
}

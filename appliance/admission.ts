// Admission: does a verified blueprint fit this node and its policy? Pure arithmetic
// over numbers measured elsewhere (appliance/host.ts), so every case is a unit test.
import { posix } from 'node:path';
import { normalizeWorkload } from '../blueprints/normalize.ts';
import { parseSize } from '../blueprints/units.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { imageKindOf, rootVolumeOf } from '../drivers/libvirt/spec.ts';
import { ZoneError } from '../lib/errors.ts';
import type { Capacity } from './types.ts';

/** What the node lets blueprints use beyond the safe defaults (all refused by default). */
export interface NodePolicy {
  privileged: boolean;
  hostNetwork: boolean;
  /** Host paths (and everything below them) workloads may mount. */
  hostMounts: string[];
  /** Device paths workloads may be given. */
  devices: string[];
  /** Linux capabilities workloads may add. */
  capabilities: string[];
  /** Host path prefixes VMs may boot disk images from (none: VMs boot only images the node holds). */
  vmImages: string[];
}

/** How much of each resource may be promised, as a multiple of what the node has. */
export interface Overcommit {
  cpu: number;
  memory: number;
  disk: number;
}

export const GIB = 2 ** 30;
const ZERO: Capacity = { cpus: 0, memoryBytes: 0, diskBytes: 0 };

const add = (a: Capacity, b: Capacity): Capacity => ({ cpus: a.cpus + b.cpus, memoryBytes: a.memoryBytes + b.memoryBytes, diskBytes: a.diskBytes + b.diskBytes });

/** What the node keeps for itself: the larger of 10 % and 2 GiB of memory (never more than it has). */
export function nodeReserve(total: Capacity): Capacity {
  return { cpus: 0, memoryBytes: Math.min(total.memoryBytes, Math.max(Math.round(total.memoryBytes * 0.1), 2 * GIB)), diskBytes: 0 };
}

/** What a blueprint's workloads and volumes reserve (nothing for a tombstone). */
export function demandOf(bp: Blueprint): Capacity {
  if (bp.delete) return ZERO;
  const volumes = (bp.volumes ?? []).reduce((sum, v) => sum + parseSize(v.size), 0);
  return (bp.workloads ?? []).map((w) => normalizeWorkload(w)).reduce<Capacity>(
    (sum, w) => add(sum, { cpus: w.cpus, memoryBytes: w.memoryBytes, diskBytes: w.diskBytes }), { ...ZERO, diskBytes: volumes });
}

/** A volume on the node's disk (as the volume provider last listed it), whoever declares it now. */
export interface HeldVolume {
  owner: string;
  blueprint: string;
  volume: string;
  kind: 'filesystem' | 'block';
  sizeBytes: number;
}

const declares = (bp: Blueprint, v: HeldVolume) => !bp.delete && bp.owner === v.owner && bp.name === v.blueprint && (bp.volumes ?? []).some((d) => d.name === v.volume);

/**
 * The volumes of `held` that none of `blueprints` declares: released ones kept for their
 * retention (and ones a newer version or tombstone is about to release). Their data still
 * takes the disk, so admission counts them until they are deleted.
 */
export const retainedVolumes = (held: readonly HeldVolume[], blueprints: readonly Blueprint[]): HeldVolume[] =>
  held.filter((v) => !blueprints.some((bp) => declares(bp, v)));

/**
 * Refuses a version that shrinks a volume the stored version declares, one released and
 * kept for its retention, or the root disk (`resources.disk`) of a VM that boots the same
 * disk image (its root disk is a volume): ext4 and qcow2 do not shrink safely under data,
 * so a smaller size is a mistake to say at once.
 */
export function checkVolumeSizes(bp: Blueprint, stored: Blueprint | null, held: readonly HeldVolume[] = []): void {
  if (bp.delete) return;
  (bp.volumes ?? []).forEach((v, i) => {
    const declared = stored?.volumes?.find((o) => o.name === v.name);
    const kept = held.find((h) => h.owner === bp.owner && h.blueprint === bp.name && h.volume === v.name);
    const before = declared
      ? { size: parseSize(declared.size), shown: declared.size, kind: declared.kind ?? 'filesystem', where: `of version ${stored?.version}` }
      : kept && { size: kept.sizeBytes, shown: formatBytes(kept.sizeBytes), kind: kept.kind, where: 'of the volume kept from an earlier version' };
    if (!before) return;
    if (parseSize(v.size) < before.size) {
      throw new ZoneError('INVALID', `volume ${v.name}: size ${v.size} is smaller than ${before.shown} ${before.where}; a volume grows but never shrinks (declare a new volume to start smaller)`, `/volumes/${i}/size`);
    }
    if (before.kind !== (v.kind ?? 'filesystem')) {
      throw new ZoneError('INVALID', `volume ${v.name}: kind ${v.kind ?? 'filesystem'} differs from ${before.kind} ${before.where}; a volume keeps its kind (declare a new volume)`, `/volumes/${i}/kind`);
    }
  });
  if (!stored) return;
  (bp.workloads ?? []).forEach((w, i) => {
    const before = stored.workloads?.find((o) => o.name === w.name);
    if (!before || rootVolumeOf(w) === null || rootVolumeOf(w) !== rootVolumeOf(before)) return;
    const disk = (x: typeof w) => (x.resources?.disk ? parseSize(x.resources.disk) : 0);
    if (disk(w) < disk(before)) {
      throw new ZoneError('INVALID', `workload ${w.name}: resources.disk ${w.resources?.disk ?? '(none)'} is smaller than ${before.resources?.disk} of version ${stored.version}; a VM's root disk is a volume that grows but never shrinks (another image starts a new one)`, `/workloads/${i}/resources/disk`);
    }
  });
}

export interface CapacityView {
  total: Capacity;
  /** The node's own reserve plus what admitted blueprints reserve. */
  reserved: Capacity;
  /** What may still be promised (total × overcommit − reserved); may be negative after a config change. */
  free: Capacity;
  nodeReserve: Capacity;
  blueprints: number;
  /** Disk of volumes no admitted blueprint declares (released, kept for their retention): part of `reserved`. */
  retainedBytes: number;
}

/** `held`: the volumes on the node's disk; those no admitted blueprint declares count too. */
export function capacityView(total: Capacity, overcommit: Overcommit, admitted: readonly Blueprint[], held: readonly HeldVolume[] = []): CapacityView {
  const keep = nodeReserve(total);
  const live = admitted.filter((bp) => !bp.delete);
  const retainedBytes = retainedVolumes(held, live).reduce((n, v) => n + v.sizeBytes, 0);
  const reserved = live.map(demandOf).reduce(add, { ...keep, diskBytes: keep.diskBytes + retainedBytes });
  return {
    total,
    reserved,
    free: {
      cpus: total.cpus * overcommit.cpu - reserved.cpus,
      memoryBytes: Math.floor(total.memoryBytes * overcommit.memory) - reserved.memoryBytes,
      diskBytes: Math.floor(total.diskBytes * overcommit.disk) - reserved.diskBytes,
    },
    nodeReserve: keep,
    blueprints: live.length,
    retainedBytes,
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

const RESOURCES = [
  { key: 'cpus', name: 'cpus', format: (n: number) => `${Math.round(n * 1000) / 1000}` },
  { key: 'memoryBytes', name: 'memory', format: formatBytes },
  { key: 'diskBytes', name: 'disk', format: formatBytes },
] as const;

/** Refuses with CAPACITY and the numbers when `bp` does not fit in `view` (which must not include `bp`'s older version). */
export function checkCapacity(bp: Blueprint, view: CapacityView): void {
  const need = demandOf(bp);
  for (const r of RESOURCES) {
    if (need[r.key] > 0 && need[r.key] > view.free[r.key]) {
      const f = r.format;
      throw new ZoneError('CAPACITY',
        `blueprint ${bp.name} needs ${r.name} ${f(need[r.key])}, the node has ${f(Math.max(0, view.free[r.key]))} free ` +
        `(total ${f(view.total[r.key])}, kept for the node ${f(view.nodeReserve[r.key])}, ` +
        `reserved by ${view.blueprints} other blueprint(s) ${f(view.reserved[r.key] - view.nodeReserve[r.key] - (r.key === 'diskBytes' ? view.retainedBytes : 0))}` +
        `${r.key === 'diskBytes' && view.retainedBytes > 0 ? `, kept by released volumes until their retention ends ${f(view.retainedBytes)}` : ''})`,
        '/workloads',
        { resource: r.name, requested: need[r.key], free: Math.max(0, view.free[r.key]), total: view.total[r.key], reserved: view.reserved[r.key] });
    }
  }
}

interface PortUse { port: string; field: string; blueprint: string }

/** Host ports a blueprint binds: published ports and WireGuard listen ports, as `tcp/80`, `udp/51820`. */
export function hostPortsOf(bp: Blueprint): PortUse[] {
  if (bp.delete) return [];
  const uses: PortUse[] = [];
  (bp.workloads ?? []).forEach((w, i) => (w.ports ?? []).forEach((p, j) =>
    uses.push({ port: `${p.protocol ?? 'tcp'}/${p.host}`, field: `/workloads/${i}/ports/${j}/host`, blueprint: bp.name })));
  (bp.networks ?? []).forEach((n, i) => {
    if (n.wireguard) uses.push({ port: `udp/${n.wireguard.listenPort}`, field: `/networks/${i}/wireguard/listenPort`, blueprint: bp.name });
  });
  return uses;
}

/** Refuses a host port used twice: INVALID inside `bp`, CAPACITY when another admitted blueprint has it. */
export function checkPorts(bp: Blueprint, others: readonly Blueprint[]): void {
  const taken = new Map<string, PortUse & { own: boolean }>();
  for (const other of others) for (const use of hostPortsOf(other)) taken.set(use.port, { ...use, own: false });
  for (const use of hostPortsOf(bp)) {
    const first = taken.get(use.port);
    if (first) {
      const where = first.own ? `already at ${first.field} of this blueprint` : `already used by blueprint ${first.blueprint} (${first.field})`;
      // Inside one blueprint it is a mistake; against another blueprint the node is full.
      throw new ZoneError(first.own ? 'INVALID' : 'CAPACITY', `host port ${use.port} is ${where}`, use.field, { port: use.port });
    }
    taken.set(use.port, { ...use, own: true });
  }
}

/** `path` is `prefix` or below it. */
export const under = (path: string, prefix: string): boolean => {
  const p = posix.normalize(path);
  const root = posix.normalize(prefix).replace(/\/$/, '');
  return p === root || p.startsWith(`${root}/`) || root === '';
};

/** Refuses with POLICY (naming the field and what would be allowed) what the node policy does not allow. */
export function checkPolicy(bp: Blueprint, policy: NodePolicy): void {
  const refuse = (field: string, what: string, hint: string): never => {
    throw new ZoneError('POLICY', `${what} is not allowed by this node's policy (${hint})`, field);
  };
  (bp.workloads ?? []).forEach((w, i) => {
    const at = `/workloads/${i}`;
    if (w.privileged && !policy.privileged) refuse(`${at}/privileged`, `workload ${w.name}: privileged mode`, 'policy.privileged is false');
    if (w.hostNetwork && !policy.hostNetwork) refuse(`${at}/hostNetwork`, `workload ${w.name}: the host network`, 'policy.hostNetwork is false');
    (w.mounts ?? []).forEach((m, j) => {
      if (m.source !== undefined && !policy.hostMounts.some((prefix) => under(m.source ?? '', prefix))) {
        refuse(`${at}/mounts/${j}/source`, `workload ${w.name}: host mount ${m.source}`, `allowed: ${policy.hostMounts.join(', ') || 'none'}`);
      }
    });
    (w.devices ?? []).forEach((d, j) => {
      if (!policy.devices.includes(d)) refuse(`${at}/devices/${j}`, `workload ${w.name}: device ${d}`, `allowed: ${policy.devices.join(', ') || 'none'}`);
    });
    if (w.kind === 'vm' && imageKindOf(w.image) === 'disk' && !policy.vmImages.some((prefix) => under(w.image, prefix))) {
      refuse(`${at}/image`, `workload ${w.name}: the host path ${w.image} as a VM image`,
        `a VM boots an image the node holds (a local container image); disk images from: ${policy.vmImages.join(', ') || 'none (policy.vmImages)'}`);
    }
    (w.capabilities ?? []).forEach((c, j) => {
      if (!policy.capabilities.includes(c)) refuse(`${at}/capabilities/${j}`, `workload ${w.name}: capability ${c}`, `allowed: ${policy.capabilities.join(', ') || 'none'}`);
    });
  });
}

/**
 * Admits `bp` (policy, ports, capacity) against the other admitted blueprints (its own
 * stored older version, which it replaces, is left out) and the volumes on the disk
 * (`held`; those `bp` declares are in its own demand). Tombstones are always admitted.
 */
export function admitBlueprint(bp: Blueprint, ctx: { total: Capacity; overcommit: Overcommit; policy: NodePolicy; admitted: readonly Blueprint[]; held?: readonly HeldVolume[] }): void {
  if (bp.delete) return;
  const held = ctx.held ?? [];
  const others = ctx.admitted.filter((o) => !(o.owner === bp.owner && o.name === bp.name) && !o.delete);
  checkVolumeSizes(bp, ctx.admitted.find((o) => o.owner === bp.owner && o.name === bp.name) ?? null, held);
  checkPolicy(bp, ctx.policy);
  checkPorts(bp, others);
  checkCapacity(bp, capacityView(ctx.total, ctx.overcommit, others, held.filter((v) => !declares(bp, v))));
}

// The pure half of volumes: from the live blueprints' volumes and what the provider has,
// what to create, grow, keep, schedule for deletion and delete. No I/O, no clock of its
// own (time is an argument), so every case is a row of a table. A volume a blueprint
// no longer lists (a later version dropped it, a tombstone, an expiry) is released and
// kept `retentionMs`; listed again within it, the same data returns; after it, deleted,
// but never while a workload of its blueprint that may still mount it is being removed.
// plan() takes these steps as the volume resource's of its graph (volume -> workload).
// A disk-image VM's root disk is one more block volume of its blueprint, named after the
// workload and its image (rootVolumeOf): a new version that changes the VM otherwise
// keeps it; a version without the VM (or with another image) releases it like any other.
import { parseSize } from '../../blueprints/units.ts';
import type { ObservedVolume, VolumeIdentity, VolumeSpec, WorkloadSpec } from '../../drivers/contract.ts';
import { volumeId } from '../../drivers/names.ts';
import { rootVolumeOf } from '../../drivers/libvirt/spec.ts';
import type { StoredBlueprint } from '../store.ts';

export type VolumeStep =
  /** Not there: made (and mounted). */
  | { kind: 'volume-create'; spec: VolumeSpec; reason: string }
  /** Its size grew in the blueprint: grown in place, data kept. */
  | { kind: 'volume-grow'; spec: VolumeSpec; reason: string }
  /** Released, and listed again within its retention: its data returns. */
  | { kind: 'volume-reclaim'; spec: VolumeSpec; reason: string }
  /** There but not mounted (after a reboot): mounted again. */
  | { kind: 'volume-mount'; spec: VolumeSpec; reason: string }
  /** Asked to shrink or change kind: nothing is done, and the reason is told. */
  | { kind: 'volume-refuse'; spec: VolumeSpec; reason: string }
  /** No longer listed: deletion scheduled at `until`. */
  | { kind: 'volume-release'; id: string; identity: VolumeIdentity; until: Date; reason: string }
  /** Released and still within its retention (or a workload that may mount it is still going). */
  | { kind: 'volume-keep'; id: string; identity: VolumeIdentity; until: Date; reason: string }
  /** Released and its retention is over: its data is deleted. */
  | { kind: 'volume-delete'; id: string; identity: VolumeIdentity; reason: string };

/** Steps that make the provider ensure the volume. */
export const ENSURING: ReadonlySet<VolumeStep['kind']> = new Set(['volume-create', 'volume-grow', 'volume-reclaim', 'volume-mount']);

/** Every volume of the live blueprints, their VMs' root disks included (filter tombstones and expired ones first). */
export function desiredVolumes(node: string, live: readonly StoredBlueprint[]): VolumeSpec[] {
  return live.filter((b) => !b.deleted).flatMap((b) => {
    const spec = (volume: string) => ({ node, owner: b.owner, blueprint: b.name, volume, id: volumeId(node, b.owner, b.name, volume) });
    const declared = (b.document.volumes ?? []).map((v): VolumeSpec => ({ ...spec(v.name), kind: v.kind ?? 'filesystem', sizeBytes: parseSize(v.size) }));
    const roots = (b.document.workloads ?? []).flatMap((w): VolumeSpec[] => {
      const name = rootVolumeOf(w);
      return name ? [{ ...spec(name), kind: 'block', sizeBytes: w.resources?.disk ? parseSize(w.resources.disk) : 0, base: w.image }] : [];
    });
    return [...declared, ...roots];
  });
}

/** The names of the volumes a workload uses (mounts, disks and a VM's root disk). */
export const volumesOf = (spec: WorkloadSpec): string[] => [
  ...(spec.definition.volumeMounts ?? []).map((m) => m.volume),
  ...(spec.definition.disks ?? []).map((d) => d.volume),
  ...[rootVolumeOf(spec.definition)].filter((n): n is string => n !== null),
];

/** `owner/blueprint`: the scope of a volume, and of the workloads that may mount it. */
export const blueprintKey = (w: { owner: string; blueprint: string }) => JSON.stringify([w.owner, w.blueprint]);

export interface VolumePlanOptions {
  /** Blueprints (blueprintKey) with a workload on its way out that may still mount their volumes: no deletion yet. */
  holders?: ReadonlySet<string>;
}

const identityOf = (v: ObservedVolume): VolumeIdentity => ({ node: v.node, owner: v.owner, blueprint: v.blueprint, volume: v.volume });

export function planVolumes(
  desired: readonly VolumeSpec[],
  observed: readonly ObservedVolume[],
  now: Date,
  retentionMs: number,
  options: VolumePlanOptions = {},
): VolumeStep[] {
  const have = new Map(observed.map((v) => [v.id, v]));
  const steps: VolumeStep[] = [];
  for (const spec of desired) {
    const o = have.get(spec.id);
    if (!o) steps.push({ kind: 'volume-create', spec, reason: 'new volume' });
    else if (o.kind !== spec.kind) steps.push({ kind: 'volume-refuse', spec, reason: `it is a ${o.kind} volume and keeps its kind; declare a new volume for ${spec.kind}` });
    // A root disk's size is a floor (at least its image's): a smaller one asks for nothing.
    else if (spec.sizeBytes < o.sizeBytes && !spec.base) steps.push({ kind: 'volume-refuse', spec, reason: `${spec.sizeBytes} bytes is smaller than its ${o.sizeBytes}: a volume grows but never shrinks` });
    else if (o.releasedAt !== null) steps.push({ kind: 'volume-reclaim', spec, reason: `listed again within its retention (released at ${o.releasedAt}): its data returns` });
    else if (spec.sizeBytes > o.sizeBytes) steps.push({ kind: 'volume-grow', spec, reason: `grows from ${o.sizeBytes} to ${spec.sizeBytes} bytes` });
    else if (o.path === null) steps.push({ kind: 'volume-mount', spec, reason: 'not mounted' });
  }
  const wanted = new Set(desired.map((d) => d.id));
  for (const o of observed) {
    if (wanted.has(o.id)) continue;
    if (o.releasedAt === null) {
      steps.push({ kind: 'volume-release', id: o.id, identity: identityOf(o), until: new Date(now.getTime() + retentionMs), reason: `no longer listed by blueprint ${o.blueprint}: kept ${retentionMs} ms, then deleted` });
      continue;
    }
    const until = new Date(new Date(o.releasedAt).getTime() + retentionMs);
    if (now < until) steps.push({ kind: 'volume-keep', id: o.id, identity: identityOf(o), until, reason: `released at ${o.releasedAt}: kept until ${until.toISOString()}` });
    else if (options.holders?.has(blueprintKey(o))) steps.push({ kind: 'volume-keep', id: o.id, identity: identityOf(o), until, reason: 'retention over, but a workload of its blueprint that may mount it is still being removed' });
    else steps.push({ kind: 'volume-delete', id: o.id, identity: identityOf(o), reason: `released at ${o.releasedAt}; its retention ended at ${until.toISOString()}` });
  }
  return steps;
}

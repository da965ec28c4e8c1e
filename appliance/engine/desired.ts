// The desired state: every workload of every live stored blueprint, as the specs the
// drivers take (engine-side id, spec hash, normalised definition), its networks as the
// network driver takes them, and its pipe ends that run on this node. A blueprint is live
// until its tombstone or its `expires`: an expired blueprint is removed as its
// tombstone would be (the contract ended), until a later version follows.
import { normalizeWorkload, specHash } from '../../blueprints/normalize.ts';
import { parseDateTime } from '../../blueprints/units.ts';
import { localPipeEnds, pipedStreams } from '../../blueprints/pipes.ts';
import type { NetworkSpec, PipeEnd, WorkloadSpec } from '../../drivers/contract.ts';
import { networkId, workloadId } from '../../drivers/names.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import type { StoredBlueprint } from '../store.ts';

// The engine and its tests name workloads through here; the drivers share the scheme.

/** When the blueprint's contract ends (its `expires`); null when it has none. */
export function expiryOf(b: StoredBlueprint): Date | null {
  return b.document.expires === undefined ? null : parseDateTime(b.document.expires);
}

/** Whether the stored blueprint still wants its workloads at `now`: not a tombstone, not expired. */
export function isLive(b: StoredBlueprint, now: Date): boolean {
  const expiry = expiryOf(b);
  return !b.deleted && (expiry === null || expiry.getTime() > now.getTime());
}

/** Every workload of the blueprints that are not tombstones (filter expired ones with isLive first). */
export function desiredWorkloads(node: string, blueprints: readonly StoredBlueprint[]): WorkloadSpec[] {
  return blueprints.filter((b) => !b.deleted).flatMap((b) => (b.document.workloads ?? []).map((w) => {
    const definition = { ...normalizeWorkload(w, b.document.networks), ...pipedStreams(node, { name: b.name, owner: b.owner, pipes: b.document.pipes }, w.name) };
    return {
      node, owner: b.owner, blueprint: b.name, workload: w.name,
      id: workloadId(node, b.owner, b.name, w.name),
      specHash: specHash(definition),
      definition,
    };
  }));
}

/** Each network the blueprint declares, as the network driver takes it. */
export function networkSpecsOf(bp: Blueprint, node: string): NetworkSpec[] {
  return (bp.networks ?? []).map((definition) => {
    const identity = { node, owner: bp.owner, blueprint: bp.name, network: definition.name };
    return { ...identity, id: networkId(identity), definition };
  });
}

/** What one stored blueprint wants on this node (the engine keeps it per stored version). */
export interface DesiredOfBlueprint {
  workloads: WorkloadSpec[];
  networks: NetworkSpec[];
  pipeEnds: PipeEnd[];
}

export function desiredOf(node: string, b: StoredBlueprint): DesiredOfBlueprint {
  if (b.deleted) return { workloads: [], networks: [], pipeEnds: [] };
  const kinds = new Map((b.document.workloads ?? []).map((w) => [w.name, w.kind]));
  const pipeEnds = localPipeEnds(node, { name: b.name, owner: b.owner, pipes: b.document.pipes }).flatMap((end) => {
    const kind = kinds.get(end.workload);
    return kind ? [{ ...end, workloadId: workloadId(node, b.owner, b.name, end.workload), kind }] : [];
  });
  return { workloads: desiredWorkloads(node, [b]), networks: networkSpecsOf(b.document, node), pipeEnds };
}

// The desired state: every workload of every live stored blueprint, as the specs the
// drivers take (engine-side id, spec hash, normalised definition).
import { createHash } from 'node:crypto';
import { normalizeWorkload, specHash } from '../../blueprints/normalize.ts';
import type { WorkloadSpec } from '../../drivers/contract.ts';
import { pipedStreams } from '../pseudokernel/pipes.ts';
import type { StoredBlueprint } from '../store.ts';

/** `zone-<blueprint>-<workload>-<8 hex of sha256(node|owner|blueprint|workload)>`: stable and unique per node. */
export function workloadId(node: string, owner: string, blueprint: string, workload: string): string {
  const digest = createHash('sha256').update(`${node}|${owner}|${blueprint}|${workload}`).digest('hex');
  return `zone-${blueprint}-${workload}-${digest.slice(0, 8)}`;
}

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

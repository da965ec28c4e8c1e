// The desired state: every workload of every live stored blueprint, as the specs the
// drivers take (engine-side id, spec hash, normalised definition).
import { normalizeWorkload, specHash } from '../../blueprints/normalize.ts';
import type { WorkloadSpec } from '../../drivers/contract.ts';
import { workloadId } from '../../drivers/names.ts';
import { pipedStreams } from '../pseudokernel/pipes.ts';
import type { StoredBlueprint } from '../store.ts';

// The engine and its tests name workloads through here; the drivers share the scheme.
export { workloadId };

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

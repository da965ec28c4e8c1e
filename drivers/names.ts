// Engine-side names of workloads and networks, shared by the drivers and the engine: a
// container's or a domain's name (and a network's id) carries 128 bits of a hash of its whole identity, so two
// owners (or nodes sharing a machine) never want the same name, and a driver can tell
// from a name and the identity recorded on the thing (labels, metadata) whether it is
// the one it wants. Names of appliances before this scheme (32 bits) are recognised
// so that an upgrade replaces them instead of leaving them behind.
import { createHash } from 'node:crypto';
import { WorkloadSpecError, type NetworkIdentity, type WorkloadIdentity, type WorkloadSpec } from './contract.ts';

/** Hex digits of a hash in a name: 32 = 128 bits. */
export const NAME_HASH_HEX = 32;

/**
 * sha256 of a kind tag and the parts in JSON (unambiguous whatever the parts hold), as
 * hex; the tag keeps a workload's and a network's digests of the same parts apart.
 */
export function identityDigest(kind: string, parts: readonly string[]): string {
  return createHash('sha256').update(`zone-name-v2\n${kind}\n${JSON.stringify(parts)}`).digest('hex');
}

/** `zone-<blueprint>-<workload>-<32 hex of the identity's digest>`: at most 165 characters of [a-z0-9-]. */
export function workloadId(node: string, owner: string, blueprint: string, workload: string): string {
  return `zone-${blueprint}-${workload}-${identityDigest('workload', [node, owner, blueprint, workload]).slice(0, NAME_HASH_HEX)}`;
}

/**
 * A blueprint network's id (the network driver's namespace name): `zn-` + 32 hex of the
 * identity's digest. The node is part of it because the nodes of a local cluster share
 * one machine's namespace names.
 */
export function networkId(n: NetworkIdentity): string {
  return 'zn-' + identityDigest('network', [n.node, n.owner, n.blueprint, n.network]).slice(0, NAME_HASH_HEX);
}

/** The name appliances before 128-bit names gave the workload (8 hex of sha256(node|owner|blueprint|workload)). */
export function legacyWorkloadId(node: string, owner: string, blueprint: string, workload: string): string {
  const digest = createHash('sha256').update(`${node}|${owner}|${blueprint}|${workload}`).digest('hex');
  return `zone-${blueprint}-${workload}-${digest.slice(0, 8)}`;
}

/** The workload's name now, or the one an older appliance gave it: a thing under another name is not this workload. */
export function isNameOf(name: string, w: WorkloadIdentity): boolean {
  return name === workloadId(w.node, w.owner, w.blueprint, w.workload) || name === legacyWorkloadId(w.node, w.owner, w.blueprint, w.workload);
}

export const sameWorkload = (a: WorkloadIdentity, b: WorkloadIdentity): boolean =>
  a.node === b.node && a.owner === b.owner && a.blueprint === b.blueprint && a.workload === b.workload;

/** How an error names a workload: whose, and where. */
export function describeWorkload(w: WorkloadIdentity): string {
  return `workload ${w.blueprint}/${w.workload} of owner ${w.owner} on node ${w.node}`;
}

/**
 * The error for a name of `spec`'s that an engine thing of another identity holds
 * (`holder`: what its labels or metadata record; null when they record none of ours):
 * it names both, and the thing is neither adopted nor removed.
 */
export function nameClash(spec: WorkloadSpec, thing: string, holder: WorkloadIdentity | null): WorkloadSpecError {
  const other = holder ? `records ${describeWorkload(holder)}` : 'records no zone identity';
  return new WorkloadSpecError(spec.workload, 'name', `${spec.id} is wanted by ${describeWorkload(spec)}, but the ${thing} of that name ${other}; it is left alone`);
}

/** `zv-` and 32 hex of the volume identity's digest: a file name, never two owners' alike. */
export function volumeId(node: string, owner: string, blueprint: string, volume: string): string {
  return `zv-${identityDigest('volume', [node, owner, blueprint, volume]).slice(0, NAME_HASH_HEX)}`;
}

// One Docker bridge network per (node, owner): an owner's plain containers share it and
// reach each other; Docker's isolation between bridges keeps other owners' containers
// out. Made on the first container that needs it, removed with the owner's last one.
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import type { WorkloadSpec } from '../contract.ts';
import { WorkloadSpecError } from '../contract.ts';
import { statusCodeOf } from './errors.ts';
import { LABELS } from './spec.ts';

/** Every owner bridge's interface starts so; the node's firewall matches it (`zo-*`). */
export const OWNER_BRIDGE_PREFIX = 'zo-';
const NETWORK_PREFIX = 'zone-owner-';
/** The bridge interface has 15 characters at most (IFNAMSIZ): 12 hex after the prefix. */
const BRIDGE_HEX = 12;

/** sha256 over the full identity; the network's name carries 128 bits of it. */
function ownerHash(node: string, owner: string): string {
  return createHash('sha256').update(`zone-owner-network\n${node}\n${owner}`).digest('hex');
}

export function ownerNetworkName(node: string, owner: string): string {
  return NETWORK_PREFIX + ownerHash(node, owner).slice(0, 32);
}

/**
 * The network a container of `spec` joins, or null: one on the host network, or on zone
 * networks (an overlay interface only), joins none of Docker's.
 */
export function ownerNetworkOf(spec: WorkloadSpec): string | null {
  const d = spec.definition;
  if (d.kind !== 'container' || d.hostNetwork || d.networks.length > 0) return null;
  return ownerNetworkName(spec.node, spec.owner);
}

/**
 * The create request. The bridge is named by us (not Docker's `br-ID`) so the firewall
 * can match every owner bridge by prefix; a clash of its 48 bits makes Docker refuse the
 * create ("conflicts with network"), never share a bridge.
 */
export function ownerNetworkCreateOptions(node: string, owner: string): Docker.NetworkCreateOptions {
  return {
    Name: ownerNetworkName(node, owner),
    Driver: 'bridge',
    CheckDuplicate: true,
    Labels: { [LABELS.node]: node, [LABELS.owner]: owner },
    Options: { 'com.docker.network.bridge.name': OWNER_BRIDGE_PREFIX + ownerHash(node, owner).slice(0, BRIDGE_HEX) },
  };
}

/**
 * Makes the owner's network when it is missing; returns its Docker id. One that exists
 * is used only when its labels name this node and owner: else the error names both.
 */
export async function ensureOwnerNetwork(docker: Docker, spec: WorkloadSpec): Promise<string> {
  const options = ownerNetworkCreateOptions(spec.node, spec.owner);
  let found = await inspectNetwork(docker, options.Name);
  if (!found) {
    await docker.createNetwork(options).catch((err: unknown) => {
      if (statusCodeOf(err) !== 409) throw err; // made meanwhile by someone else: checked below
    });
    found = await inspectNetwork(docker, options.Name);
  }
  const labels = found?.Labels ?? {};
  if (!found || labels[LABELS.node] !== spec.node || labels[LABELS.owner] !== spec.owner) {
    const what = found ? `node ${labels[LABELS.node] ?? '-'}, owner ${labels[LABELS.owner] ?? '-'}` : 'nothing (removed meanwhile)';
    throw new WorkloadSpecError(spec.workload, 'owner', `the Docker network ${options.Name} should be node ${spec.node}'s for owner ${spec.owner}, and is ${what}; remove it by hand if it is stale`);
  }
  return found.Id;
}

/** Removes the owner's network when no container of this node's for the owner is left (in any state). */
export async function removeOwnerNetworkIfUnused(docker: Docker, node: string, owner: string): Promise<void> {
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${node}`, `${LABELS.owner}=${owner}`] } });
  if (left.length > 0) return;
  await removeNetwork(docker, ownerNetworkName(node, owner));
}

/** Every owner network these nodes made (the local cluster's `down`, tests' cleanup); their containers must be gone. */
export async function removeOwnerNetworks(docker: Docker, nodes: readonly string[]): Promise<void> {
  // Docker ANDs label filters: one query per node.
  const found = (await Promise.all(nodes.map((node) => docker.listNetworks({ filters: { label: [`${LABELS.node}=${node}`] } })))).flat();
  await Promise.all(found.filter((n) => n.Name.startsWith(NETWORK_PREFIX)).map((n) => removeNetwork(docker, n.Id)));
}

async function inspectNetwork(docker: Docker, name: string): Promise<{ Id: string; Labels?: Record<string, string> | null } | null> {
  try {
    return await docker.getNetwork(name).inspect() as { Id: string; Labels?: Record<string, string> | null };
  } catch (err) {
    if (statusCodeOf(err) === 404) return null;
    throw err;
  }
}

async function removeNetwork(docker: Docker, id: string): Promise<void> {
  // 404: already gone; 403/409: a container (ours or one someone attached) still uses it.
  await docker.getNetwork(id).remove().catch((err: unknown) => {
    if (![403, 404, 409].includes(statusCodeOf(err) ?? 0)) throw err;
  });
}

// Names of what the driver creates. Interface names are at most 15 characters
// (IFNAMSIZ), so they carry 8 hex of a hash rather than the blueprint's names.
import { createHash } from 'node:crypto';
import type { NetworkIdentity } from './contract.ts';

export const NAMESPACE_PREFIX = 'zn-';

const hex8 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 8);

/**
 * The network namespace of one blueprint network: `zn-` + 8 hex of
 * sha256(node|owner|blueprint|network). The node is part of it because the nodes of a
 * local cluster share one machine's namespace names.
 */
export function networkId(n: NetworkIdentity): string {
  return NAMESPACE_PREFIX + hex8(`${n.node}|${n.owner}|${n.blueprint}|${n.network}`);
}

/** The WireGuard interface; also names wireguard-go's UAPI socket, so it is unique on the machine. */
export function wireguardInterface(id: string): string {
  return 'zw-' + id.slice(NAMESPACE_PREFIX.length);
}

/** The bridge in the network namespace that the containers' interfaces plug into. */
export const BRIDGE = 'zone0';

/** The network namespace's end of a container's veth pair, named by the container's IP. */
export function containerLink(ip: string): string {
  return 'zc-' + hex8(ip);
}

/** The container's end: named after the network namespace it leads to. */
export function containerInterface(id: string): string {
  return id;
}

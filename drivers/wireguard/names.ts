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

/**
 * A VM joins a network through a bridge in the network namespace of libvirtd (the host's):
 * libvirt plugs the VM's tap into `zb-`, and a veth pair (`zh-` there, `zv-` in the
 * network's namespace, on its bridge) joins the two. Named by network and IP, so the
 * libvirt driver finds the bridge from the spec alone.
 */
export const VM_BRIDGE_PREFIX = 'zb-';

export function vmLinks(id: string, ip: string): { bridge: string; hostEnd: string; networkEnd: string; mac: string } {
  const h = hex8(`${id}|${ip}`);
  return { bridge: `${VM_BRIDGE_PREFIX}${h}`, hostEnd: `zh-${h}`, networkEnd: `zv-${h}`, mac: `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}` };
}

/** The alias a VM bridge carries, so that removing a network finds its bridges. */
export function vmBridgeAlias(id: string): string {
  return `zone:${id}`;
}

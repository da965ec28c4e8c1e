// Names of what the driver creates. A network namespace is named by the network's id
// (`networkId`, drivers/names.ts: 128 bits of a hash of its whole identity). Interface names are at most 15 bytes (IFNAMSIZ),
// too short for that: each carries an alias naming whose it is, and the driver refuses
// a link whose alias names another (see driver.ts); the WireGuard interface, whose name
// is machine-wide (wireguard-go's UAPI socket), is allocated and kept in the state file.
import { createHash } from 'node:crypto';
import type { NetworkIdentity } from '../contract.ts';

const hex = (text: string, digits: number) => createHash('sha256').update(text).digest('hex').slice(0, digits);
/** What fits in an interface name after a three-character prefix. */
const LINK_HEX = 12;

/** Who a link belongs to, as its alias says (at most 255 bytes: node, owner and two names fit). */
export function networkAlias(n: NetworkIdentity): string {
  return `zone:${n.node}:${n.owner}:${n.blueprint}:${n.network}`;
}

/**
 * The WireGuard interface's `attempt`th candidate name (`zw-` + 12 hex): the driver takes
 * the first one no other network of the machine uses and records it in the state file.
 */
export function wireguardInterface(id: string, attempt = 0): string {
  return 'zw-' + hex(`${id}|${attempt}`, LINK_HEX);
}

/** The alias of links that belong to the network `id` as a whole (the WireGuard interface, a container's end). */
export function linkAlias(id: string): string {
  return `zone:${id}`;
}

/** The bridge in the network namespace that the containers' interfaces plug into; its alias is networkAlias(identity). */
export const BRIDGE = 'zone0';

/** The four bytes of an IPv4 address in hex: distinct addresses, distinct names. */
function ipv4Hex(ip: string): string {
  return ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join('');
}

/** The network namespace's end of a container's veth pair: `zc-` + the IP in hex, so no two members share one. */
export function containerLink(ip: string): string {
  return 'zc-' + ipv4Hex(ip);
}

/** The container's end, in the container: named after the network it leads to (alias linkAlias(id)). */
export function containerInterface(id: string): string {
  return 'zn-' + hex(id, LINK_HEX);
}

/**
 * A VM joins a network through a bridge in the network namespace of libvirtd (the host's):
 * libvirt plugs the VM's tap into `zb-`, and a veth pair (`zh-` there, `zv-` in the
 * network's namespace, on its bridge) joins the two. Named by network and IP, so the
 * libvirt driver finds the bridge from the spec alone; the bridge's alias
 * (vmBridgeAlias) says whose it is. The MAC carries the IP's last three bytes: unique
 * within the network.
 */
export const VM_BRIDGE_PREFIX = 'zb-';

export function vmLinks(id: string, ip: string): { bridge: string; hostEnd: string; networkEnd: string; mac: string } {
  const h = hex(`${id}|${ip}`, LINK_HEX);
  const b = ipv4Hex(ip);
  return { bridge: `${VM_BRIDGE_PREFIX}${h}`, hostEnd: `zh-${h}`, networkEnd: `zv-${h}`, mac: `52:54:00:${b.slice(2, 4)}:${b.slice(4, 6)}:${b.slice(6, 8)}` };
}

/** The alias of a VM bridge (and its host end): the network and the VM's IP. */
export function vmBridgeAlias(id: string, ip: string): string {
  return `zone:${id}/${ip}`;
}

/** A VM bridge of network `id`: this scheme's alias, or the alias older appliances gave (the network alone). */
export function isVmBridgeOf(alias: string | undefined, id: string): boolean {
  return alias === `zone:${id}` || (alias?.startsWith(`zone:${id}/`) ?? false);
}

// The node's firewall against its own workloads, as an nftables script: pure, so every
// case is a table test; firewall.ts runs it. Workloads' packets come in on Docker's
// bridges (the default one and every owner bridge) or a VM bridge; to an address of this host they
// pass the input hook, to a node in another network namespace of this host (the local
// cluster) the forward hook. Both hooks turn away the node's closed ports; nothing else
// is touched, and the table is the node's own (named by its id), so nodes sharing a
// host and Docker's own rules do not meet it.
import { isIP } from 'node:net';
import { OWNER_BRIDGE_PREFIX } from '../../drivers/docker/owner-network.ts';
import { VM_BRIDGE_PREFIX } from '../../drivers/wireguard/names.ts';

/** The node's services a workload could try to reach. */
export type NodeService = 'api' | 'nats' | 'nats-routes';
/** Those the config may open to workloads: never the routes, which join nodes' servers. */
export const OPENABLE_SERVICES = ['api', 'nats'] as const;
export type OpenableService = (typeof OPENABLE_SERVICES)[number];

/** Where a service listens: IP literals (names resolved already), `0.0.0.0` / `::` for every address. */
export interface Listener {
  service: NodeService;
  addresses: string[];
  port: number;
}

export interface FirewallPlan {
  node: string;
  listeners: Listener[];
  open: readonly OpenableService[];
  /** The addresses of the node's own network namespace: where a wildcard listener answers. */
  nodeAddresses: string[];
}

/**
 * Where workloads' traffic enters: Docker's default bridge, the owner bridges, and the
 * VMs' overlay bridges (they carry no host address, so a VM's packets reach the host
 * only when crafted for it: turned away too). Docker and libvirtd share the host's
 * namespace on every node we run.
 */
export const WORKLOAD_INTERFACES = ['docker0', `${OWNER_BRIDGE_PREFIX}*`, `${VM_BRIDGE_PREFIX}*`] as const;
/** Just before the filter hooks' usual priority (Docker's iptables-nft chains), so ours sees packets first. */
const PRIORITY = 'filter - 1';
const NODE_ID = /^[a-z0-9]{1,64}$/;

export function firewallTable(node: string): string {
  if (!NODE_ID.test(node)) throw new RangeError(`node id ${JSON.stringify(node)} cannot name a firewall table (expected [a-z0-9]{1,64})`);
  return `zone-${node}`;
}

/**
 * The script that makes the node's table what `plan` says, in one transaction: whatever
 * the table held before (an earlier start, another config) is replaced, so running it
 * twice is running it once.
 */
export function firewallScript(plan: FirewallPlan): string {
  const table = firewallTable(plan.node);
  const closed = plan.listeners.filter((l) => !(plan.open as readonly string[]).includes(l.service));
  for (const l of closed) {
    if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) throw new RangeError(`${l.service} port ${l.port} is not 1-65535`);
    for (const a of l.addresses) if (isIP(a) === 0) throw new RangeError(`${l.service} address ${JSON.stringify(a)} is not an IP address`);
  }
  const ports = set([...new Set(closed.map((l) => l.port))].sort((x, y) => x - y).map(String));
  const from = `iifname ${set(WORKLOAD_INTERFACES.map((i) => `"${i}"`))}`;
  const reject = 'reject with tcp reset';
  // Forwarded packets go to other hosts too: only the node's own addresses are closed there.
  const targets = [...new Set(closed.flatMap((l) => l.addresses.flatMap((a) => expand(a, plan.nodeAddresses))))].filter((a) => !isLoopback(a)).sort();
  const v4 = targets.filter((a) => isIP(a) === 4);
  const v6 = targets.filter((a) => isIP(a) === 6);
  const input = closed.length > 0 ? [`${from} tcp dport ${ports} ${reject}`] : [];
  const forward = [
    ...(v4.length > 0 ? [`${from} ip daddr ${set(v4)} tcp dport ${ports} ${reject}`] : []),
    ...(v6.length > 0 ? [`${from} ip6 daddr ${set(v6)} tcp dport ${ports} ${reject}`] : []),
  ];
  return [
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    ...chain('input', input),
    ...chain('forward', forward),
    '}',
    '',
  ].join('\n');
}

/** The script that removes the node's table; nothing happens when there is none. */
export function firewallRemovalScript(node: string): string {
  const table = firewallTable(node);
  return `table inet ${table}\ndelete table inet ${table}\n`;
}

function chain(hook: 'input' | 'forward', rules: string[]): string[] {
  return [
    `  chain ${hook} {`,
    `    type filter hook ${hook} priority ${PRIORITY}; policy accept;`,
    ...rules.map((r) => `    ${r}`),
    '  }',
  ];
}

/** A wildcard listener answers on every address of its family (`::` takes IPv4 too). */
function expand(address: string, nodeAddresses: string[]): string[] {
  if (address === '0.0.0.0') return nodeAddresses.filter((a) => isIP(a) === 4);
  if (address === '::') return nodeAddresses.filter((a) => isIP(a) !== 0);
  return [address];
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

function set(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

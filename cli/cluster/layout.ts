// Where everything of a local cluster lives: names of namespaces and links, and
// addresses. Pure: `up` creates what this says, `down` deletes it.
//
//   host (root namespace)  zcl-NAME ──veth── host ┐
//                                                  ├ br0 in namespace zcl-NAME-sw (the "switch")
//   node i: namespace zcl-NAME-nI, eth0 ──veth── nI┘
//
// Nodes reach each other and the host through the switch; the switch has its own
// (empty) firewall, so the host's FORWARD rules (Docker's DROP) never apply.
import { addressAt, prefixLength } from '../../drivers/wireguard/addresses.ts';

export const CLUSTER_NAME_PATTERN = /^[a-z0-9]{1,6}$/;
export const MAX_NODES = 32;
export const API_PORT = 7700;
/** Where each node's WireGuard overlays listen by default (`zone network plan` endpoints). */
export const WIREGUARD_PORT = 51820;
/** Each node's nats-server: clients (on the node's loopback), and the routes (mutual TLS) that join the nodes' servers into one JetStream cluster. */
export const NATS_PORT = 4222;
export const NATS_CLUSTER_PORT = 6222;

export interface NodeLayout {
  index: number;
  namespace: string;
  /** The node's end of its veth is `eth0` in its namespace; this is the switch's end. */
  switchPort: string;
  address: string;
  api: string;
}

export interface ClusterLayout {
  name: string;
  subnet: string;
  switchNamespace: string;
  hostLink: string;
  hostAddress: string;
  prefixLength: number;
  nodes: NodeLayout[];
}

export function clusterLayout(name: string, subnet: string, count: number): ClusterLayout {
  if (!CLUSTER_NAME_PATTERN.test(name)) throw new RangeError(`cluster name "${name}" must be 1-6 lower-case letters or digits`);
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new RangeError(`a local cluster has 1 to ${MAX_NODES} nodes, not ${count}`);
  // The host takes the first address and node N (from 1) the (10+N)th: the subnet must hold them.
  return {
    name,
    subnet,
    switchNamespace: `zcl-${name}-sw`,
    hostLink: `zcl-${name}`,
    hostAddress: addressAt(subnet, 1),
    prefixLength: prefixLength(subnet),
    nodes: Array.from({ length: count }, (_, i) => ({
      index: i + 1,
      namespace: `zcl-${name}-n${i + 1}`,
      switchPort: `n${i + 1}`,
      address: addressAt(subnet, 11 + i),
      api: `http://${addressAt(subnet, 11 + i)}:${API_PORT}`,
    })),
  };
}

// The overlay of a grid, computed once by the operator: each node's share of the
// range, a fresh WireGuard key per node sealed to that node (bound to the owner, the
// blueprint and the network's key field), and every other node as
// a peer. Pure but for key generation and sealing, which are passed in.
import { Type, type Static } from '@sinclair/typebox';
import { Endpoint, type Network } from '../blueprints/schema.ts';
import { sealSecret, type SealBinding } from '../blueprints/seal.ts';
import { wireguardKeyField } from '../blueprints/sealed-fields.ts';
import { splitRange } from '../drivers/wireguard/addresses.ts';
import { generateWireguardKeyPair, type WireguardKeyPair } from '../drivers/wireguard/keys.ts';

export const GridNode = Type.Object({
  id: Type.String({ pattern: '^[a-z0-9]{1,64}$', description: 'the node id (GET /v1/node `id`)' }),
  boxKey: Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'the node\'s X25519 box key, base64 (GET /v1/node `boxKey`)' }),
  /** Where other nodes reach its WireGuard socket; the port is its listen port. */
  endpoint: Endpoint,
}, { additionalProperties: false });
export type GridNode = Static<typeof GridNode>;

/** The file `zone network plan --nodes` reads. */
export const GridNodesFile = Type.Object({
  nodes: Type.Array(GridNode, { minItems: 1, maxItems: 256 }),
}, { additionalProperties: false });

export interface GridPlanInput {
  network: string;
  /** The owner of the blueprints the sections go into, and their name (`*`: any of the owner's): each key is sealed to that place. */
  owner: string;
  blueprint: string;
  ipRange: string;
  nodes: GridNode[];
  /** Length of each node's subnet; 24 by default. */
  subnetPrefix?: number;
  persistentKeepalive?: number;
}

export interface GridTools {
  generateKeyPair(): WireguardKeyPair;
  seal(clear: string, boxKey: string, binding: SealBinding): string;
}

const realTools: GridTools = { generateKeyPair: generateWireguardKeyPair, seal: sealSecret };

/** One `networks:` entry per node, in the order of `input.nodes`. */
export function planGrid(input: GridPlanInput, tools: GridTools = realTools): { node: string; network: Network }[] {
  const ids = input.nodes.map((n) => n.id);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated) throw new RangeError(`node ${repeated} is listed twice`);
  const subnets = splitRange(input.ipRange, input.subnetPrefix ?? 24, input.nodes.length);
  const keys = input.nodes.map(() => tools.generateKeyPair());
  return input.nodes.map((node, i) => {
    const port = Number(node.endpoint.slice(node.endpoint.lastIndexOf(':') + 1));
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`node ${node.id}: endpoint "${node.endpoint}" has no port (expected host:port)`);
    return {
      node: node.id,
      network: {
        name: input.network,
        subnet: subnets[i]!,
        ipRange: input.ipRange,
        wireguard: {
          privateKey: tools.seal(keys[i]!.privateKey, node.boxKey, { owner: input.owner, node: node.id, blueprint: input.blueprint, field: wireguardKeyField(input.network) }),
          listenPort: port,
          peers: input.nodes.flatMap((peer, j) => (j === i ? [] : [{
            publicKey: keys[j]!.publicKey,
            endpoint: peer.endpoint,
            allowedIPs: [subnets[j]!],
            ...(input.persistentKeepalive ? { persistentKeepalive: input.persistentKeepalive } : {}),
          }])),
        },
      },
    };
  });
}

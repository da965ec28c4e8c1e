// The pure half of the driver: what a network should look like, what `wg` and `ip`
// report, and the steps from one to the other. No I/O, no secrets: the plan knows the
// public key derived from the sealed private key, the executor opens the key itself.
import type { Network } from '../../blueprints/schema.ts';
import { gatewayOf, normalizeCidr, prefixLength } from './addresses.ts';
import type { ObservedPeer } from '../contract.ts';

export interface DesiredPeer {
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  persistentKeepalive: number;
}

export interface DesiredNetwork {
  /** The node's address on the bridge, `10.88.1.1/24`. */
  bridgeAddress: string;
  /** Null when the network has no `wireguard` section: a node-local network. */
  wireguard: { publicKey: string; listenPort: number; mtu: number; peers: DesiredPeer[] } | null;
  /** Sent into the WireGuard interface: every peer's allowed IPs. */
  routes: string[];
}

export interface WireguardDevice {
  publicKey: string;
  listenPort: number;
  peers: ObservedPeer[];
}

/** What the executor found; parts that cannot exist (no namespace, so no bridge) are empty. */
export interface DeviceState {
  namespace: boolean;
  /** Addresses of the bridge; null when there is no bridge. */
  bridgeAddresses: string[] | null;
  /** The WireGuard link exists in the namespace and (wireguard-go) its process runs. */
  interfaceAlive: boolean;
  interfaceUp: boolean;
  /** The WireGuard link's MTU; null when there is no link. */
  interfaceMtu: number | null;
  device: WireguardDevice | null;
  routes: string[];
}

export type DeviceStep =
  | { op: 'create-namespace' }
  | { op: 'create-bridge' }
  | { op: 'set-bridge-address'; address: string; replaces: string[] }
  /** Stops what is left of an interface and creates a fresh one in the namespace. */
  | { op: 'create-interface' }
  /** The network lost its `wireguard` section: the node-local part stays. */
  | { op: 'delete-interface' }
  | { op: 'set-interface'; listenPort: number }
  | { op: 'set-mtu'; mtu: number }
  | { op: 'set-peer'; peer: DesiredPeer }
  | { op: 'remove-peer'; publicKey: string }
  | { op: 'interface-up' }
  | { op: 'add-route'; cidr: string }
  | { op: 'remove-route'; cidr: string };

/** `mtu`: the interface's, from wireguardMtu(). */
export function desiredNetwork(n: Network, publicKey: string | null, mtu = DEFAULT_WIREGUARD_MTU): DesiredNetwork {
  const peers: DesiredPeer[] = (n.wireguard?.peers ?? []).map((p) => ({
    publicKey: p.publicKey,
    endpoint: p.endpoint ?? null,
    allowedIPs: [...new Set(p.allowedIPs.map(normalizeCidr))].sort(),
    persistentKeepalive: p.persistentKeepalive ?? 0,
  }));
  return {
    bridgeAddress: `${gatewayOf(n.subnet)}/${prefixLength(n.subnet)}`,
    wireguard: n.wireguard && publicKey ? { publicKey, listenPort: n.wireguard.listenPort, mtu, peers } : null,
    routes: [...new Set(peers.flatMap((p) => p.allowedIPs))].sort(),
  };
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

/** Endpoints given as names are resolved by wg, so only literal ones can be compared. */
const endpointDiffers = (want: string | null, seen: string | null) => want !== null && /^[0-9.]+:[0-9]+$/.test(want) && want !== seen;

/** Peers to set (new or changed) and to remove, so that unchanged peers keep their sessions. */
export function diffPeers(desired: DesiredPeer[], observed: ObservedPeer[]): { set: DesiredPeer[]; remove: string[] } {
  const seen = new Map(observed.map((p) => [p.publicKey, p]));
  const wanted = new Set(desired.map((p) => p.publicKey));
  const set = desired.filter((p) => {
    const o = seen.get(p.publicKey);
    return !o || !sameSet(p.allowedIPs, o.allowedIPs.map(normalizeCidr)) || endpointDiffers(p.endpoint, o.endpoint)
      || p.persistentKeepalive !== o.persistentKeepalive;
  });
  return { set, remove: observed.filter((p) => !wanted.has(p.publicKey)).map((p) => p.publicKey) };
}

/** The steps from `observed` to `desired`; none when they already agree. */
export function planNetwork(desired: DesiredNetwork, observed: DeviceState): DeviceStep[] {
  const steps: DeviceStep[] = [];
  if (!observed.namespace) steps.push({ op: 'create-namespace' });
  const bridge = observed.namespace ? observed.bridgeAddresses : null;
  if (bridge === null) steps.push({ op: 'create-bridge' });
  if (bridge === null || !sameSet(bridge, [desired.bridgeAddress])) {
    steps.push({ op: 'set-bridge-address', address: desired.bridgeAddress, replaces: (bridge ?? []).filter((a) => a !== desired.bridgeAddress) });
  }

  const fresh = !observed.namespace || !observed.interfaceAlive;
  if (desired.wireguard) {
    const wg = desired.wireguard;
    if (fresh) steps.push({ op: 'create-interface' });
    const device = fresh ? null : observed.device;
    if (!device || device.publicKey !== wg.publicKey || device.listenPort !== wg.listenPort) {
      steps.push({ op: 'set-interface', listenPort: wg.listenPort });
    }
    if (fresh || observed.interfaceMtu !== wg.mtu) steps.push({ op: 'set-mtu', mtu: wg.mtu });
    const peers = diffPeers(wg.peers, device?.peers ?? []);
    steps.push(...peers.remove.map((publicKey): DeviceStep => ({ op: 'remove-peer', publicKey })));
    steps.push(...peers.set.map((peer): DeviceStep => ({ op: 'set-peer', peer })));
    if (fresh || !observed.interfaceUp) steps.push({ op: 'interface-up' });
  } else if (!fresh) {
    steps.push({ op: 'delete-interface' });
  }

  const routes = fresh ? [] : observed.routes.map(normalizeCidr);
  const wantedRoutes = desired.wireguard ? desired.routes : [];
  steps.push(...routes.filter((r) => !wantedRoutes.includes(r)).map((cidr): DeviceStep => ({ op: 'remove-route', cidr })));
  steps.push(...wantedRoutes.filter((r) => !routes.includes(r)).map((cidr): DeviceStep => ({ op: 'add-route', cidr })));
  return steps;
}

/**
 * What differs between what runs and what the driver last applied (someone changed it
 * by hand): one phrase per step the plan would take, naming the field or the peer by
 * its public key; null when nothing does. Only public values: the dump's private key
 * never reaches `observed`.
 */
export function describeDrift(desired: DesiredNetwork, observed: DeviceState, nowSeconds: number): string | null {
  const seen = new Map((observed.device?.peers ?? []).map((p) => [p.publicKey, p]));
  const steps = planNetwork(desired, observed).filter((s) => s.op !== 'set-peer' || !roamedOnly(s.peer, seen.get(s.peer.publicKey), nowSeconds));
  // What a new namespace or interface gets anyway is not a difference of its own.
  const implied = new Set<DeviceStep['op']>([
    ...(steps.some((s) => s.op === 'create-namespace') ? ['create-bridge', 'set-bridge-address'] as const : []),
    ...(steps.some((s) => s.op === 'create-interface') ? ['set-interface', 'set-mtu', 'set-peer', 'interface-up', 'add-route'] as const : []),
  ]);
  const phrases = steps.filter((s) => !implied.has(s.op)).map((step): string => {
    switch (step.op) {
      case 'create-namespace': return 'no network namespace';
      case 'create-bridge': return 'no bridge';
      case 'set-bridge-address': return `bridge address is not ${step.address}`;
      case 'create-interface': return 'no WireGuard interface';
      case 'delete-interface': return 'a WireGuard interface the network does not declare';
      case 'set-interface': {
        const device = observed.device;
        if (device && device.listenPort !== step.listenPort) return `listen port ${device.listenPort}, not ${step.listenPort}`;
        return `the interface's public key is ${device?.publicKey || 'unset'}, not ${desired.wireguard?.publicKey ?? 'none'}`;
      }
      case 'set-mtu': return `MTU ${observed.interfaceMtu ?? 'unknown'}, not ${step.mtu}`;
      case 'set-peer': return peerDrift(step.peer, seen.get(step.peer.publicKey));
      case 'remove-peer': return `peer ${step.publicKey} is not declared`;
      case 'interface-up': return 'the interface is down';
      case 'add-route': return `route ${step.cidr} is missing`;
      case 'remove-route': return `route ${step.cidr} is not declared`;
    }
  });
  return phrases.length > 0 ? phrases.join('; ') : null;
}

/**
 * A session renewed within this many seconds (WireGuard rekeys every 120 s while packets
 * flow) means the peer's packets authenticated from where it is now.
 */
const ROAMED_WITHIN_S = 180;

/**
 * WireGuard moves a peer's endpoint to where its authenticated packets come from (a peer
 * behind NAT, or answering from another address): only the endpoint differing, with a
 * live session, is roaming, not a change by hand. A hand-made endpoint that reaches
 * nothing loses its session and is set back after ROAMED_WITHIN_S.
 */
function roamedOnly(want: DesiredPeer, seen: ObservedPeer | undefined, nowSeconds: number): boolean {
  return seen !== undefined && seen.latestHandshake > 0 && nowSeconds - seen.latestHandshake < ROAMED_WITHIN_S
    && sameSet(want.allowedIPs, seen.allowedIPs.map(normalizeCidr)) && want.persistentKeepalive === seen.persistentKeepalive;
}

function peerDrift(want: DesiredPeer, seen: ObservedPeer | undefined): string {
  if (!seen) return `peer ${want.publicKey} is missing`;
  const fields = [
    ...(endpointDiffers(want.endpoint, seen.endpoint) ? [`endpoint ${seen.endpoint ?? 'none'}, not ${want.endpoint}`] : []),
    ...(!sameSet(want.allowedIPs, seen.allowedIPs.map(normalizeCidr)) ? [`allowed IPs ${seen.allowedIPs.join(',') || 'none'}, not ${want.allowedIPs.join(',')}`] : []),
    ...(want.persistentKeepalive !== seen.persistentKeepalive ? [`keepalive ${seen.persistentKeepalive}, not ${want.persistentKeepalive}`] : []),
  ];
  return `peer ${want.publicKey}: ${fields.join(', ')}`;
}

/** WireGuard's default MTU (the kernel's and wireguard-go's): room for an IPv6 underlay of 1500. */
export const DEFAULT_WIREGUARD_MTU = 1420;
/**
 * What a packet grows by on an IPv4 underlay: IPv4 20, UDP 8, WireGuard's header 16 and
 * tag 16, and up to 15 bytes of padding. The padding is counted because Debian's
 * wireguard-go pads to the MTU it knows, 1420 from its start unless it hears of the
 * change, which it listens for on netlink in the namespace it started in, one its
 * interface has left; with that room a packet fits whichever MTU it pads to.
 */
const IPV4_GROWTH = 20 + 8 + 32 + 16;
/** The least MTU an interface may have and still carry IPv6. */
const MIN_MTU = 1280;

/** The IPv4 address of an endpoint given literally (`203.0.113.5:51820`); null for a name. */
export function endpointAddress(endpoint: string | null): string | null {
  const m = endpoint === null ? null : /^([0-9]{1,3}(?:\.[0-9]{1,3}){3}):[0-9]+$/.exec(endpoint);
  return m ? m[1]! : null;
}

/**
 * The interface's MTU from the MTUs of the underlay links towards the peers: the largest
 * whose wrapped packets fit every path unfragmented. An Ethernet underlay of 1500 gives
 * 1424 (the default 1420, which leaves room for IPv6 endpoints, blueprints do not have);
 * a cloud's 1460 gives 1384 where the default would fragment every full packet; a
 * jumbo-frame underlay of 9000 gives 8924, a sixth of the packets for wireguard-go to
 * carry (2.5x the throughput, BENCHMARKS.md). No path known: the default.
 */
export function wireguardMtu(underlayMtus: number[]): number {
  if (underlayMtus.length === 0) return DEFAULT_WIREGUARD_MTU;
  return Math.max(MIN_MTU, Math.min(...underlayMtus) - IPV4_GROWTH);
}

/** A container link's MTU: the overlay's when larger than Ethernet's (a jumbo underlay), else Ethernet's, so local traffic keeps full frames. */
export const containerMtu = (overlayMtu: number | null) => Math.max(1500, overlayMtu ?? 0);

/**
 * What a container of the network routes through the node's bridge address: the
 * whole overlay range when declared, else the peers' subnets.
 */
export function containerRoutes(n: Network): string[] {
  const subnet = normalizeCidr(n.subnet);
  const routes = n.ipRange ? [normalizeCidr(n.ipRange)] : (n.wireguard?.peers ?? []).flatMap((p) => p.allowedIPs.map(normalizeCidr));
  return [...new Set(routes)].filter((r) => r !== subnet).sort();
}

/** Arguments of `wg set IFACE ...` for one peer (public values only). */
export function peerArgs(peer: DesiredPeer): string[] {
  return [
    'peer', peer.publicKey,
    ...(peer.endpoint ? ['endpoint', peer.endpoint] : []),
    'allowed-ips', peer.allowedIPs.join(','),
    'persistent-keepalive', peer.persistentKeepalive ? String(peer.persistentKeepalive) : 'off',
  ];
}

/**
 * Parses `wg show IFACE dump`. Its first line starts with the private key, which is
 * dropped here and never put in an error.
 */
export function parseWireguardDump(text: string): WireguardDevice {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const fields = lines.map((l) => l.split('\t'));
  const [head, ...peerLines] = fields;
  if (!head || head.length !== 4) throw new Error(`wg show dump: the interface line has ${head?.length ?? 0} fields, expected 4`);
  const num = (value: string | undefined, what: string, line: number) => {
    const n = value === 'off' ? 0 : Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`wg show dump: line ${line}: ${what} is not a number`);
    return n;
  };
  return {
    publicKey: head[1] ?? '',
    listenPort: num(head[2], 'listen port', 1),
    peers: peerLines.map((f, i) => {
      const line = i + 2;
      if (f.length !== 8) throw new Error(`wg show dump: line ${line} has ${f.length} fields, expected 8`);
      return {
        publicKey: f[0] ?? '',
        endpoint: f[2] === '(none)' ? null : (f[2] ?? null),
        allowedIPs: f[3] === '(none)' ? [] : (f[3] ?? '').split(','),
        latestHandshake: num(f[4], 'latest handshake', line),
        rxBytes: num(f[5], 'rx bytes', line),
        txBytes: num(f[6], 'tx bytes', line),
        persistentKeepalive: num(f[7], 'persistent keepalive', line),
      };
    }),
  };
}

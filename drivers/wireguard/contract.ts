// The network driver contract. Networks are not workloads (nothing to start, stop or
// attach stdio to), so they have their own small interface in the same spirit as
// drivers/contract.ts: fingerprint, idempotent ensure, inspect, list, remove.
import type { Network } from '../../blueprints/schema.ts';
import type { Fingerprint } from '../contract.ts';

/** Whose network it is. Kept in the driver's state file so `list()` finds ours after a restart. */
export interface NetworkIdentity {
  node: string;
  /** The owner's public key (`ed25519:...`). */
  owner: string;
  blueprint: string;
  /** The network's name in the blueprint. */
  network: string;
}

/** One blueprint network the engine asks the driver to make real on this node. */
export interface NetworkSpec extends NetworkIdentity {
  /** The network namespace's name, `networkId(identity)`: `zn-` and 32 hex (128 bits of the identity's hash). */
  id: string;
  definition: Network;
}

export type WireguardImplementation = 'kernel' | 'wireguard-go';

export interface ObservedPeer {
  publicKey: string;
  /** Where the peer was last seen (or was configured); null before any traffic when none was set. */
  endpoint: string | null;
  allowedIPs: string[];
  /** Seconds since the epoch of the last handshake; 0 when none yet. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds; 0 when off. */
  persistentKeepalive: number;
}

/** What the driver sees of one network it manages. Never holds a private key. */
export interface ObservedNetwork extends NetworkIdentity {
  id: string;
  /** The network namespace (same as `id`). */
  namespace: string;
  /** The WireGuard interface inside the namespace. */
  interface: string;
  implementation: WireguardImplementation;
  /** The wireguard-go process; null for the kernel implementation. */
  pid: number | null;
  /** The namespace, the interface (and its process) all exist and the interface is up. */
  up: boolean;
  publicKey: string | null;
  listenPort: number | null;
  peers: ObservedPeer[];
}

/** A container of the blueprint that names the network: its main process and its declared IP. */
export interface ContainerAttachment {
  workload: string;
  pid: number;
  ip: string;
}

/** Raised when a network cannot be made real as written (its key does not open, ...): not retried fast. */
export class NetworkSpecError extends Error {
  readonly code = 'NETWORK_SPEC';
  constructor(readonly network: string, readonly field: string, reason: string) {
    super(`network ${network}: ${field}: ${reason}`);
    this.name = 'NetworkSpecError';
  }
}

export interface NetworkDriver {
  readonly kind: 'network';
  fingerprint(): Promise<Fingerprint>;
  /**
   * Idempotent: creates what is missing (namespace, bridge, interface, routes) and
   * applies key, port and peer changes to the running interface without tearing it
   * down. Returns what runs.
   */
  ensure(spec: NetworkSpec): Promise<ObservedNetwork>;
  inspect(id: string): Promise<ObservedNetwork | null>;
  /** Every network this driver manages on its node (found by its state files). */
  list(): Promise<ObservedNetwork[]>;
  /** Deletes the namespace, the interface and its process; idempotent. */
  remove(id: string): Promise<void>;
  /** Gives the container an interface in the network with its declared IP; idempotent. */
  attachContainer(spec: NetworkSpec, container: ContainerAttachment): Promise<void>;
  /**
   * Makes the bridge (in libvirtd's network namespace) that a VM with address `ip`
   * plugs into, joined to the network; idempotent (the VM finds the bridge by vmLinks).
   */
  attachVm(spec: NetworkSpec, vm: { workload: string; ip: string }): Promise<void>;
  /** Removes the container's interface from the network; idempotent. */
  detachContainer(spec: NetworkSpec, ip: string): Promise<void>;
}

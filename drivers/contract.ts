// The driver contract (after Nomad's task drivers). The engine depends on this file
// only; a new driver is a new folder that implements `Driver`.
import type { Readable, Writable } from 'node:stream';
import type { NormalizedWorkload } from '../blueprints/normalize.ts';
import type { LocalPipeEnd } from '../blueprints/pipes.ts';
import type { SealedPlace } from '../blueprints/seal.ts';
import type { Network } from '../blueprints/schema.ts';

/** Where a driver uses a sealed value: the node is the driver's own. */
export type SecretPlace = Omit<SealedPlace, 'node'>;

/** Who a workload is. Drivers store these as labels/metadata so `list()` finds ours after a restart. */
export interface WorkloadIdentity {
  node: string;
  /** The owner's public key (`ed25519:...`). */
  owner: string;
  blueprint: string;
  workload: string;
}

/** One workload the engine asks a driver to make real. */
export interface WorkloadSpec extends WorkloadIdentity {
  /** Engine-side name (container name, domain name): stable, unique per node, [a-z0-9-]. */
  id: string;
  /** sha256 of the normalised workload: a different hash means the running one must be replaced. */
  specHash: string;
  definition: NormalizedWorkload;
  /**
   * A host directory the workload sees at `/zone` (the pseudokernel's mount for this
   * workload). Not part of the definition, so not of the spec hash: a workload made
   * with or without it is the same workload.
   */
  zoneMount?: string;
  /**
   * The host paths of the workload's volumes by volume name (a mounted directory for a
   * filesystem volume, a disk image for a block one), which the engine ensured before
   * asking the driver. Like zoneMount, not part of the spec hash.
   */
  volumePaths?: Readonly<Record<string, string>>;
  /**
   * A VM's plugs into its networks on this host, one per `definition.networks` entry in
   * its order: made by the network driver (`NetworkDriver.attachVm`) before the VM
   * starts. Not part of the spec hash either.
   */
  vmLinks?: VmLink[];
}

export type ObservedState = 'created' | 'running' | 'exited' | 'paused';
export type HealthState = 'starting' | 'healthy' | 'unhealthy';

/** What a driver sees of one workload it manages. */
export interface ObservedWorkload extends WorkloadIdentity {
  id: string;
  kind: NormalizedWorkload['kind'];
  specHash: string;
  state: ObservedState;
  exitCode: number | null;
  /** ISO 8601 times from the engine; used to tell "adopted, not restarted". */
  startedAt: string | null;
  finishedAt: string | null;
  health: HealthState | null;
  oomKilled: boolean;
  /** The main process on this host while it runs (containers): how networks join it. */
  pid?: number;
}

/**
 * What a workload driver can do beyond the contract's core (ensure, stop, inspect, list,
 * remove, watch, logs): callers test these, never the driver's kind. One boolean per
 * ability, so a new one (exec, next) is a new field.
 */
export interface Capabilities {
  /** attach() joins the main process's stdin and stdout (with `replay`, from its first byte): what pipes need. */
  attach: boolean;
  /** console() opens an interactive console of the machine (a serial line). */
  console: boolean;
  /** The spec's `zoneMount` reaches the workload at /zone (the pseudokernel's mount). */
  mount: boolean;
}

export interface Fingerprint {
  kind: string;
  available: boolean;
  /** Why not, when `available` is false (the engine is not reachable, ...). */
  reason?: string;
  version?: string;
  /** Facts of the engine worth showing in GET /v1/node (api version, accelerator, ...). */
  details: Record<string, string | number | boolean>;
  /** A workload driver's (the network driver and the pseudokernel have none). */
  capabilities?: Capabilities;
}

export type DriverEvent =
  | { type: 'started'; id: string; at: Date }
  | { type: 'exited'; id: string; at: Date; exitCode: number | null; oomKilled: boolean }
  | { type: 'removed'; id: string; at: Date }
  | { type: 'health'; id: string; at: Date; health: HealthState }
  /** The engine went away or came back: the engine marks workloads unknown, then repairs. */
  | { type: 'engine'; at: Date; available: boolean; reason?: string };

export interface LogOptions {
  follow: boolean;
  /** Lines from the end; all when absent. */
  tail?: number;
}

export interface AttachOptions {
  /** Attach stdin (true by default). Off, the returned stdin is destroyed (writes fail). */
  stdin?: boolean;
  /**
   * Attach stdout (true by default), and with `replay` have it carry the current
   * incarnation's output from its first byte rather than from now.
   */
  stdout?: boolean;
  replay?: boolean;
}

export interface AttachedStreams {
  stdin: Writable;
  stdout: Readable;
  /** The incarnation (its startedAt) the streams belong to, when the driver knows it. */
  startedAt?: string | null;
  /**
   * With `replay`: true when stdout was attached before the incarnation started, so it
   * holds every byte; false when the bytes before the attach come from the engine's
   * log, which is best effort around the moment of the attach.
   */
  exact?: boolean;
}

/** What the appliance gives every driver at construction. */
export interface DriverContext {
  node: string;
  /**
   * Opens a `sealed:` value for the place it is used at on this node (blueprints/seal.ts):
   * a value bound to another owner, blueprint or field, or sealed to another node, throws
   * (with a message that says why and never holds the clear value). Only a driver that
   * needs the clear value calls it, and never logs it.
   */
  openSecret(sealed: string, place: SecretPlace): string;
  /** A folder the driver may keep files in (disks, logs, rootfs caches). */
  dataDir: string;
  /** Where pinned images come from when the node lacks them (the grid's image store); none: only local images. */
  images?: ImageSource;
  /** The node config's registries, in order: tried for images neither on the node nor in the grid. */
  registries?: readonly RegistryAccess[];
  /** Told how a workload's image pull goes (lines of layers and bytes done, a few a second at most). */
  pullProgress?(who: { owner: string; blueprint: string; workload: string }, line: string): void;
}

/** A registry of the node config, as a driver pulls from it. */
export interface RegistryAccess {
  /** `host[:port]`, as dockerd names the registry (its credentials are bound to it). */
  host: string;
  /** A path below the host that names are looked up in (`team` for `registry.example/team/NAME`); '' for none. */
  namespace: string;
  /**
   * Opens the sealed credentials at the pull that needs them; null: anonymous. Throws
   * (with a reason that never holds the clear value) when they do not open on this node.
   */
  credentials(): { username: string; password: string } | null;
}

/**
 * The grid's images, as a driver sees them: per owner, by digest (`sha256:HEX`). The
 * driver checks what it gets against the digest before it loads it.
 */
export interface ImageSource {
  /**
   * What `owner`'s image `digest` in the grid is (a container image archive, or a VM disk);
   * null when the owner has none of that digest (another owner's image is not theirs to run).
   */
  kindOf(owner: string, digest: string): Promise<ImageKind | null>;
  /** Writes the stored archive (or disk) of `owner`'s image `digest` to `path`; false when the grid holds none. */
  fetch(owner: string, digest: string, path: string): Promise<boolean>;
}

/** `container`: a `docker save`/OCI archive, pinned by its config's sha256; `disk`: a qcow2 or raw VM disk, pinned by the file's sha256. */
export type ImageKind = 'container' | 'disk';

/**
 * The images a driver fetched from the grid and keeps on the node (in dockerd, in a disk
 * store), for the node's collector. Only what the driver loaded itself is listed: an image
 * someone put on the node by hand is never the collector's to remove.
 */
export interface LocalImages {
  /** What the driver keeps, with when a blueprint of this node last pinned each. */
  list(): Promise<LocalImage[]>;
  /** Live blueprints of this node pin these digests now. */
  markUsed(digests: ReadonlySet<string>, now: Date): Promise<void>;
  /** Removes it from the node; false when its engine still uses it (kept, asked again at the next pass). */
  remove(digest: string): Promise<boolean>;
}

export interface LocalImage {
  /** `sha256:HEX`. */
  digest: string;
  /** When it was loaded, or last pinned by a live blueprint of this node (the later). */
  usedAtMs: number;
}

/** Raised by a driver when its engine cannot be reached: the engine marks workloads `unknown`. */
export class EngineUnavailableError extends Error {
  readonly code = 'ENGINE_UNAVAILABLE';
  constructor(readonly driver: string, reason: string, options?: { cause?: unknown }) {
    super(`${driver} engine unavailable: ${reason}`, options);
    this.name = 'EngineUnavailableError';
  }
}

/** Raised when a spec cannot be made real as written (missing image, bad value): not retried fast. */
export class WorkloadSpecError extends Error {
  readonly code = 'WORKLOAD_SPEC';
  constructor(readonly workload: string, readonly field: string, reason: string) {
    super(`workload ${workload}: ${field}: ${reason}`);
    this.name = 'WorkloadSpecError';
  }
}

/** A terminal into a workload (exec with a TTY, a VM's serial console): bytes both ways. */
export interface TerminalSession {
  input: Writable;
  output: Readable;
  /** Follows the window's size; a no-op where the engine cannot (a serial console). */
  resize(cols: number, rows: number): Promise<void>;
}

export interface TerminalOptions {
  cols: number;
  rows: number;
}

/** What a workload uses now: its CPU time so far and its memory. */
export interface WorkloadUsage {
  cpuSeconds: number;
  memoryBytes: number;
}

export interface Driver {
  /** The workload kind it runs (`container`, `vm`). */
  readonly kind: string;
  /** What it can do; the same whether its engine is up or not, and in its fingerprint. */
  readonly capabilities: Readonly<Capabilities>;
  fingerprint(): Promise<Fingerprint & { capabilities: Capabilities }>;
  /**
   * Idempotent create-and-start: creates it when missing, starts it when stopped, and
   * returns what runs. It never replaces one whose specHash differs: the engine plans that.
   */
  ensure(spec: WorkloadSpec): Promise<ObservedWorkload>;
  /** Stops with a grace period (then kills); idempotent; keeps it defined. */
  stop(id: string, graceMs: number): Promise<void>;
  inspect(id: string): Promise<ObservedWorkload | null>;
  /** Everything this driver manages for `node`, found by labels/metadata. */
  list(node: string): Promise<ObservedWorkload[]>;
  /** Stops and deletes it with whatever it owns (disk, logs); idempotent. */
  remove(id: string): Promise<void>;
  /** Subscribes to events (reconnecting on its own); returns the unsubscribe function. */
  watch(listener: (event: DriverEvent) => void): () => void;
  logs(id: string, options: LogOptions): Promise<Readable>;
  /** The main process's stdio (capability `attach`) or the machine's console (`console`); throws with neither. */
  attach(id: string, options?: AttachOptions): Promise<AttachedStreams>;
  /** Optional: a shell in the running workload, with a TTY (containers: the shell its image has). */
  exec?(id: string, options: TerminalOptions): Promise<TerminalSession>;
  /** Optional: the running workload's serial console (VMs). */
  console?(id: string): Promise<TerminalSession>;
  /** Optional: what it uses now; null when it does not run. */
  usage?(id: string): Promise<WorkloadUsage | null>;
  /** Optional: the grid's images it loaded onto the node, for the node's collector. */
  readonly localImages?: LocalImages;
  /**
   * Optional: grows the disk image at `path` (a block volume it was given) to `sizeBytes`
   * while the workload runs and holds it open (a VM: its engine grows the file and tells
   * the guest); a no-op when it does not run, so the volume provider grows the file itself.
   */
  growDisk?(id: string, path: string, sizeBytes: number): Promise<void>;
  close(): Promise<void>;
}

// Networks are not workloads (nothing to start, stop or attach stdio to), so they have
// their own small interface in the same spirit: fingerprint, idempotent ensure, inspect,
// list, remove.

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
  /**
   * Set when what runs differs from what the driver's last ensure of it applied (a peer,
   * an endpoint, a route changed by hand): which field or peer, public values only. The
   * engine ensures the network again. Absent when it agrees, or nothing was applied
   * since the driver started.
   */
  drift?: string;
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
   * plugs into, joined to the network; idempotent. Returns the link, which the engine
   * hands to the VM's driver in its spec (`WorkloadSpec.vmLinks`): how a VM finds its
   * bridge is this contract's, not a naming convention two drivers share.
   */
  attachVm(spec: NetworkSpec, vm: { workload: string; ip: string }): Promise<VmLink>;
  /** Removes the container's interface from the network; idempotent. */
  detachContainer(spec: NetworkSpec, ip: string): Promise<void>;
}

// Volumes are data that outlives workloads: neither workloads nor networks, so they have
// their own small interface. The engine ensures a workload's volumes before its driver
// makes it and gives the driver their host paths in the spec (`volumePaths`): drivers
// never talk to the volume provider.

/** Whose volume it is. Kept beside the volume's data so `list()` finds ours after a restart. */
export interface VolumeIdentity {
  node: string;
  /** The owner's public key (`ed25519:...`). */
  owner: string;
  blueprint: string;
  /** The volume's name in the blueprint. */
  volume: string;
}

export type VolumeKind = 'filesystem' | 'block';

/** One volume the engine asks the provider to make real (or grow) on this node. */
export interface VolumeSpec extends VolumeIdentity {
  /** `volumeId(identity)`: `zv-` and 32 hex (128 bits of the identity's hash). */
  id: string;
  kind: VolumeKind;
  /** For a disk-image VM's root disk: at least the image's size (it never shrinks below it). */
  sizeBytes: number;
  /**
   * A block volume made as a qcow2 overlay over this disk image (a disk-image VM's root
   * disk): the image is only read, the VM's writes stay in the volume. Part of the
   * volume's name (drivers/libvirt/spec.ts rootVolumeOf), so another image is another volume.
   */
  base?: string;
}

/** What the provider sees of one volume it manages. */
export interface ObservedVolume extends VolumeIdentity {
  id: string;
  kind: VolumeKind;
  sizeBytes: number;
  /**
   * Where a workload finds it on the host: the mounted directory (filesystem, null while
   * not mounted) or the disk image file (block).
   */
  path: string | null;
  /** When it stopped being wanted (ISO 8601): deleted a retention period later; null while wanted. */
  releasedAt: string | null;
}

/** Raised when a volume cannot be made as written (shrink, another kind): not retried fast. */
export class VolumeSpecError extends Error {
  readonly code = 'VOLUME_SPEC';
  constructor(readonly volume: string, readonly field: string, reason: string) {
    super(`volume ${volume}: ${field}: ${reason}`);
    this.name = 'VolumeSpecError';
  }
}

export interface VolumeProvider {
  readonly kind: 'volume';
  fingerprint(): Promise<Fingerprint>;
  /**
   * Idempotent: creates it when missing, mounts it when not mounted (after a reboot),
   * grows it when `sizeBytes` is larger, clears a release; refuses (VolumeSpecError) a
   * smaller size or another kind. Returns what is there, with its path.
   */
  ensure(spec: VolumeSpec): Promise<ObservedVolume>;
  /** Marks it as no longer wanted since `at` (kept, data and all, until removed); idempotent. */
  release(id: string, at: Date): Promise<void>;
  inspect(id: string): Promise<ObservedVolume | null>;
  /** Every volume this provider manages on its node. */
  list(): Promise<ObservedVolume[]>;
  /** Unmounts it and deletes its data; idempotent. */
  remove(id: string): Promise<void>;
  /** Bytes its data uses now (what the workload wrote; at most its size). */
  usage(id: string): Promise<number>;
}

/** Where a VM plugs into one network on this host: what its driver needs for the interface. */
export interface VmLink {
  /** The network's name in the blueprint. */
  network: string;
  /** The host bridge the VM's interface joins. */
  bridge: string;
  /** The interface's MAC (stable per network and address, so the guest's config holds). */
  mac: string;
  /** The guest's address with its prefix: `10.88.1.20/24`. */
  address: string;
  gateway: string;
}

// The pseudokernel's resources beside the workloads: a /zone mount a workload is made
// with, and the pipe ends that run here. The engine plans them like the rest (a mount
// before its container is made, a pipe end once its workload exists, both dropped in
// reverse order), through these two small contracts.

/** Readies a workload's /zone on the host (the pseudokernel's FUSE mount) before its driver makes it. */
export interface MountProvider {
  /** Whether the workload gets a /zone (its driver declares `mount`, while the provider can serve one). */
  wants(spec: WorkloadSpec): boolean;
  /** What is mounted now: the host directory by workload id. */
  mounted(): ReadonlyMap<string, string>;
  /**
   * Mounts it (idempotent) and resolves to the host directory; null when it could not
   * (the reason is logged): the workload is then made without /zone. Never rejects.
   */
  mount(spec: WorkloadSpec): Promise<string | null>;
  /** The workload is gone: its /zone is unmounted. Idempotent; never rejects. */
  unmount(id: string): Promise<void>;
}

/** One pipe end that runs on this node, with its workload's engine-side id and kind (which driver it is attached through). */
export interface PipeEnd extends LocalPipeEnd {
  workloadId: string;
  kind: string;
}

/** Runs the pipe ends of this node (the pseudokernel's pipe runner). */
export interface PipeEndProvider {
  /** The ends that run now; null while the provider cannot run any (its NATS is not up). */
  ends(): readonly PipeEnd[] | null;
  /** Runs exactly these from now on (new ones start, dropped ones stop); resolves once the dropped ones stopped. */
  setEnds(ends: readonly PipeEnd[]): Promise<void>;
}

/** Names an end among a node's ends: a same-node pipe has two, one per role. */
export const pipeEndKey = (end: Pick<LocalPipeEnd, 'role' | 'id'>): string => `${end.role}:${end.id}`;

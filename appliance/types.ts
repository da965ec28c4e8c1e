// What the appliance shows the outside world (the API and the CLI build on these).
import type { Readable } from 'node:stream';
import type { TrustPolicy } from '../blueprints/policy.ts';
import type { Fingerprint, HealthState, TerminalOptions, TerminalSession } from '../drivers/contract.ts';
import type { GridFs, PipeLag, ProcEntry } from './pseudokernel/interfaces.ts';
import type { ImageService } from './images/service.ts';
import type { TokenChecker } from '../lib/tokens.ts';

export type WorkloadState =
  | 'pending'     // desired, not yet created
  | 'running'
  | 'exited'      // stopped and, by its restart policy, stays so
  | 'backoff'     // waiting for its next restart
  | 'crashloop'   // restarted often without a stable period: still retried, with capped backoff
  | 'failed'      // cannot be made real as written (missing image, ...): retried slowly
  | 'unknown'     // its engine is unreachable
  | 'removing';

export interface WorkloadStatus {
  blueprint: string;
  owner: string;
  workload: string;
  kind: string;
  state: WorkloadState;
  health: HealthState | null;
  restarts: number;
  lastExit: number | null;
  lastError: string | null;
  /** ISO time the state was entered. */
  since: string;
  /** ISO time of the next restart attempt while in backoff/crashloop. */
  nextRestartAt: string | null;
}

export interface BlueprintStatus {
  name: string;
  owner: string;
  version: number;
  deleted: boolean;
  acceptedAt: string;
  workloads: WorkloadStatus[];
}

/** A transition, numbered so a client can resume from where it was. */
export interface ZoneEvent {
  seq: number;
  at: string;
  blueprint: string | null;
  owner: string | null;
  workload: string | null;
  from: string | null;
  to: string;
  reason: string;
}

export interface Capacity {
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
}

export interface NodeInfo {
  id: string;
  /** `ed25519:BASE64` signing key and BASE64 X25519 box key (seal secrets to it). */
  signingKey: string;
  boxKey: string;
  version: string;
  uptimeSeconds: number;
  drivers: Fingerprint[];
  capacity: { total: Capacity; reserved: Capacity; free: Capacity };
  /** The volumes on this node: their sizes and what they hold (absent where the node serves none). */
  volumes?: { count: number; sizeBytes: number; usedBytes: number };
  /** The node software: what runs, what ran before, the last upgrade (absent where the appliance does not say). */
  release?: ReleaseInfo;
}

/** The node software's versions and the last upgrade, as the supervisor recorded them. */
export interface ReleaseInfo {
  running: string;
  previous: string | null;
  /** Whether a supervisor runs this appliance (only then can it switch releases). */
  supervised: boolean;
  lastUpgrade: { from: string; to: string; outcome: 'succeeded' | 'rolled-back'; reason: string; at: string; seconds: number } | null;
}

/** A release a node took: the supervisor switches to it next. */
export interface ReleaseAccepted {
  version: string;
  /** `sha256:` of its signed manifest: what other nodes may be asked to take from the grid's release store. */
  digest: string;
  from: string;
  signers: string[];
  /** It is in the grid's release store (the node is part of a cluster and stored it, or fetched it from there). */
  stored: boolean;
}

/** A volume on this node: whose it is, how big, who mounts it, and when it goes when no blueprint lists it. */
export interface VolumeStatus {
  name: string;
  owner: string;
  blueprint: string;
  kind: 'filesystem' | 'block';
  sizeBytes: number;
  usedBytes: number;
  /** The desired workloads of its blueprint that mount it (or take it as a disk). */
  attachedTo: string[];
  /** ready: mounted (or a disk file) and listed; unmounted: listed, not mounted yet; released: no longer listed, kept until deleteAt. */
  state: 'ready' | 'unmounted' | 'released';
  deleteAt: string | null;
}

export interface SubmitResult {
  name: string;
  owner: string;
  version: number;
  deleted: boolean;
}

/** One sample of a workload's use: CPU in cores (the mean since the previous sample) and memory. */
export interface UsageSample {
  at: string;
  cpu: number;
  memoryBytes: number;
}

export interface WorkloadUsageSeries {
  blueprint: string;
  workload: string;
  kind: string;
  /** Oldest first, the last hour. */
  samples: UsageSample[];
}

/** What the web console reaches inside an owner's workloads on this node (appliance/console.ts). */
export interface ConsoleAccess {
  /**
   * A terminal into a running workload of `owner`: a shell in a container, the serial
   * console of a VM. NOT_FOUND (not the owner's, or not here), POLICY (policy.terminals),
   * CONFLICT (it does not run), UNAVAILABLE (the driver cannot).
   */
  openTerminal(owner: string, blueprint: string, workload: string, size: TerminalOptions): Promise<TerminalSession>;
  /** CPU and memory of each of the owner's workloads here over the last hour. */
  usage(owner: string): WorkloadUsageSeries[];
  /** The latest sample of every workload (for /metrics). */
  latestUsage(): Array<{ owner: string; blueprint: string; workload: string; sample: UsageSample }>;
}

/** The appliance as the API sees it. Methods throw ZoneError for the client's mistakes. */
export interface Appliance {
  /** Checks this node's read and owner tokens (its id is their audience) and remembers their nonces. */
  readonly tokens: TokenChecker;
  nodeInfo(): Promise<NodeInfo>;
  /** Verifies, admits and durably stores a signed blueprint (parsed JSON/YAML value). */
  submit(blueprint: unknown): Promise<SubmitResult>;
  /** What a blueprint must meet here (trust policy, node id), for checks made before submit(): the API verifies bodies in worker threads. */
  verificationContext(): { policy: TrustPolicy; nodeId: string };
  listBlueprints(): BlueprintStatus[];
  /** The volumes on this node (of one owner when given), with what they use. */
  listVolumes(owner?: string): Promise<VolumeStatus[]>;
  /** By name; `owner` narrows when two owners use the same name. */
  getBlueprint(name: string, owner?: string): BlueprintStatus | null;
  /** Stored events after `after` (a seq), oldest first. */
  events(options: { after?: number; blueprint?: string; limit?: number }): ZoneEvent[];
  /** Live events; returns the unsubscribe function. */
  onEvent(listener: (event: ZoneEvent) => void): () => void;
  logs(blueprint: string, workload: string, options: { follow: boolean; tail?: number; owner?: string }): Promise<Readable>;
  /** The owner's shared files (`/zone/fs`); ZoneError UNAVAILABLE without the pseudokernel. */
  gridFs(owner: string): Promise<GridFs>;
  /** Every workload of the owner on every node; ZoneError UNAVAILABLE without the pseudokernel. */
  gridProc(owner: string): Promise<ProcEntry[]>;
  /** Every pipe of the owner on the grid and how far behind its consumer is; ZoneError UNAVAILABLE without the pseudokernel. */
  gridPipes(owner: string): Promise<PipeLag[]>;
  /**
   * Stops and starts again a workload of the caller's on `node` (this one, or another of
   * the grid, asked over NATS with the caller's token, made for that node). NOT_FOUND: no such workload;
   * CONFLICT: it is being changed.
   */
  gridRestart(caller: { owner: string; token: string }, node: string, blueprint: string, workload: string): Promise<void>;
  /** Verifies and unpacks an uploaded release bundle, then has the supervisor switch to it (absent: this appliance takes none). */
  installRelease?(bundle: Readable): Promise<ReleaseAccepted>;
  /** Takes release `ref` (a version or `sha256:` digest) from the grid's release store, as an upload of it. */
  installStoredRelease?(ref: string): Promise<ReleaseAccepted>;
  /** The keys whose read tokens may upload a release. */
  releaseUploaders?(): string[];
  /** The grid's image store (uploads, listing); null or absent when this node has none (no pseudokernel). */
  readonly images?: ImageService | null;
  /** Terminals and usage for the web console; absent, the console has neither. */
  readonly console?: ConsoleAccess;
}

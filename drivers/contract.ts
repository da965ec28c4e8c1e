// The driver contract (after Nomad's task drivers). The engine depends on this file
// only; a new driver is a new folder that implements `Driver`.
import type { Readable, Writable } from 'node:stream';
import type { NormalizedWorkload } from '../blueprints/normalize.ts';
import type { SealedPlace } from '../blueprints/seal.ts';

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
   * A host directory to bind-mount at `/zone` (the pseudokernel's mount for this
   * workload). Not part of the definition, so not of the spec hash: a workload made
   * with or without it is the same workload.
   */
  zoneMount?: string;
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

export interface Fingerprint {
  kind: string;
  available: boolean;
  /** Why not, when `available` is false (the engine is not reachable, ...). */
  reason?: string;
  version?: string;
  /** Facts of the engine worth showing in GET /v1/node (api version, accelerator, ...). */
  details: Record<string, string | number | boolean>;
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
  fingerprint(): Promise<Fingerprint>;
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
  attach(id: string, options?: AttachOptions): Promise<AttachedStreams>;
  /** Optional: a shell in the running workload, with a TTY (containers: the shell its image has). */
  exec?(id: string, options: TerminalOptions): Promise<TerminalSession>;
  /** Optional: the running workload's serial console (VMs). */
  console?(id: string): Promise<TerminalSession>;
  /** Optional: what it uses now; null when it does not run. */
  usage?(id: string): Promise<WorkloadUsage | null>;
  close(): Promise<void>;
}

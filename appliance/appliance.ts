// The appliance: the one object the API talks to. submit() is the front door
// (verify -> admit -> store durably -> wake the engine); the engine does the rest.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { verifyBlueprintWithSigners } from '../blueprints/verify.ts';
import { openSealed } from '../blueprints/seal.ts';
import { TokenChecker } from '../lib/tokens.ts';
import { restartPath } from './pseudokernel/proc/node-control.ts';
import type { TrustPolicy } from '../blueprints/policy.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import type { Driver, DriverContext } from '../drivers/contract.ts';
import type { NetworkDriver, ObservedVolume, VolumeProvider } from '../drivers/contract.ts';
import { admitBlueprint, capacityView } from './admission.ts';
import { DATA_DIR_MODE, type NodeConfig } from './config.ts';
import { desiredWorkloads, isLive } from './engine/desired.ts';
import { volumeId, workloadId } from '../drivers/names.ts';
import { imageKindOf, virtioDiskName } from '../drivers/libvirt/spec.ts';
import { parseSize } from '../blueprints/units.ts';
import { Reconciler } from './engine/reconciler.ts';
import type { BackoffPolicy } from '../lib/backoff.ts';
import { ZoneError } from '../lib/errors.ts';
import { checkVmImageFiles } from './vm-images.ts';
import { USAGE_PERIOD_MS, WorkloadConsole } from './console.ts';
import { EventLog } from './events.ts';
import { measureHostCapacity } from './host.ts';
import { loadOrCreateIdentity, type NodeIdentity } from './identity.ts';
import { withholdUnauthorized } from './withhold.ts';
import { createLogger } from './logger.ts';
import type { GridFs, PipeLag, ProcEntry, ProcVolume } from './pseudokernel/interfaces.ts';
import { Pseudokernel, type PseudokernelSettings } from './pseudokernel/pseudokernel.ts';
import { Store, type StoredBlueprint, type WorkloadRecord } from './store.ts';
import { lazyImageSource, openNodeImages } from './images/node-images.ts';
import { registryAccess } from './images/registries.ts';
import type { ImageService } from './images/service.ts';
import type { Appliance, BlueprintStatus, Capacity, NodeInfo, ReleaseAccepted, SubmitResult, VolumeStatus, WorkloadStatus, ZoneEvent } from './types.ts';
import { NodeRelease } from './release/node-release.ts';
import { releaseGridOf, type ReleaseGrid } from './release/grid-releases.ts';
import type { ReadyReport } from './supervisor/gate.ts';
import type { SupervisorLink } from './supervisor/child.ts';
import { volumesOf } from './engine/volumes.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** A workload by its owner, blueprint and name (on this node). */
type OwnedWorkload = { owner: string; blueprint: string; workload: string };

export interface ApplianceOptions {
  config: NodeConfig;
  trustPolicy: TrustPolicy;
  /** Builds the drivers once the node's identity is known (see appliance/drivers.ts). */
  drivers: (ctx: DriverContext) => Driver[];
  /** The overlay network driver (see appliance/drivers.ts); none: blueprints' networks are not made here. */
  networks?: (ctx: DriverContext) => NetworkDriver;
  /** The volume provider (see appliance/drivers.ts); none: blueprints' volumes are not made here. */
  volumes?: (ctx: DriverContext) => VolumeProvider;
  /**
   * Runs the pseudokernel (a local nats-server at `config.nats`; the workloads' process
   * rows, a /zone in every container, the blueprints' pipes); none: the node runs without
   * it (tests that do not need it).
   */
  pseudokernel?: PseudokernelSettings;
  logger?: Logger;
  backoff?: BackoffPolicy;
  /** The machine's size; measured when absent (tests pass one). */
  hostCapacity?: Capacity;
  /** How many unexpired tokens the node remembers, and its clock (tests set them). */
  tokens?: { replayCapacity?: number; clock?: () => number };
  /** The clock of the engine and of expiry (default: the wall clock; tests pass their own). */
  clock?: () => Date;
  /** How often workloads' use is sampled: CPU and memory for the console, volumes' data for /zone/proc (default 15 s). */
  usagePeriodMs?: number;
  /** The supervisor that runs this process (appliance/supervisor/child.ts); none: it cannot switch releases. */
  supervisor?: SupervisorLink | null;
}

function toStatus(r: WorkloadRecord): WorkloadStatus {
  return {
    blueprint: r.blueprint, owner: r.owner, workload: r.workload, kind: r.kind, state: r.state, health: r.health,
    restarts: r.restarts, lastExit: r.lastExit, lastError: r.lastError, since: r.since, nextRestartAt: r.nextRestartAt,
  };
}

export class ZoneAppliance implements Appliance {
  private readonly started = Date.now();
  /** Stops the pseudokernel following the event log. */
  private unfollow: (() => void) | null = null;
  readonly tokens: TokenChecker;
  readonly console: WorkloadConsole;
  private readonly release: NodeRelease;
  private readonly releaseGrid: ReleaseGrid | null;

  constructor(
    readonly identity: NodeIdentity,
    private readonly options: ApplianceOptions,
    private readonly store: Store,
    private readonly eventLog: EventLog,
    private readonly drivers: ReadonlyMap<string, Driver>,
    private readonly networks: NetworkDriver | null,
    readonly reconciler: Reconciler,
    private readonly hostCapacity: Capacity,
    readonly logger: Logger,
    /** Null when not asked for; present but unavailable when nats-server did not start. */
    readonly pseudokernel: Pseudokernel | null = null,
    /** The grid's image store: null without a running pseudokernel. */
    private readonly nodeImages: { service: ImageService; close(): Promise<void> } | null = null,
  ) {
    this.tokens = new TokenChecker(identity.id, options.tokens);
    // In a cluster, releases travel through the grid's release store (replicated as the image store is).
    const cluster = options.config.nats.cluster;
    this.releaseGrid = pseudokernel?.available && cluster
      ? releaseGridOf(() => pseudokernel.server.connect(`zone-${identity.id}-releases`), Math.min(3, cluster.routes.length + 1))
      : null;
    this.release = new NodeRelease({
      version: VERSION, node: identity.id, dataDir: options.config.dataDir, policy: options.trustPolicy, supervisor: options.supervisor ?? null, events: eventLog, logger, grid: this.releaseGrid,
    });
    this.console = new WorkloadConsole({
      node: identity.id, drivers, blueprints: () => this.listBlueprints(), terminals: options.config.policy.terminals, logger,
      ...(options.usagePeriodMs ? { usagePeriodMs: options.usagePeriodMs } : {}),
    });
    if (pseudokernel) this.followWorkloads(pseudokernel);
    // The other nodes pass on the owner's token, which must be made for this node and
    // this restart (see node-control.ts): a node never acts for an owner on another node's word.
    if (pseudokernel?.available) {
      pseudokernel.serveRestarts(async (r) => this.restartOwned(
        this.tokens.checkOwner(r.token, { method: 'POST', path: restartPath(identity.id, r.blueprint, r.workload) }), r.blueprint, r.workload));
    }
  }

  async nodeInfo(): Promise<NodeInfo> {
    const view = capacityView(this.hostCapacity, this.options.config.overcommit, this.liveDocuments(), this.reconciler.heldVolumes());
    return {
      id: this.identity.id,
      signingKey: this.identity.signing.publicKey,
      boxKey: this.identity.box.publicKey,
      version: VERSION,
      uptimeSeconds: Math.floor((Date.now() - this.started) / 1000),
      drivers: [
        ...await Promise.all([...this.drivers.values(), ...(this.networks ? [this.networks] : [])].map((d) => d.fingerprint().catch((err: Error) => ({ kind: d.kind, available: false, reason: err.message, details: {} })))),
        ...(this.pseudokernel ? [this.pseudokernel.fingerprint()] : []),
      ],
      capacity: { total: view.total, reserved: view.reserved, free: view.free },
      ...(this.reconciler.volumes ? { volumes: await this.volumeTotals() } : {}),
      release: this.release.info(),
    };
  }

  installRelease(bundle: Readable): Promise<ReleaseAccepted> {
    return this.release.install(bundle);
  }

  installStoredRelease(ref: string): Promise<ReleaseAccepted> {
    return this.release.installStored(ref);
  }

  releaseUploaders(): string[] {
    return this.release.uploaderKeys();
  }

  /** What the supervisor's health gate reads, once the first full reconcile pass after start() is done. */
  startupHealth(url: string): Promise<Omit<ReadyReport, 'type'>> {
    const pseudokernel = !this.pseudokernel ? 'absent' : this.pseudokernel.available ? 'connected' : 'down';
    return this.release.health(this.reconciler.idle(), url, pseudokernel);
  }

  async submit(input: unknown): Promise<SubmitResult> {
    // Synchronous from the version check to the write: two submits cannot both pass as "newer".
    const { blueprint: bp, signers } = verifyBlueprintWithSigners(input, {
      policy: this.options.trustPolicy,
      nodeId: this.identity.id,
      storedVersion: (owner, name) => this.store.storedVersion(owner, name),
      now: this.now(),
      boxSecretKey: this.identity.box.secretKey,
    });
    const previous = this.store.storedVersion(bp.owner, bp.name);
    admitBlueprint(bp, {
      total: this.hostCapacity,
      overcommit: this.options.config.overcommit,
      policy: this.options.config.policy,
      admitted: this.liveDocuments(),
      // As the latest pass listed them: submit stays synchronous from the version check to the write.
      held: this.reconciler.heldVolumes(),
    });
    checkVmImageFiles(bp, this.options.config.policy);
    // The blueprint and its event in one write: a full disk refuses both (NO_SPACE, 507).
    this.store.transaction(() => {
      this.store.putBlueprint(bp, new Date().toISOString());
      this.eventLog.record({
        owner: bp.owner, blueprint: bp.name, workload: null,
        from: previous === null ? null : `v${previous}`, to: bp.delete ? 'deleted' : `v${bp.version}`,
        reason: `${bp.delete ? 'tombstone' : `version ${bp.version}`} accepted, signed by ${signers.join(', ')}`,
      });
    });
    this.logger.info({ blueprint: bp.name, owner: bp.owner, version: bp.version, deleted: bp.delete ?? false, signers }, 'blueprint accepted');
    this.reconciler.wake();
    return { name: bp.name, owner: bp.owner, version: bp.version, deleted: bp.delete ?? false };
  }

  verificationContext(): { policy: TrustPolicy; nodeId: string } {
    return { policy: this.options.trustPolicy, nodeId: this.identity.id };
  }

  listBlueprints(): BlueprintStatus[] {
    const statuses = [...this.reconciler.statuses().values()];
    return this.store.blueprints().map((b) => this.blueprintStatus(b, statuses));
  }

  /** Every volume here with the bytes its data uses. */
  private async volumesHere(): Promise<(ObservedVolume & { usedBytes: number })[]> {
    const provider = this.reconciler.volumes;
    if (!provider) return [];
    return Promise.all((await provider.list()).map(async (v) => ({ ...v, usedBytes: await provider.usage(v.id).catch(() => 0) })));
  }

  private async volumeTotals(): Promise<NonNullable<NodeInfo['volumes']>> {
    const volumes = await this.volumesHere().catch(() => []);
    return { count: volumes.length, sizeBytes: volumes.reduce((n, v) => n + v.sizeBytes, 0), usedBytes: volumes.reduce((n, v) => n + v.usedBytes, 0) };
  }

  async listVolumes(owner?: string): Promise<VolumeStatus[]> {
    const desired = desiredWorkloads(this.identity.id, this.liveStored());
    const retentionMs = this.options.config.volumes.retentionMs;
    return (await this.volumesHere()).filter((v) => owner === undefined || v.owner === owner).map((v) => ({
      name: v.volume, owner: v.owner, blueprint: v.blueprint, kind: v.kind, sizeBytes: v.sizeBytes, usedBytes: v.usedBytes,
      attachedTo: desired.filter((d) => d.owner === v.owner && d.blueprint === v.blueprint && volumesOf(d).includes(v.volume)).map((d) => d.workload),
      state: v.releasedAt !== null ? 'released' : v.path === null ? 'unmounted' : 'ready',
      deleteAt: v.releasedAt === null ? null : new Date(new Date(v.releasedAt).getTime() + retentionMs).toISOString(),
    }));
  }

  getBlueprint(name: string, owner?: string): BlueprintStatus | null {
    const found = this.store.blueprints().filter((b) => b.name === name && (owner === undefined || b.owner === owner));
    if (found.length > 1) throw new ZoneError('INVALID', `${found.length} owners have a blueprint named ${name}: give the owner`, '/owner');
    return found[0] ? this.blueprintStatus(found[0], [...this.reconciler.statuses().values()]) : null;
  }

  events(options: { after?: number; blueprint?: string; limit?: number }): ZoneEvent[] {
    return this.store.events(options);
  }

  onEvent(listener: (event: ZoneEvent) => void): () => void {
    return this.eventLog.subscribe(listener);
  }

  async logs(blueprint: string, workload: string, options: { follow: boolean; tail?: number; owner?: string }): Promise<Readable> {
    const bp = this.getBlueprint(blueprint, options.owner);
    const stored = bp && this.store.blueprints().find((b) => b.name === bp.name && b.owner === bp.owner);
    const w = stored?.document.workloads?.find((x) => x.name === workload);
    if (!stored || !w) throw new ZoneError('NOT_FOUND', `no workload ${workload} in blueprint ${blueprint} on this node`, '/workload');
    const driver = this.drivers.get(w.kind);
    if (!driver) throw new ZoneError('UNAVAILABLE', `no ${w.kind} driver on this node`);
    return driver.logs(workloadId(this.identity.id, stored.owner, stored.name, w.name), { follow: options.follow, ...(options.tail !== undefined ? { tail: options.tail } : {}) });
  }

  get images(): ImageService | null {
    return this.nodeImages?.service ?? null;
  }

  async gridFs(owner: string): Promise<GridFs> {
    return this.runningPseudokernel().gridFs(owner);
  }

  async gridProc(owner: string): Promise<ProcEntry[]> {
    return (await this.runningPseudokernel().procTable(owner)).list();
  }

  async gridPipes(owner: string): Promise<PipeLag[]> {
    return this.runningPseudokernel().ownerPipes(owner);
  }

  async gridRestart(caller: { owner: string; token: string }, node: string, blueprint: string, workload: string): Promise<void> {
    if (node === this.identity.id) return this.restartOwned(caller.owner, blueprint, workload);
    await this.runningPseudokernel().requestRestart(node, { token: caller.token, blueprint, workload });
  }

  /** Starts the engine (adopting what runs, repairing what does not). */
  start(): void {
    this.reconciler.start();
    this.console.start();
  }

  /**
   * Stops the engine, then the pseudokernel (its pipe ends still use the drivers), then
   * the drivers, then the store. Workloads keep running.
   */
  async close(): Promise<void> {
    await this.console.stop();
    await this.reconciler.stop();
    this.unfollow?.();
    await this.nodeImages?.close().catch((err: unknown) => this.logger.warn({ err }, 'image store close failed'));
    await this.releaseGrid?.close().catch((err: unknown) => this.logger.warn({ err }, 'release store close failed'));
    await this.pseudokernel?.close().catch((err: unknown) => this.logger.warn({ err }, 'pseudokernel close failed'));
    await Promise.all([...this.drivers.values()].map((d) => d.close().catch((err: unknown) => this.logger.warn({ err, driver: d.kind }, 'driver close failed'))));
    this.store.close();
  }

  /**
   * Every state change of a workload here is an event: its row in the owner's process
   * table follows it (the records are already updated when the event is recorded). Rows
   * of workloads that did not change since the last start are published once here, and
   * rows of workloads this node no longer has are dropped. (A feed rather than a planned
   * resource: a row is the workload's record as published, nothing the engine makes
   * real or depends on; the event log is the engine's output, in the order of changes.)
   */
  private followWorkloads(pk: Pseudokernel): void {
    const recordOf = (owner: string, blueprint: string, workload: string) => this.reconciler.statuses().get(workloadId(this.identity.id, owner, blueprint, workload)) ?? null;
    const volumes = (w: OwnedWorkload) => () => this.procVolumes(w);
    const unsubscribe = this.eventLog.subscribe((event) => {
      if (event.owner === null || event.blueprint === null || event.workload === null) return;
      const identity = { owner: event.owner, blueprint: event.blueprint, workload: event.workload };
      pk.workloadChanged(identity, event.to === 'removed' ? null : recordOf(identity.owner, identity.blueprint, identity.workload), volumes(identity));
    });
    // What a volume's data uses changes without an event: the rows of workloads with
    // volumes are measured again each period (published only when something changed).
    const refresh = setInterval(() => {
      const withVolumes = new Set(this.store.blueprints().filter((b) => b.document.volumes?.length).map((b) => JSON.stringify([b.owner, b.name])));
      for (const r of this.reconciler.statuses().values()) if (withVolumes.has(JSON.stringify([r.owner, r.blueprint]))) pk.workloadChanged(r, r, volumes(r));
    }, this.options.usagePeriodMs ?? USAGE_PERIOD_MS);
    refresh.unref();
    this.unfollow = () => {
      clearInterval(refresh);
      unsubscribe();
    };
    for (const r of this.reconciler.statuses().values()) pk.workloadChanged(r, r, volumes(r));
    const owners = [...this.store.blueprints().map((b) => b.owner), ...[...this.reconciler.statuses().values()].map((r) => r.owner)];
    pk.sweep(owners, (owner, blueprint, workload) => recordOf(owner, blueprint, workload) !== null);
  }

  /** The volumes a workload of this node mounts, as its /zone/proc row shows them (none when it has none or the node has no volumes). */
  private async procVolumes(w: OwnedWorkload): Promise<ProcVolume[]> {
    const provider = this.reconciler.volumes;
    const stored = this.store.blueprints().find((b) => b.owner === w.owner && b.name === w.blueprint);
    if (!provider || !stored?.document.volumes?.length || !isLive(stored, this.now())) return [];
    const spec = desiredWorkloads(this.identity.id, [stored]).find((d) => d.workload === w.workload);
    if (!spec) return [];
    const d = spec.definition;
    // A VM's block volumes are its virtio disks after the boot disk (vda) when it boots a disk image.
    const first = d.kind === 'vm' && imageKindOf(d.image) === 'disk' ? 1 : 0;
    const uses = [
      ...(d.volumeMounts ?? []),
      ...(d.disks ?? []).map((disk, i) => ({ volume: disk.volume, target: `/dev/${virtioDiskName(first + i)}`, readOnly: false })),
    ];
    return Promise.all(uses.map(async (u) => {
      const id = volumeId(this.identity.id, w.owner, w.blueprint, u.volume);
      const declared = stored.document.volumes?.find((v) => v.name === u.volume);
      const observed = await provider.inspect(id).catch(() => null);
      return {
        name: u.volume, kind: observed?.kind ?? declared?.kind ?? 'filesystem',
        sizeBytes: observed?.sizeBytes ?? (declared ? parseSize(declared.size) : 0),
        usedBytes: observed ? await provider.usage(id).catch(() => 0) : 0,
        target: u.target, readOnly: u.readOnly,
      };
    }));
  }

  private async restartOwned(owner: string, blueprint: string, workload: string): Promise<void> {
    const what = `${blueprint}/${workload}`;
    const outcome = this.reconciler.restart({ owner, blueprint, workload }, 'asked by its owner');
    if (outcome === 'unknown') throw new ZoneError('NOT_FOUND', `no workload ${what} of this owner on node ${this.identity.id}`, '/params/workload');
    if (outcome === 'busy') throw new ZoneError('CONFLICT', `${what} on node ${this.identity.id} is being changed right now; try again once it settles`, '/params/workload');
    this.logger.info({ blueprint, workload }, 'restart asked by the owner');
  }

  private runningPseudokernel(): Pseudokernel {
    const pk = this.pseudokernel;
    if (!pk) throw new ZoneError('UNAVAILABLE', 'this node runs without the pseudokernel (no grid files or process table)');
    if (!pk.available) throw new ZoneError('UNAVAILABLE', `the pseudokernel is unavailable: ${pk.fingerprint().reason ?? 'stopped'}`);
    return pk;
  }

  private now(): Date {
    return this.options.clock?.() ?? new Date();
  }

  /** What admitted blueprints reserve: neither tombstones nor expired ones hold capacity. */
  private liveDocuments(): Blueprint[] {
    return this.liveStored().map((b) => b.document);
  }

  private liveStored(): StoredBlueprint[] {
    const now = this.now();
    return this.store.blueprints().filter((b) => isLive(b, now));
  }

  private blueprintStatus(b: StoredBlueprint, records: readonly WorkloadRecord[]): BlueprintStatus {
    const mine = records.filter((r) => r.owner === b.owner && r.blueprint === b.name);
    const known = new Set(mine.map((r) => r.workload));
    // Desired workloads the engine has not reached yet show as pending.
    const pending = desiredWorkloads(this.identity.id, isLive(b, this.now()) ? [b] : []).filter((d) => !known.has(d.workload)).map((d): WorkloadStatus => ({
      blueprint: b.name, owner: b.owner, workload: d.workload, kind: d.definition.kind, state: 'pending', health: null,
      restarts: 0, lastExit: null, lastError: null, since: b.acceptedAt, nextRestartAt: null,
    }));
    return {
      name: b.name, owner: b.owner, version: b.version, deleted: b.deleted, acceptedAt: b.acceptedAt,
      workloads: [...mine.map(toStatus), ...pending].sort((x, y) => x.workload.localeCompare(y.workload)),
    };
  }
}

/** Opens (or creates) the node's identity and store, builds the drivers; call start() to run the engine. */
export async function createAppliance(options: ApplianceOptions): Promise<ZoneAppliance> {
  const { config } = options;
  mkdirSync(config.dataDir, { recursive: true, mode: DATA_DIR_MODE });
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const identity = loadOrCreateIdentity(config.dataDir);
  const hostCapacity = options.hostCapacity ?? await measureHostCapacity(config.dataDir);
  const store = new Store(join(config.dataDir, 'zone.db'), config.eventsLimit);
  const eventLog = new EventLog(store, logger);
  withholdUnauthorized(store, options.trustPolicy, eventLog, logger);
  const driversDir = join(config.dataDir, 'drivers');
  mkdirSync(driversDir, { recursive: true });
  let nodeImages: Awaited<ReturnType<typeof openNodeImages>> = null;
  const ctx: DriverContext = {
    node: identity.id,
    dataDir: driversDir,
    openSecret: (sealed, place) => openSealed(sealed, identity.box.secretKey, { ...place, node: identity.id }),
    ...(options.pseudokernel ? { images: lazyImageSource(() => nodeImages?.service ?? null) } : {}),
    registries: registryAccess(config.registries, {
      signingKey: identity.signing.publicKey,
      open: (sealed, place) => openSealed(sealed, identity.box.secretKey, { ...place, node: identity.id }),
    }),
    // A pull's progress is the workload's event (what the engine is doing for it), not a state of its
    // own; an event the store cannot take (a full disk) does not stop the pull.
    pullProgress: (who, line) => {
      try {
        eventLog.record({ ...who, from: null, to: 'image pull', reason: line });
      } catch (err) {
        logger.warn({ err, ...who }, 'image pull progress not recorded');
      }
    },
  };
  const drivers = new Map(options.drivers(ctx).map((d) => [d.kind, d]));
  const networks = options.networks?.(ctx) ?? null;
  const volumes = options.volumes?.(ctx) ?? null;
  let pseudokernel: Pseudokernel | null = null;
  if (options.pseudokernel) {
    pseudokernel = new Pseudokernel({
      ...options.pseudokernel, node: identity.id, dataDir: config.dataDir, nats: config.nats, limits: config.limits, drivers, logger,
      resident: (owner) => store.blueprints().some((b) => b.owner === owner),
    });
    // Before the engine starts: the containers it makes get /zone when it is up.
    await pseudokernel.start();
    nodeImages = await openNodeImages({
      node: identity.id, config, trustPolicy: options.trustPolicy, pseudokernel, blueprints: () => store.blueprints(), logger,
      localImages: [...drivers.values()].flatMap((d) => (d.localImages ? [d.localImages] : [])), ...(options.clock ? { clock: options.clock } : {}),
    });
  }
  const pk = pseudokernel;
  // The pseudokernel is the provider of /zone mounts and pipe ends the engine plans.
  const reconciler = new Reconciler({
    node: identity.id, store, drivers, events: eventLog, logger, ...(networks ? { networks } : {}),
    ...(volumes ? { volumes: { provider: volumes, retentionMs: config.volumes.retentionMs } } : {}),
    resyncMs: config.reconcile.resyncMs, concurrency: config.reconcile.concurrency,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(pk ? { mounts: pk, pipeEnds: pk } : {}),
  });
  return new ZoneAppliance(identity, options, store, eventLog, drivers, networks, reconciler, hostCapacity, logger, pseudokernel, nodeImages);
}

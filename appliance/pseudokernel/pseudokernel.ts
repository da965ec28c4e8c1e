// The pseudokernel as the appliance owns it: the node's supervised nats-server and one
// client connection to it, and what the appliance feeds through them (its workloads'
// rows in their owners' process tables, a /zone mount per workload, the local ends of
// the blueprints' pipes). Optional and never
// fatal: when nats-server is missing or does not start, the appliance runs its workloads
// without it and says why in GET /v1/node.
//
// /zone: every container's mount is at DATA/zone/<workload id>, bound into the container
// with rslave propagation, which Docker allows only from a shared or slave mount: so
// DATA/zone is made a shared bind mount of itself first. A mount ends when its workload
// is removed and when the appliance closes; a container still running then sees ENOTCONN
// in /zone until its next start, which mounts it again (the kernel does not carry a new
// mount into the old bind). A VM's mount is the same directory, which the libvirt driver
// shares with the guest over 9p rather than binding it.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  pipeEndKey, type Driver, type Fingerprint, type MountProvider, type PipeEnd, type PipeEndProvider, type WorkloadSpec,
} from '../../drivers/contract.ts';
import { DEFAULT_LIMITS, type NodeConfig, type NodeLimits } from '../config.ts';
import type { WorkloadRecord } from '../store.ts';
import type { PipeLag, ProcEntry, ProcVolume } from './interfaces.ts';
import { isMounted, mountZone, type ZoneMount } from './mount/mount.ts';
import { NatsGridFs } from './fs/grid-fs.ts';
import { admitOwner } from './nats/owner-quota.ts';
import { NatsServer } from './nats/nats-server.ts';
import { requestRestart, serveRestarts, type RestartRequest } from './proc/node-control.ts';
import type { LocalPipeEnd } from '../../blueprints/pipes.ts';
import { PipeRunner } from './pipes/runner.ts';
import { FifoRelay } from './fifos/relay.ts';
import { FIFO_WAITERS_PATH } from './fifos/waiters.ts';
import type { PipeWorkload } from './pipes/workload.ts';
import { NatsProcTable } from './proc/table.ts';

export interface PseudokernelSettings {
  /** The nats-server executable; `nats-server` from $PATH by default. */
  binary?: string;
  /** How long the start waits for JetStream; nats-server's supervisor default otherwise. */
  startTimeoutMs?: number;
  /** How often the pipe ends look again without driver events; the runner's default otherwise. */
  pipeResyncMs?: number;
  /** The fifo-waiters helper (FIFO_WAITERS_PATH by default); without it, /zone FIFOs join the openers of one mount only. */
  fifoWaiters?: string;
}

export interface PseudokernelOptions extends PseudokernelSettings {
  /** This node's id: the server's name and the `node` of its process rows. */
  node: string;
  /** The appliance's data directory: the server keeps its store in `nats/` below it. */
  dataDir: string;
  nats: NodeConfig['nats'];
  /** JetStream's and the owners' bounds (the config's defaults otherwise). */
  limits?: NodeLimits;
  /** Whether a blueprint of `owner` is on this node: such an owner always gets storage. */
  resident?: (owner: string) => boolean;
  /** The workload drivers, by kind: where a pipe end's workload runs. */
  drivers: ReadonlyMap<string, Driver>;
  logger: Logger;
}

const run = promisify(execFile);

/** The kind it shows as in GET /v1/node's `drivers`. */
const PSEUDOKERNEL_KIND = 'pseudokernel';

export class Pseudokernel implements MountProvider, PipeEndProvider {
  readonly server: NatsServer;
  private readonly limits: NodeLimits;
  private nc: NatsConnection | null = null;
  /** Why it is not available (null once it started). */
  private unavailable: string | null = 'not started';
  private readonly procTables = new Map<string, Promise<NatsProcTable>>();
  private readonly gridFiles = new Map<string, Promise<NatsGridFs>>();
  /** By workload id. */
  private readonly mounts = new Map<string, Promise<ZoneMount | null>>();
  /** The mounts made, host directory by workload id. */
  private readonly mountpoints = new Map<string, string>();
  /** DATA/zone, once it is the shared mount the containers' /zone binds come from. */
  private zoneRoot: string | null = null;
  private pipes: PipeRunner | null = null;
  /** Joins the openers of /zone FIFOs across mounts and nodes. */
  private fifos: FifoRelay | null = null;
  private restarts: Subscription | null = null;
  /** The ends that run (as the engine last set them), by pipeEndKey. */
  private endsSet = new Map<string, PipeEnd>();
  /** setEnds calls one after the other. */
  private pipesSet: Promise<void> = Promise.resolve();
  private sweeping: Promise<void> = Promise.resolve();
  /** One chain per workload, so its rows reach the table in the order of its changes. */
  private readonly publishing = new Map<string, Promise<void>>();
  /** The row this node published last of each of its workloads (JSON), by owner|blueprint|workload. */
  private readonly lastRows = new Map<string, string>();

  constructor(private readonly o: PseudokernelOptions) {
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.server = new NatsServer({
      dataDir: join(o.dataDir, 'nats'), serverName: o.node, host: o.nats.host, port: o.nats.port, logger: o.logger,
      // A node of a cluster runs its pseudokernel before its peers are back: JetStream follows.
      ...(o.nats.cluster ? { cluster: o.nats.cluster, quorumMayFollow: true } : {}),
      maxFileStoreBytes: this.limits.jetstreamFileBytes,
      maxMemoryStoreBytes: this.limits.jetstreamMemoryBytes,
      ...(o.binary ? { binary: o.binary } : {}),
      ...(o.startTimeoutMs ? { startTimeoutMs: o.startTimeoutMs } : {}),
    });
  }

  get available(): boolean {
    return this.nc !== null;
  }

  /** Starts nats-server and connects; a failure is logged and kept as the reason, never thrown. */
  async start(): Promise<void> {
    // Even without nats-server: containers made with /zone bind it at every start.
    await this.shareZoneRoot().catch((err: unknown) => this.o.logger.error({ err }, 'pseudokernel: DATA/zone could not be made a shared mount; containers get no /zone'));
    try {
      await this.server.start();
      const nc = await this.server.connect();
      // A port already taken by another node's server (two appliances on one host with the
      // same nats.listen) would otherwise pass for ours: our child exits, theirs answers.
      const answering = nc.info?.server_name;
      if (answering !== this.o.node) {
        await nc.close();
        throw new Error(`${this.server.url} is answered by another nats-server (${answering ?? 'unnamed'}), not this node's; give nats.listen (or $ZONE_NATS_LISTEN) a free port`);
      }
      this.nc = nc;
      this.pipes = new PipeRunner({
        nc: this.nc, logger: this.o.logger, locate: (end) => this.locate(end),
        ...(this.o.pipeResyncMs ? { resyncMs: this.o.pipeResyncMs } : {}),
      });
      this.fifos = await this.startFifoRelay(nc);
      this.unavailable = null;
    } catch (err) {
      this.unavailable = (err as Error).message;
      this.o.logger.error({ err, url: this.server.url }, 'pseudokernel unavailable: nats-server did not start; workloads run without /zone, proc and pipes');
      await this.server.stop().catch(() => undefined);
    }
  }

  fingerprint(): Fingerprint {
    if (!this.nc) return { kind: PSEUDOKERNEL_KIND, available: false, reason: this.unavailable ?? 'stopped', details: {} };
    return { kind: PSEUDOKERNEL_KIND, available: true, details: { nats: this.server.url, natsPid: this.server.pid ?? 0 } };
  }

  /** The pipe ends that run here; null while pipes cannot run (nats-server is not up). */
  ends(): readonly PipeEnd[] | null {
    return this.pipes ? [...this.endsSet.values()] : null;
  }

  /** Runs exactly these pipe ends from now on (the engine plans them once their workloads exist). */
  setEnds(ends: readonly PipeEnd[]): Promise<void> {
    const pipes = this.pipes;
    if (!pipes) return Promise.resolve();
    const set = this.pipesSet.then(async () => {
      // Known before the loops start, so each finds its workload's driver.
      this.endsSet = new Map([...this.endsSet, ...ends.map((e) => [pipeEndKey(e), e] as const)]);
      await pipes.setEnds(ends);
      this.endsSet = new Map(ends.map((e) => [pipeEndKey(e), e]));
    });
    this.pipesSet = set.catch(() => undefined);
    return set;
  }

  /** Answers the other nodes' requests to restart a workload here with `restart`. */
  serveRestarts(restart: (request: RestartRequest) => Promise<void>): void {
    this.restarts?.unsubscribe();
    this.restarts = serveRestarts(this.connection(), this.o.node, restart, this.o.logger);
  }

  /** Asks another node to restart a workload of the request's owner. */
  requestRestart(node: string, request: RestartRequest): Promise<void> {
    return requestRestart(this.connection(), node, request);
  }

  /** Every pipe of the owner on the grid, with what its consumer has still to commit. */
  ownerPipes(owner: string): Promise<PipeLag[]> {
    const pipes = this.pipes;
    if (!pipes) throw this.notRunning();
    return pipes.ownerPipes(owner);
  }

  /** The pipe runner (null while unavailable): its stats say how each local end is doing. */
  get pipeRunner(): PipeRunner | null {
    return this.pipes;
  }

  /** The owner's shared files (made on first use); throws when the pseudokernel is unavailable. */
  gridFs(owner: string): Promise<NatsGridFs> {
    return this.openedFor(this.gridFiles, owner, (nc) => NatsGridFs.open(nc, { owner, replicas: this.replicas, logger: this.o.logger, quota: this.limits }));
  }

  /** A workload whose driver declares `mount` gets a /zone while the pseudokernel runs. */
  wants(spec: WorkloadSpec): boolean {
    return (this.o.drivers.get(spec.definition.kind)?.capabilities.mount ?? false) && this.nc !== null && this.zoneRoot !== null;
  }

  /**
   * Mounts the workload's /zone (when not already). Any failure is logged and resolves
   * null: the workload is made without /zone, and the engine tries again at its next step.
   */
  async mount(spec: WorkloadSpec): Promise<string | null> {
    if (!this.wants(spec) || !this.zoneRoot) return null;
    let mount = this.mounts.get(spec.id);
    if (!mount) {
      mount = this.mountFor(spec, this.zoneRoot);
      this.mounts.set(spec.id, mount);
    }
    const mounted = await mount;
    if (this.mounts.get(spec.id) !== mount) return null;
    if (!mounted) {
      this.mounts.delete(spec.id);
      return null;
    }
    this.mountpoints.set(spec.id, mounted.mountpoint);
    return mounted.mountpoint;
  }

  /** The workload is gone: its /zone is unmounted. */
  async unmount(id: string): Promise<void> {
    const mount = this.mounts.get(id);
    if (!mount) return;
    this.mounts.delete(id);
    const mountpoint = this.mountpoints.get(id);
    if (mountpoint) this.fifos?.removeMount(mountpoint);
    this.mountpoints.delete(id);
    await (await mount)?.unmount().catch((err: unknown) => this.o.logger.warn({ err, workload: id }, '/zone: unmount failed'));
  }

  /** The workloads with a /zone mounted now: the host directory by id. */
  mounted(): ReadonlyMap<string, string> {
    return this.mountpoints;
  }

  /** The owner's process table (made on first use); throws when the pseudokernel is unavailable. */
  procTable(owner: string): Promise<NatsProcTable> {
    return this.openedFor(this.procTables, owner, (nc) => NatsProcTable.open(nc, { owner, replicas: this.replicas, logger: this.o.logger, maxBytes: this.limits.ownerKvBytes }));
  }

  /**
   * A workload of this node changed (`record`) or was forgotten (`record` null, with its
   * identity): its row in the owner's process table follows. `volumes` (read in turn, so
   * rows keep their order) gives the volumes it mounts; a row equal to the one this node
   * published last is not published again. Does nothing while unavailable.
   */
  workloadChanged(identity: { owner: string; blueprint: string; workload: string }, record: WorkloadRecord | null, volumes?: () => Promise<ProcVolume[]>): void {
    if (!this.nc) return;
    const key = `${identity.owner}|${identity.blueprint}|${identity.workload}`;
    const base: ProcEntry | null = record && {
      node: this.o.node, blueprint: record.blueprint, workload: record.workload, kind: record.kind,
      state: record.state, restarts: record.restarts, since: record.since,
    };
    const previous = this.publishing.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const table = await this.procTable(identity.owner);
      if (!base) {
        this.lastRows.delete(key);
        await table.remove(this.o.node, identity.blueprint, identity.workload);
        return;
      }
      const mounted = (await volumes?.()) ?? [];
      const row = mounted.length ? { ...base, volumes: mounted } : base;
      const text = JSON.stringify(row);
      if (this.lastRows.get(key) === text) return;
      await table.publish(row);
      this.lastRows.set(key, text);
    }).catch((err: unknown) => {
      this.o.logger.warn({ err, ...identity }, 'process table: the workload\'s row could not be published');
    }).finally(() => {
      if (this.publishing.get(key) === next) this.publishing.delete(key);
    });
    this.publishing.set(key, next);
  }

  /**
   * Drops this node's rows in the owners' tables that `isLive` does not know (the
   * appliance stopped between forgetting a workload and removing its row).
   */
  sweep(owners: Iterable<string>, isLive: (owner: string, blueprint: string, workload: string) => boolean): void {
    if (!this.nc) return;
    this.sweeping = Promise.all([...new Set(owners)].map(async (owner) => {
      try {
        const rows = await (await this.procTable(owner)).list();
        for (const row of rows) {
          if (row.node === this.o.node && !isLive(owner, row.blueprint, row.workload)) this.workloadChanged({ owner, blueprint: row.blueprint, workload: row.workload }, null);
        }
      } catch (err) {
        this.o.logger.warn({ err, owner }, 'process table: this node\'s stale rows could not be looked for');
      }
    })).then(() => undefined);
  }

  /** Resolves once every change handed in so far is in its table (or failed). */
  private async published(): Promise<void> {
    await this.sweeping;
    while (this.publishing.size) await Promise.all(this.publishing.values());
  }

  /** Unmounts every /zone, lets the rows reach their tables, then closes the connection and stops the server. */
  async close(): Promise<void> {
    await Promise.all([...this.mounts.keys()].map((id) => this.unmount(id)));
    if (this.zoneRoot) {
      await run('umount', ['-l', this.zoneRoot]).catch((err: unknown) => this.o.logger.warn({ err, path: this.zoneRoot }, 'pseudokernel: DATA/zone could not be unmounted'));
      this.zoneRoot = null;
    }
    this.restarts?.unsubscribe();
    this.restarts = null;
    await this.fifos?.stop();
    this.fifos = null;
    await this.pipesSet;
    await this.pipes?.stop();
    this.pipes = null;
    await this.published();
    const nc = this.nc;
    this.nc = null;
    this.unavailable = 'stopped';
    await nc?.close().catch((err: unknown) => this.o.logger.warn({ err }, 'closing the NATS connection failed'));
    await this.server.stop();
  }

  /** The FIFO relay, or null (logged) when its helper is missing: FIFOs then join within one mount. */
  private async startFifoRelay(nc: NatsConnection): Promise<FifoRelay | null> {
    const waitersCommand = this.o.fifoWaiters ?? FIFO_WAITERS_PATH;
    if (!(await access(waitersCommand, constants.X_OK).then(() => true, () => false))) {
      this.o.logger.warn({ path: waitersCommand }, 'pseudokernel: no fifo-waiters helper (scripts/setup-host builds it); /zone FIFOs do not cross mounts or nodes');
      return null;
    }
    const relay = new FifoRelay({ nc, node: this.o.node, logger: this.o.logger, waitersCommand });
    await relay.start();
    return relay;
  }

  private locate(end: LocalPipeEnd): PipeWorkload | null {
    const known = this.endsSet.get(pipeEndKey(end));
    const driver = known && this.o.drivers.get(known.kind);
    return known && driver ? { driver, id: known.workloadId } : null;
  }

  private async mountFor(spec: WorkloadSpec, root: string): Promise<ZoneMount | null> {
    const self = {
      name: spec.workload, blueprint: spec.blueprint, node: this.o.node, owner: spec.owner,
      ip: spec.definition.networks[0]?.ip ?? null,
    };
    try {
      const [grid, proc] = await Promise.all([this.gridFs(spec.owner), this.procTable(spec.owner)]);
      const scratchParent = join(this.o.dataDir, 'zone-scratch');
      await mkdir(scratchParent, { recursive: true, mode: 0o700 });
      const mount = await mountZone({ mountpoint: join(root, spec.id), grid, proc, self, logger: this.o.logger, scratchParent,
        maxOpenFiles: this.limits.zoneOpenFiles, maxScratchBytes: this.limits.ownerBytes,
        onFifo: () => this.fifos?.fifoLookedUp(),
      });
      await this.fifos?.addMount(mount.mountpoint, spec.owner).catch((err: unknown) => this.o.logger.warn({ err, workload: spec.id }, '/zone: its FIFOs do not cross mounts or nodes'));
      return mount;
    } catch (err) {
      this.o.logger.error({ err, blueprint: spec.blueprint, workload: spec.workload }, '/zone could not be mounted; the workload is made without it');
      return null;
    }
  }

  /** DATA/zone as a shared bind mount of itself (kept from a previous run when it is one already). */
  private async shareZoneRoot(): Promise<void> {
    const root = join(this.o.dataDir, 'zone');
    await mkdir(root, { recursive: true, mode: 0o711 });
    if (!(await isMounted(root))) await run('mount', ['--bind', root, root]);
    await run('mount', ['--make-shared', root]);
    this.zoneRoot = root;
  }

  private connection(): NatsConnection {
    if (!this.nc) throw this.notRunning();
    return this.nc;
  }

  /** The owner's entry of `cache`, opened on first use; a failed open is tried again by the next user. */
  private openedFor<T>(cache: Map<string, Promise<T>>, owner: string, open: (nc: NatsConnection) => Promise<T>): Promise<T> {
    const nc = this.connection();
    let opened = cache.get(owner);
    if (!opened) {
      // Storage for an owner new to this process: within limits.owners unless it is resident.
      opened = jetstreamManager(nc)
        .then((jsm) => admitOwner(jsm, owner, { max: this.limits.owners, resident: this.o.resident?.(owner) ?? false }))
        .then(() => open(nc));
      opened.catch(() => cache.delete(owner));
      cache.set(owner, opened);
    }
    return opened;
  }

  private notRunning(): Error {
    return new Error(`the pseudokernel is unavailable: ${this.unavailable ?? 'stopped'}`);
  }

  /** A lone server holds one copy; a cluster three (or all its servers when fewer). */
  private get replicas(): number {
    return this.o.nats.cluster ? Math.min(3, this.o.nats.cluster.routes.length + 1) : 1;
  }
}

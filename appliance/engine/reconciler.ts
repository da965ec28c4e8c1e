// The reconcile loop: level-triggered passes (desired from the store, observed from
// the drivers and providers, steps from plan) that run on driver events, when a backoff
// ends, and on a periodic resync that catches whatever events missed. Passes never
// overlap; steps run beside them, at most `concurrency` at once and one at a time per
// key (a workload, a network, a link: one with a step in flight is left out of planning
// until it ends, and its end asks for a pass). Each step kind has its executor.
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import {
  EngineUnavailableError, pipeEndKey, VolumeSpecError, WorkloadSpecError,
  type Driver, type MountProvider, type NetworkDriver, type ObservedVolume, type ObservedWorkload, type PipeEndProvider, type VmLink,
  type VolumeProvider, type VolumeSpec, type WorkloadSpec,
} from '../../drivers/contract.ts';
import { volumeId } from '../../drivers/names.ts';
import { ZoneError } from '../../lib/errors.ts';
import type { EventLog } from '../events.ts';
import type { Store, StoredBlueprint, WorkloadRecord } from '../store.ts';
import { DEFAULT_BACKOFF, restartDelayMs, type BackoffPolicy } from '../../lib/backoff.ts';
import { desiredOf, expiryOf, isLive, type DesiredOfBlueprint } from './desired.ts';
import { joinKey, linkKey, plan, stepKey, type Desired, type NetworkView, type Observed, type RunStep, type Step, type StepKind } from './plan.ts';
import { next, type Outcome, type RecordIdentity } from './status.ts';
import { desiredVolumes, volumesOf, type VolumeStep } from './volumes.ts';

/** Steps that are not executed: a `wait` is recorded, a volume's `keep` only says when to look again. */
type Unexecuted = 'wait' | 'volume-keep';
/** A step the loop executes. */
type Action = Exclude<Step, { kind: Unexecuted }>;
type Executors = { [K in Exclude<StepKind, Unexecuted>]: (step: Extract<Action, { kind: K }>) => Promise<void> };
type EnsuringStep = Extract<VolumeStep, { kind: 'volume-create' | 'volume-grow' | 'volume-reclaim' | 'volume-mount' }>;

const VOLUME_DONE: Record<Exclude<VolumeStep['kind'], 'volume-keep' | 'volume-refuse'>, string> = {
  'volume-create': 'created', 'volume-grow': 'grown', 'volume-reclaim': 'reclaimed', 'volume-mount': 'mounted', 'volume-release': 'released', 'volume-delete': 'deleted',
};

export interface ReconcilerOptions {
  node: string;
  store: Store;
  /** By workload kind. */
  drivers: ReadonlyMap<string, Driver>;
  /** Makes the blueprints' networks real and joins containers to them; none: networks are not served here. */
  networks?: NetworkDriver;
  /** Mounts a container's /zone before it is made (the pseudokernel); none: no /zone. */
  mounts?: MountProvider;
  /** Runs the blueprints' pipe ends here (the pseudokernel); none: pipes are not run. */
  pipeEnds?: PipeEndProvider;
  /** Makes the blueprints' volumes real, and how long a released one keeps its data; none: volumes are not served here. */
  volumes?: { provider: VolumeProvider; retentionMs: number };
  events: EventLog;
  logger: Logger;
  backoff?: BackoffPolicy;
  /** The engine's clock (default: the wall clock): backoff, expiry and the records' times. */
  clock?: () => Date;
  resyncMs?: number;
  concurrency?: number;
  stopGraceMs?: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const expiryKey = (b: StoredBlueprint) => `${b.owner}/${b.name}@${b.version}`;

const identityOf = (spec: WorkloadSpec): RecordIdentity => ({ id: spec.id, owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload, kind: spec.definition.kind });
const isNoSpace = (err: unknown): err is ZoneError => err instanceof ZoneError && err.code === 'NO_SPACE';
const sameRecord = (a: WorkloadRecord, b: WorkloadRecord) => (Object.keys(b) as (keyof WorkloadRecord)[]).every((k) => a[k] === b[k]);

export class Reconciler {
  private readonly records = new Map<string, WorkloadRecord>();
  private readonly busy = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly limit;
  private readonly backoff: BackoffPolicy;
  private readonly unwatch: (() => void)[] = [];
  private passing: Promise<void> | null = null;
  private again = false;
  private stopped = true;
  private resyncTimer: NodeJS.Timeout | null = null;
  private dueTimer: NodeJS.Timeout | null = null;
  private dueAt = Infinity;
  /** What each stored blueprint version wants (normalising and hashing is most of a pass otherwise). */
  private specCache = new Map<StoredBlueprint, DesiredOfBlueprint>();
  /** Why a kind cannot be asked now, from the last pass. */
  private readonly unavailable = new Map<string, string>();
  /** What the engine remembers of the resources beside the workloads, since its start. */
  private readonly ensured = new Map<string, string>();
  private readonly vmLinks = new Map<string, VmLink>();
  private readonly joined = new Set<string>();
  private readonly mountFailed = new Set<string>();
  private readonly restartsAsked = new Map<string, string>();
  /** Failed steps other than a workload's, by stepKey: how often in a row, and when they may run again. */
  private readonly failures = new Map<string, { count: number; retryAt: Date }>();
  private readonly executors: Executors;
  /** The desired volumes of the latest pass, by id: what a replacement ensures again once its old workload is gone. */
  private volumeSpecs = new Map<string, VolumeSpec>();
  /** The refusal told of each volume (an event once, not at every pass), by volume id. */
  private readonly refused = new Map<string, string>();
  /** The volume provider, if any. */
  readonly volumes: VolumeProvider | null;
  /** What the provider listed at the latest pass that could list (admission counts the disk they hold). */
  private lastVolumes: readonly ObservedVolume[] = [];
  private readonly clock: () => Date;
  /** Blueprint versions whose expiry has been told (an event), by owner/name@version. */
  private readonly expired = new Set<string>();

  constructor(private readonly o: ReconcilerOptions) {
    this.limit = pLimit(o.concurrency ?? 8);
    const run = (step: RunStep) => this.runWorkload(step);
    this.executors = {
      create: run, start: run, restart: run, replace: run,
      remove: (step) => this.removeWorkload(step),
      'ensure-network': (step) => this.ensureNetwork(step),
      'remove-network': (step) => this.removeNetwork(step),
      'attach-container-to-network': (step) => this.attachContainer(step),
      'make-vm-bridge': (step) => this.makeVmBridge(step),
      mount: (step) => this.mount(step),
      unmount: (step) => this.unmount(step),
      'pipe-ends': (step) => this.setPipeEnds(step),
      'volume-create': (step) => this.ensureVolume(step),
      'volume-grow': (step) => this.ensureVolume(step),
      'volume-reclaim': (step) => this.ensureVolume(step),
      'volume-mount': (step) => this.ensureVolume(step),
      'volume-refuse': (step) => this.refuseVolume(step),
      'volume-release': (step) => this.releaseVolume(step),
      'volume-delete': (step) => this.deleteVolume(step),
    };
    this.volumes = o.volumes?.provider ?? null;
    this.backoff = o.backoff ?? DEFAULT_BACKOFF;
    this.clock = o.clock ?? (() => new Date());
    for (const r of o.store.workloads()) this.records.set(r.id, r);
    // Expired before this start with nothing left of them: told already.
    const now = this.clock();
    for (const b of o.store.blueprints()) {
      if (!b.deleted && !isLive(b, now) && ![...this.records.values()].some((r) => r.owner === b.owner && r.blueprint === b.name)) this.expired.add(expiryKey(b));
    }
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const [kind, driver] of this.o.drivers) {
      this.unwatch.push(driver.watch((event) => {
        if (event.type === 'engine') this.o.logger.info({ driver: kind, available: event.available, reason: event.reason }, 'engine availability changed');
        this.wake();
      }));
    }
    this.resyncTimer = setInterval(() => this.wake(), this.o.resyncMs ?? 30_000);
    this.resyncTimer.unref();
    this.wake();
  }

  /** Asks for a pass; passes requested while one runs coalesce into one more. */
  wake(): void {
    if (this.stopped) return;
    if (this.passing) {
      this.again = true;
      return;
    }
    this.passing = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          if (isNoSpace(err)) this.o.logger.warn({ reason: err.message }, 'reconcile pass stopped: the store cannot record it; the next pass tries again');
          else this.o.logger.error({ err }, 'reconcile pass failed');
        }
      } while (this.again && !this.stopped);
      this.passing = null;
    })();
  }

  /** Resolves once no pass and no step runs (and none is requested). */
  async idle(): Promise<void> {
    while (this.passing || this.inflight.size) {
      await Promise.all([this.passing, ...this.inflight]);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch.splice(0).forEach((u) => u());
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.dueTimer) clearTimeout(this.dueTimer);
    await this.idle();
  }

  /**
   * Stops a desired workload of this node and starts it again now, whatever its restart
   * policy (its owner asked: `kill` in zone shell). `unknown`: no such workload here;
   * `busy`: a step of it is in flight, which the caller may try again after.
   */
  restart(w: { owner: string; blueprint: string; workload: string }, reason: string): 'restarting' | 'unknown' | 'busy' {
    // Found by the stored blueprint's (owner, name) and the workload's name: never by an engine-side name.
    const spec = this.desired(this.live(this.clock())).workloads.find((d) => d.owner === w.owner && d.blueprint === w.blueprint && d.workload === w.workload);
    if (!spec || this.stopped) return 'unknown';
    if (this.busy.has(spec.id) || this.restartsAsked.has(spec.id)) return 'busy';
    // Planned by the next pass, so it is made with its /zone and links like any other step.
    this.restartsAsked.set(spec.id, reason);
    this.wake();
    return 'restarting';
  }

  /** The volumes on this node as the latest pass saw them, released ones included. */
  heldVolumes(): readonly ObservedVolume[] {
    return this.lastVolumes;
  }

  /** Current records (the workloads' status), by engine-side id. */
  statuses(): ReadonlyMap<string, WorkloadRecord> {
    return this.records;
  }

  /** One full pass: observe, plan, record what settled, launch the steps. */
  async pass(): Promise<void> {
    const now = this.clock();
    const live = this.live(now);
    const desired = this.desired(live);
    // A step that ends while the drivers are listed may not show in what they return:
    // its workload sits this pass out, and its end asks for another pass.
    const busy = new Set(this.busy);
    const observed = await this.observe(desired.workloads);
    // A step launched meanwhile sits this pass out as well.
    for (const key of this.busy) busy.add(key);
    const { steps, held } = plan(desired, observed, now, { backoff: this.backoff, busy, ...(this.o.volumes ? { volumeRetentionMs: this.o.volumes.retentionMs } : {}) });
    // An asked restart is done by any step that makes the workload run again, and void for one no longer desired.
    const desiredIds = new Set(desired.workloads.map((w) => w.id));
    for (const id of this.restartsAsked.keys()) if (!desiredIds.has(id)) this.restartsAsked.delete(id);
    for (const step of steps) if (step.kind === 'create' || step.kind === 'replace') this.restartsAsked.delete(step.spec.id);
    const stepped = new Set([...held, ...steps.flatMap((s) => (s.kind === 'remove' ? [s.id] : 'spec' in s && !s.kind.startsWith('volume-') ? [s.spec.id] : []))]);
    this.o.store.transaction(() => {
      this.tellExpired(now);
      this.settle(desired.workloads, observed, stepped, busy);
      for (const step of steps) if (step.kind === 'wait') this.recordWait(step);
    });
    this.forgetRefusals(steps, busy);
    for (const step of steps) {
      // A refusal already told is not told again at every pass.
      if (step.kind === 'wait' || step.kind === 'volume-keep' || (step.kind === 'volume-refuse' && this.refused.get(step.spec.id) === step.reason)) continue;
      this.launch(step);
    }
    const expiries = live.map((b) => expiryOf(b)?.getTime() ?? Infinity);
    const retries = [...this.failures.values()].map((f) => f.retryAt.getTime()).filter((t) => t > now.getTime());
    // A wait's backoff, a volume's retention (from its release or keep), an expiry, a failed step's retry.
    const nextDue = Math.min(...steps.map((s) => ('until' in s ? s.until.getTime() : Infinity)), ...expiries, ...retries);
    if (nextDue < Infinity) this.wakeAt(nextDue);
  }

  /** The stored blueprints that want their workloads at `now` (neither tombstones nor expired). */
  private live(now: Date): StoredBlueprint[] {
    return this.o.store.blueprints().filter((b) => isLive(b, now));
  }

  private desired(live: readonly StoredBlueprint[]): Desired {
    const cache = new Map<StoredBlueprint, DesiredOfBlueprint>();
    for (const b of live) cache.set(b, this.specCache.get(b) ?? desiredOf(this.o.node, b));
    this.specCache = cache;
    const parts = [...cache.values()];
    const workloads = parts.flatMap((p) => p.workloads);
    const mounts = this.o.mounts;
    const volumes = this.volumes ? desiredVolumes(this.o.node, live) : [];
    this.volumeSpecs = new Map(volumes.map((v) => [v.id, v]));
    return {
      workloads,
      networks: parts.flatMap((p) => p.networks),
      pipeEnds: parts.flatMap((p) => p.pipeEnds),
      mounts: new Set(mounts ? workloads.filter((w) => mounts.wants(w)).map((w) => w.id) : []),
      volumes,
    };
  }

  /** One event per blueprint version whose contract ended: its workloads go as by a tombstone. */
  private tellExpired(now: Date): void {
    for (const b of this.o.store.blueprints()) {
      const key = expiryKey(b);
      if (b.deleted || isLive(b, now) || this.expired.has(key)) continue;
      this.o.events.record({
        owner: b.owner, blueprint: b.name, workload: null, from: `v${b.version}`, to: 'expired',
        reason: `expired at ${b.document.expires}: its workloads are removed as by a tombstone; a later version brings it back`,
      });
      this.o.store.afterCommit(() => this.expired.add(key));
    }
  }

  private async observe(desired: readonly WorkloadSpec[]): Promise<Observed> {
    const workloads = new Map<string, ObservedWorkload>();
    this.unavailable.clear();
    // Beside the workload drivers, not after them: a slow network listing must not hold up a restart.
    const networks = this.observeNetworks();
    const volumes = this.observeVolumes();
    await Promise.all([...this.o.drivers].map(async ([kind, driver]) => {
      try {
        for (const w of await driver.list(this.o.node)) workloads.set(w.id, w);
      } catch (err) {
        if (!(err instanceof EngineUnavailableError)) this.o.logger.error({ err, driver: kind }, 'listing workloads failed');
        this.unavailable.set(kind, err instanceof EngineUnavailableError ? err.message : `${kind} driver failed to list: ${(err as Error).message}`);
      }
    }));
    for (const d of desired) {
      if (!this.o.drivers.has(d.definition.kind)) this.unavailable.set(d.definition.kind, `no ${d.definition.kind} driver on this node`);
    }
    const ends = this.o.pipeEnds?.ends() ?? null;
    return {
      workloads, unavailable: new Set(this.unavailable.keys()), records: this.records,
      networks: await networks,
      volumes: await volumes,
      vmLinks: this.vmLinks, joined: this.joined,
      mounts: this.o.mounts?.mounted() ?? null, mountFailed: this.mountFailed,
      pipeEnds: ends && new Map(ends.map((e) => [pipeEndKey(e), e.workloadId])),
      restartsAsked: this.restartsAsked,
      retryAt: new Map([...this.failures].map(([key, f]) => [key, f.retryAt])),
    };
  }

  /** The networks the driver manages; null when there is no driver or it cannot list (nothing is planned for networks then). */
  private async observeNetworks(): Promise<Map<string, NetworkView> | null> {
    if (!this.o.networks) return null;
    try {
      const list = await this.o.networks.list();
      return new Map(list.map((n) => [n.id, { owner: n.owner, blueprint: n.blueprint, up: n.up, ensured: this.ensured.get(n.id) ?? null, ...(n.drift ? { drift: n.drift } : {}) }]));
    } catch (err) {
      this.o.logger.warn({ error: (err as Error).message }, 'listing networks failed');
      return null;
    }
  }

  /** A refusal holds while the plan still refuses (or its volume's step waits out a failure): a later version may undo the change. */
  private forgetRefusals(steps: readonly Step[], busy: ReadonlySet<string>): void {
    const stepped = new Set(steps.flatMap((s) => (s.kind.startsWith('volume-') ? [stepKey(s)] : [])));
    for (const id of this.refused.keys()) {
      const key = `volume:${id}`;
      // `busy` as the plan saw it: a step that ended meanwhile was not planned.
      if (!stepped.has(key) && !this.failures.has(key) && !busy.has(key)) this.refused.delete(id);
    }
  }

  /** The volumes the provider manages; null when there is none or it cannot list (nothing is planned for volumes then). */
  private async observeVolumes(): Promise<ObservedVolume[] | null> {
    if (!this.volumes) return null;
    try {
      const list = await this.volumes.list();
      this.lastVolumes = list;
      return list;
    } catch (err) {
      this.o.logger.warn({ error: (err as Error).message }, 'listing volumes failed');
      return null;
    }
  }

  /** Status of workloads that need no step, and forgetting what is gone for good. */
  private settle(desired: readonly WorkloadSpec[], observed: Observed, stepped: ReadonlySet<string>, busy: ReadonlySet<string>): void {
    for (const spec of desired) {
      if (busy.has(spec.id)) continue;
      const reason = this.unavailable.get(spec.definition.kind);
      if (reason !== undefined) {
        this.transition(identityOf(spec), { kind: 'engine-unavailable', reason });
        continue;
      }
      if (stepped.has(spec.id)) {
        this.transition(identityOf(spec), { kind: 'planned' });
        continue;
      }
      const o = observed.workloads.get(spec.id);
      if (!o) continue;
      this.transition(identityOf(spec), o.state === 'running'
        ? { kind: 'running', health: o.health, startedAt: o.startedAt }
        : { kind: 'exited', exitCode: o.exitCode, policy: spec.definition.restart });
    }
    const wanted = new Set(desired.map((d) => d.id));
    for (const r of [...this.records.values()]) {
      if (!wanted.has(r.id) && !observed.workloads.has(r.id) && !busy.has(r.id) && !this.unavailable.has(r.kind)) this.transition(r, { kind: 'removed', reason: 'removed' });
    }
  }

  private recordWait(step: Extract<Step, { kind: 'wait' }>): void {
    const changed = this.transition(identityOf(step.spec), {
      kind: 'waiting', until: step.until, attempt: step.attempt, reason: step.reason, ...(step.exitCode !== undefined ? { exitCode: step.exitCode } : {}),
    });
    if (changed) {
      this.o.logger.warn({ blueprint: step.spec.blueprint, workload: step.spec.workload, reason: step.reason, attempt: step.attempt, restartAt: step.until.toISOString() },
        'workload failed: restart scheduled');
    }
  }

  private launch(step: Action): void {
    const key = stepKey(step);
    this.busy.add(key);
    if (step.kind === 'restart') this.restartsAsked.delete(step.spec.id);
    const execute = this.executors[step.kind] as (step: Action) => Promise<void>;
    let again = true;
    this.track(this.limit(() => execute(step))
      .catch((err: unknown) => {
        if (!isNoSpace(err)) return this.o.logger.error({ err, key }, 'step failed unexpectedly');
        // Nothing was done that is not recorded; asking for a pass now would only spin.
        again = false;
        this.o.logger.warn({ reason: (err as Error).message, key }, 'reconcile step stopped: the store cannot record it; the next pass tries again');
      })
      .finally(() => {
        this.busy.delete(key);
        if (again) this.wake();
      }));
  }

  /** Work that runs beside the passes; idle() waits for it. */
  private track(work: Promise<void>): void {
    const run = work.finally(() => this.inflight.delete(run));
    this.inflight.add(run);
  }

  private async runWorkload(step: RunStep): Promise<void> {
    const { spec } = step;
    const driver = this.o.drivers.get(spec.definition.kind);
    if (!driver) return;
    // A mount that failed is tried again at the workload's next step.
    this.mountFailed.delete(spec.id);
    const recovery = step.kind === 'start' || step.kind === 'restart' ? step.recovery : undefined;
    const log = { blueprint: spec.blueprint, workload: spec.workload, step: step.kind, reason: step.reason };
    if (step.kind !== 'create' || this.records.get(spec.id)?.state !== 'pending') this.o.logger.info(log, recovery ? 'restarting workload' : `${step.kind} workload`);
    try {
      if (recovery) this.transition(identityOf(spec), { kind: 'restarting', reason: step.reason, ...(recovery.exitCode !== undefined ? { exitCode: recovery.exitCode } : {}) });
      if (step.kind === 'restart') await driver.stop(spec.id, this.o.stopGraceMs ?? 10_000);
      if (step.kind === 'replace') await driver.remove(spec.id);
      const o = await driver.ensure(await this.withVolumes(spec, step.kind === 'replace'));
      this.transition(identityOf(spec), {
        kind: 'succeeded', action: step.kind, reason: step.reason, state: o.state, health: o.health, ...(recovery ? { attempt: recovery.attempt } : {}),
      });
    } catch (err) {
      // A store that cannot record is no failure of the workload.
      if (isNoSpace(err)) throw err;
      const message = (err as Error).message ?? String(err);
      const cause = err instanceof EngineUnavailableError ? 'engine-down' : err instanceof WorkloadSpecError ? 'unrunnable' : 'other';
      const record = this.transition(identityOf(spec), { kind: 'failed', action: step.kind, cause, message, ...(recovery ? { attempt: recovery.attempt } : {}) })
        ?? this.records.get(spec.id);
      const fields = { blueprint: spec.blueprint, workload: spec.workload, action: step.kind };
      if (cause === 'engine-down') this.o.logger.warn({ ...fields, reason: message }, 'engine unavailable');
      else this.o.logger.warn({ ...fields, error: message, retryAt: record?.nextRestartAt }, `${step.kind} failed`);
    }
  }

  private async removeWorkload(step: Extract<Step, { kind: 'remove' }>): Promise<void> {
    const driver = this.o.drivers.get(step.driver);
    if (!driver) return;
    const r = this.records.get(step.id);
    if (r) this.transition(r, { kind: 'removing', reason: step.reason });
    this.o.logger.info({ blueprint: step.identity.blueprint, workload: step.identity.workload, reason: step.reason }, 'removing workload');
    try {
      await driver.remove(step.id);
      const gone = this.records.get(step.id);
      if (gone) this.transition(gone, { kind: 'removed', reason: 'removed' });
    } catch (err) {
      // The next pass still sees it and tries again.
      this.o.logger.warn({ blueprint: step.identity.blueprint, workload: step.identity.workload, error: (err as Error).message }, 'remove failed');
    }
  }

  private async ensureNetwork(step: Extract<Step, { kind: 'ensure-network' }>): Promise<void> {
    const { network } = step;
    await this.attempt(step, { blueprint: network.blueprint, network: network.network }, 'network ensure failed', async () => {
      this.o.logger.info({ blueprint: network.blueprint, network: network.network, reason: step.reason }, 'ensuring network');
      const made = await this.network().ensure(network);
      // It may have been made anew: its links are made again.
      this.forgetLinks(network.id);
      // Else the next pass would ensure it again at once: backed off as a failure.
      if (network.definition.wireguard && !made.up) throw new Error(`network ${network.network}: its WireGuard interface is not up after ensure`);
      if (made.drift) throw new Error(`network ${network.network}: still differs after ensure: ${made.drift}`);
      this.ensured.set(network.id, step.hash);
    });
  }

  private async removeNetwork(step: Extract<Step, { kind: 'remove-network' }>): Promise<void> {
    await this.attempt(step, { network: step.id }, 'network remove failed', async () => {
      this.o.logger.info({ network: step.id, reason: step.reason }, 'removing network');
      await this.network().remove(step.id);
      this.forgetLinks(step.id);
      this.ensured.delete(step.id);
    });
  }

  private async attachContainer(step: Extract<Step, { kind: 'attach-container-to-network' }>): Promise<void> {
    const { network, container } = step;
    await this.attempt(step, { blueprint: network.blueprint, network: network.network, workload: container.workload }, 'joining a container to its network failed', async () => {
      await this.network().attachContainer(network, container);
      this.joined.add(joinKey(network.id, step.workload, container));
    });
  }

  private async makeVmBridge(step: Extract<Step, { kind: 'make-vm-bridge' }>): Promise<void> {
    const { network, vm } = step;
    await this.attempt(step, { blueprint: network.blueprint, network: network.network, workload: vm.workload }, 'making a VM\'s bridge failed', async () => {
      this.vmLinks.set(linkKey(network.id, step.workload), await this.network().attachVm(network, vm));
    });
  }

  private async mount(step: Extract<Step, { kind: 'mount' }>): Promise<void> {
    // The provider logs why; the workload is then made without /zone.
    if (await this.o.mounts?.mount(step.spec) == null) this.mountFailed.add(step.spec.id);
  }

  private async unmount(step: Extract<Step, { kind: 'unmount' }>): Promise<void> {
    this.mountFailed.delete(step.id);
    await this.o.mounts?.unmount(step.id);
  }

  private async setPipeEnds(step: Extract<Step, { kind: 'pipe-ends' }>): Promise<void> {
    await this.attempt(step, { ends: step.ends.length }, 'pipes: the local pipe ends could not be set', async () => {
      await this.o.pipeEnds?.setEnds(step.ends);
    });
  }

  /**
   * The spec as the driver gets it: every volume it uses with its host path. The plan
   * gave the paths; a replacement ensures its volumes again once its old workload is
   * gone (a filesystem volume grows then, unmounted, on a host without online growth).
   * A volume that is refused or not declared fails the workload naming it.
   */
  private async withVolumes(spec: WorkloadSpec, again: boolean): Promise<WorkloadSpec> {
    const names = volumesOf(spec);
    if (names.length === 0) return spec;
    const paths: Record<string, string> = { ...spec.volumePaths };
    for (const name of names) {
      const id = volumeId(spec.node, spec.owner, spec.blueprint, name);
      const want = this.volumeSpecs.get(id);
      if (!want) throw new WorkloadSpecError(spec.workload, `volumes.${name}`, `volume ${name} is not declared by blueprint ${spec.blueprint}`);
      const refused = this.refused.get(id);
      if (refused !== undefined) throw new WorkloadSpecError(spec.workload, `volumes.${name}`, `volume ${name}: ${refused}`);
      if (again && this.volumes) {
        try {
          const made = await this.volumes.ensure(want);
          if (made.path !== null) paths[name] = made.path;
        } catch (err) {
          if (err instanceof VolumeSpecError) throw new WorkloadSpecError(spec.workload, `volumes.${name}`, err.message);
          throw err;
        }
      }
      if (paths[name] === undefined) throw new Error(`volume ${name} is not ready on this node`);
    }
    return { ...spec, volumePaths: paths };
  }

  private async ensureVolume(step: EnsuringStep): Promise<void> {
    const { spec } = step;
    await this.attempt(step, { blueprint: spec.blueprint, volume: spec.volume, step: step.kind }, `volume ${step.kind.slice('volume-'.length)} failed`, async () => {
      this.o.logger.info({ blueprint: spec.blueprint, volume: spec.volume, reason: step.reason }, step.kind.replace('-', ' '));
      try {
        if (step.kind === 'volume-grow' && spec.kind === 'block') await this.growOpenDisks(spec);
        await this.volume().ensure(spec);
      } catch (err) {
        // A change the provider refuses is told like one the plan refuses (the workloads using it fail with it), and tried again after a backoff.
        if (err instanceof VolumeSpecError) await this.refuseVolume({ kind: 'volume-refuse', spec, reason: err.message });
        throw err;
      }
      this.refused.delete(spec.id);
      this.volumeEvent(spec, step);
    });
  }

  /** A block volume that grows while a workload runs with it (a VM holds its image open): that workload's driver grows it live. */
  private async growOpenDisks(spec: VolumeSpec): Promise<void> {
    const path = (await this.volume().inspect(spec.id))?.path;
    if (!path) return;
    for (const { workloads } of this.specCache.values()) {
      for (const w of workloads) {
        if (w.owner !== spec.owner || w.blueprint !== spec.blueprint || !volumesOf(w).includes(spec.volume)) continue;
        await this.o.drivers.get(w.definition.kind)?.growDisk?.(w.id, path, spec.sizeBytes);
      }
    }
  }

  private async refuseVolume(step: Extract<VolumeStep, { kind: 'volume-refuse' }>): Promise<void> {
    const { spec } = step;
    if (this.refused.get(spec.id) === step.reason) return;
    this.o.logger.warn({ blueprint: spec.blueprint, volume: spec.volume, reason: step.reason }, 'volume change refused');
    this.o.store.transaction(() => {
      this.o.events.record({ owner: spec.owner, blueprint: spec.blueprint, workload: null, from: null, to: `volume ${spec.volume}: refused`, reason: step.reason });
      this.o.store.afterCommit(() => this.refused.set(spec.id, step.reason));
    });
  }

  private async releaseVolume(step: Extract<VolumeStep, { kind: 'volume-release' }>): Promise<void> {
    await this.attempt(step, { blueprint: step.identity.blueprint, volume: step.identity.volume }, 'volume release failed', async () => {
      this.o.logger.info({ blueprint: step.identity.blueprint, volume: step.identity.volume, reason: step.reason }, 'volume release');
      await this.volume().release(step.id, this.clock());
      this.refused.delete(step.id);
      this.volumeEvent(step.identity, step);
    });
  }

  private async deleteVolume(step: Extract<VolumeStep, { kind: 'volume-delete' }>): Promise<void> {
    await this.attempt(step, { blueprint: step.identity.blueprint, volume: step.identity.volume }, 'volume delete failed', async () => {
      this.o.logger.info({ blueprint: step.identity.blueprint, volume: step.identity.volume, reason: step.reason }, 'volume delete');
      await this.volume().remove(step.id);
      this.volumeEvent(step.identity, step);
    });
  }

  private volumeEvent(who: { owner: string; blueprint: string; volume: string }, step: { kind: keyof typeof VOLUME_DONE; reason: string }): void {
    this.o.store.transaction(() => this.o.events.record({
      owner: who.owner, blueprint: who.blueprint, workload: null, from: null, to: `volume ${who.volume}: ${VOLUME_DONE[step.kind]}`, reason: step.reason,
    }));
  }

  private volume(): VolumeProvider {
    if (!this.volumes) throw new Error('no volume provider on this node');
    return this.volumes;
  }

  private network(): NetworkDriver {
    if (!this.o.networks) throw new Error('no network driver on this node');
    return this.o.networks;
  }

  /** The links made into a network: made again after it is ensured anew or removed. */
  private forgetLinks(network: string): void {
    for (const key of this.vmLinks.keys()) if (key.startsWith(`${network}|`)) this.vmLinks.delete(key);
    for (const key of this.joined) if (key.startsWith(`${network}|`)) this.joined.delete(key);
  }

  /**
   * Runs a step that is not a workload's: one that fails is logged and planned again
   * after a backoff (at once the first time), so a network that cannot be made (a key
   * sealed to another node, a busy port) does not hold up the rest nor spin.
   */
  private async attempt(step: Action, fields: Record<string, unknown>, failure: string, work: () => Promise<void>): Promise<void> {
    const key = stepKey(step);
    try {
      await work();
      this.failures.delete(key);
    } catch (err) {
      const count = (this.failures.get(key)?.count ?? 0) + 1;
      const retryAt = new Date(this.clock().getTime() + restartDelayMs(count - 1, this.backoff));
      this.failures.set(key, { count, retryAt });
      this.o.logger.warn({ ...fields, error: (err as Error).message, retryAt: retryAt.toISOString() }, failure);
    }
  }

  /**
   * Records what `next` makes of the outcome: only changes are written, a change of state
   * is an event, a null record is forgotten. Returns the new record when it changed.
   */
  private transition(who: RecordIdentity, outcome: Outcome): WorkloadRecord | null {
    const current = this.records.get(who.id) ?? null;
    const { record, reason } = next(current, who, outcome, this.clock(), this.backoff);
    if (record === null) {
      if (current) this.forget(current, reason);
      return null;
    }
    if (current && sameRecord(current, record)) return null;
    // One transaction (one fsync) for the record and its event; memory follows the
    // commit, so a write the store refuses (a full disk) changes neither.
    this.o.store.transaction(() => {
      this.o.store.putWorkload(record);
      this.o.store.afterCommit(() => this.records.set(record.id, record));
      if (!current || current.state !== record.state) {
        this.o.events.record({ owner: record.owner, blueprint: record.blueprint, workload: record.workload, from: current?.state ?? null, to: record.state, reason });
      }
    });
    return record;
  }

  private forget(r: WorkloadRecord, reason: string): void {
    this.o.store.transaction(() => {
      this.o.store.deleteWorkload(r.id);
      this.o.store.afterCommit(() => this.records.delete(r.id));
      this.o.events.record({ owner: r.owner, blueprint: r.blueprint, workload: r.workload, from: r.state, to: 'removed', reason });
    });
  }

  private wakeAt(at: number): void {
    if (this.stopped || at >= this.dueAt) return;
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.dueAt = at;
    // setTimeout takes at most 2^31-1 ms (24.8 days; longer fires at once): a far expiry wakes a pass early, which sets the timer again.
    this.dueTimer = setTimeout(() => {
      this.dueAt = Infinity;
      this.dueTimer = null;
      this.wake();
    }, Math.min(Math.max(0, at - this.clock().getTime()), MAX_TIMER_MS));
    this.dueTimer.unref();
  }
}

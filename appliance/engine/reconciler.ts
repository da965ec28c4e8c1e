// The reconcile loop: level-triggered passes (desired from the store, observed from
// the drivers, steps from planSteps) that run on driver events, when a backoff ends,
// and on a periodic resync that catches whatever events missed. Passes never overlap;
// steps run beside them, at most `concurrency` at once and one at a time per workload
// (a workload with a step in flight is left out of planning until it ends).
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { EngineUnavailableError, WorkloadSpecError, type Driver, type ObservedWorkload, type WorkloadSpec } from '../../drivers/contract.ts';
import { ZoneError } from '../../lib/errors.ts';
import type { EventLog } from '../events.ts';
import type { Store, StoredBlueprint, WorkloadRecord } from '../store.ts';
import type { NetworkDriver } from '../../drivers/contract.ts';
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../../lib/backoff.ts';
import { desiredWorkloads, expiryOf, isLive } from './desired.ts';
import { NetworkSync } from './networks.ts';
import { planSteps, type Observed, type Step } from './plan.ts';
import { next, type Outcome, type RecordIdentity } from './status.ts';

export interface ReconcilerOptions {
  node: string;
  store: Store;
  /** By workload kind. */
  drivers: ReadonlyMap<string, Driver>;
  /** Makes the blueprints' networks real and joins containers to them; none: networks are not served here. */
  networks?: NetworkDriver;
  events: EventLog;
  logger: Logger;
  /**
   * Readies what a workload needs on the host before its driver makes or starts it, and
   * says how (the pseudokernel mounts its /zone and sets `zoneMount`). Must not throw.
   */
  prepare?: (spec: WorkloadSpec) => Promise<WorkloadSpec>;
  /** Told the stored blueprints at the end of every pass (the pseudokernel runs their pipes). Must not throw. */
  passed?: (blueprints: readonly StoredBlueprint[]) => void;
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
  /** Specs of each stored blueprint version (normalising and hashing is most of a pass otherwise). */
  private specCache = new Map<StoredBlueprint, WorkloadSpec[]>();
  /** Why a kind cannot be asked now, from the last pass. */
  private readonly unavailable = new Map<string, string>();
  private readonly networks: NetworkSync | null;
  private readonly clock: () => Date;
  /** Blueprint versions whose expiry has been told (an event), by owner/name@version. */
  private readonly expired = new Set<string>();

  constructor(private readonly o: ReconcilerOptions) {
    this.limit = pLimit(o.concurrency ?? 8);
    this.networks = o.networks ? new NetworkSync(o.node, o.networks, o.logger) : null;
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
          if (err instanceof ZoneError && err.code === 'NO_SPACE') this.o.logger.warn({ reason: err.message }, 'reconcile pass stopped: the store cannot record it; the next pass tries again');
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
    const spec = this.desired(this.live(this.clock())).find((d) => d.owner === w.owner && d.blueprint === w.blueprint && d.workload === w.workload);
    if (!spec || this.stopped) return 'unknown';
    if (this.busy.has(spec.id)) return 'busy';
    this.launch({ kind: 'restart', spec, reason, recovery: { attempt: this.records.get(spec.id)?.attempt ?? 0 } });
    return 'restarting';
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
    const observed = await this.observe(desired);
    // A step launched meanwhile (restart() on request) sits this pass out as well.
    for (const id of this.busy) busy.add(id);
    // Beside the steps, not before them: a slow interface must not hold up the workloads.
    if (this.networks) this.track(this.networks.sync(live, observed.workloads).catch((err: unknown) => this.o.logger.error({ err }, 'network sync failed')));
    const steps = planSteps(desired, observed, this.records, now, { backoff: this.backoff, busy });
    const stepped = new Set(steps.map((s) => (s.kind === 'remove' ? s.id : s.spec.id)));
    this.o.store.transaction(() => {
      this.tellExpired(now);
      this.settle(desired, observed, stepped, busy);
      for (const step of steps) if (step.kind === 'wait') this.recordWait(step);
    });
    for (const step of steps) if (step.kind !== 'wait') this.launch(step);
    const expiries = live.map((b) => expiryOf(b)?.getTime() ?? Infinity);
    const nextDue = Math.min(...steps.map((s) => (s.kind === 'wait' ? s.until.getTime() : Infinity)), ...expiries);
    if (nextDue < Infinity) this.wakeAt(nextDue);
    this.o.passed?.(live);
  }

  /** The stored blueprints that want their workloads at `now` (neither tombstones nor expired). */
  private live(now: Date): StoredBlueprint[] {
    return this.o.store.blueprints().filter((b) => isLive(b, now));
  }

  private desired(live: readonly StoredBlueprint[]): WorkloadSpec[] {
    const cache = new Map<StoredBlueprint, WorkloadSpec[]>();
    for (const b of live) cache.set(b, this.specCache.get(b) ?? desiredWorkloads(this.o.node, [b]));
    this.specCache = cache;
    return [...cache.values()].flat();
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
    return { workloads, unavailable: new Set(this.unavailable.keys()) };
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

  private launch(step: Exclude<Step, { kind: 'wait' }>): void {
    const id = step.kind === 'remove' ? step.id : step.spec.id;
    this.busy.add(id);
    this.track(this.limit(() => this.execute(step))
      .catch((err: unknown) => this.o.logger.error({ err, id }, 'step failed unexpectedly'))
      .finally(() => {
        this.busy.delete(id);
        this.wake();
      }));
  }

  /** Work that runs beside the passes; idle() waits for it. */
  private track(work: Promise<void>): void {
    const run = work.finally(() => this.inflight.delete(run));
    this.inflight.add(run);
  }

  private async execute(step: Exclude<Step, { kind: 'wait' }>): Promise<void> {
    if (step.kind === 'remove') return this.executeRemove(step);
    const { spec } = step;
    const driver = this.o.drivers.get(spec.definition.kind);
    if (!driver) return;
    const recovery = step.kind === 'start' || step.kind === 'restart' ? step.recovery : undefined;
    const log = { blueprint: spec.blueprint, workload: spec.workload, step: step.kind, reason: step.reason };
    if (step.kind !== 'create' || this.records.get(spec.id)?.state !== 'pending') this.o.logger.info(log, recovery ? 'restarting workload' : `${step.kind} workload`);
    try {
      if (recovery) this.transition(identityOf(spec), { kind: 'restarting', reason: step.reason, ...(recovery.exitCode !== undefined ? { exitCode: recovery.exitCode } : {}) });
      if (step.kind === 'restart') await driver.stop(spec.id, this.o.stopGraceMs ?? 10_000);
      if (step.kind === 'replace') await driver.remove(spec.id);
      const o = await driver.ensure(this.o.prepare ? await this.o.prepare(spec) : spec);
      this.transition(identityOf(spec), {
        kind: 'succeeded', action: step.kind, reason: step.reason, state: o.state, health: o.health, ...(recovery ? { attempt: recovery.attempt } : {}),
      });
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      const cause = err instanceof EngineUnavailableError ? 'engine-down' : err instanceof WorkloadSpecError ? 'unrunnable' : 'other';
      const record = this.transition(identityOf(spec), { kind: 'failed', action: step.kind, cause, message, ...(recovery ? { attempt: recovery.attempt } : {}) })
        ?? this.records.get(spec.id);
      const fields = { blueprint: spec.blueprint, workload: spec.workload, action: step.kind };
      if (cause === 'engine-down') this.o.logger.warn({ ...fields, reason: message }, 'engine unavailable');
      else this.o.logger.warn({ ...fields, error: message, retryAt: record?.nextRestartAt }, `${step.kind} failed`);
    }
  }

  private async executeRemove(step: Extract<Step, { kind: 'remove' }>): Promise<void> {
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

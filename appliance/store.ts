// The node's durable state in SQLite (better-sqlite3): verified blueprints, per-workload
// status and the event log. WAL with synchronous=FULL: a write has reached the disk
// when the call returns, so a blueprint is durable before the API acknowledges it.
// A write that finds the disk full is refused with NO_SPACE and changes nothing; what
// follows a write in memory waits for its commit (afterCommit), so memory and the
// store never part.
import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Blueprint } from '../blueprints/schema.ts';
import type { HealthState } from '../drivers/contract.ts';
import { ZoneError } from '../lib/errors.ts';
import { MIGRATIONS } from './migrations.ts';
import type { WorkloadState, ZoneEvent } from './types.ts';

export interface StoredBlueprint {
  owner: string;
  name: string;
  version: number;
  deleted: boolean;
  document: Blueprint;
  acceptedAt: string;
}

/** What the engine keeps about one workload between passes and restarts. */
export interface WorkloadRecord {
  id: string;
  owner: string;
  blueprint: string;
  workload: string;
  kind: string;
  state: WorkloadState;
  health: HealthState | null;
  restarts: number;
  /** Restarts since the last stable period: the backoff exponent. */
  attempt: number;
  lastExit: number | null;
  lastError: string | null;
  since: string;
  nextRestartAt: string | null;
}

export type NewEvent = Omit<ZoneEvent, 'seq'>;

interface WorkloadRow {
  id: string; owner: string; blueprint: string; workload: string; kind: string; state: string; health: string | null;
  restarts: number; attempt: number; last_exit: number | null; last_error: string | null; since: string; next_restart_at: string | null;
}
interface EventRow { seq: number; at: string; owner: string | null; blueprint: string | null; workload: string | null; from_state: string | null; to_state: string; reason: string }
interface BlueprintRow { owner: string; name: string; version: number; deleted: number; document: string; accepted_at: string }

const toRecord = (r: WorkloadRow): WorkloadRecord => ({
  id: r.id, owner: r.owner, blueprint: r.blueprint, workload: r.workload, kind: r.kind,
  state: r.state as WorkloadState, health: r.health as HealthState | null, restarts: r.restarts, attempt: r.attempt,
  lastExit: r.last_exit, lastError: r.last_error, since: r.since, nextRestartAt: r.next_restart_at,
});
const toEvent = (r: EventRow): ZoneEvent => ({
  seq: r.seq, at: r.at, owner: r.owner, blueprint: r.blueprint, workload: r.workload, from: r.from_state, to: r.to_state, reason: r.reason,
});
const toBlueprint = (r: BlueprintRow): StoredBlueprint => ({
  owner: r.owner, name: r.name, version: r.version, deleted: r.deleted === 1, document: JSON.parse(r.document) as Blueprint, acceptedAt: r.accepted_at,
});

/** SQLite's code for a write the disk (or its quota) had no room for. */
const FULL_CODES = new Set(['SQLITE_FULL']);

/** The NO_SPACE refusal for a store error that means the disk is full; null for any other error. */
function noSpace(err: unknown): ZoneError | null {
  if (err instanceof ZoneError) return err.code === 'NO_SPACE' ? err : null;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !FULL_CODES.has(code)) return null;
  return new ZoneError('NO_SPACE', `the node's store cannot write (${code}: ${(err as Error).message}): its disk is full; nothing was changed, reads still work; free space and try again`);
}

export class Store {
  private readonly db: Database.Database;
  private readonly stmt;
  /** Every reconcile pass reads all blueprints: kept parsed in memory, dropped on each write. */
  private blueprintCache: readonly StoredBlueprint[] | null = null;
  /** `owner|name` of stored blueprints this node keeps (their versions still stop replays) but does not run. */
  private readonly withheld = new Set<string>();
  /** Work to run once the outermost transaction has committed (dropped when it rolls back). */
  private committed: (() => void)[] = [];

  constructor(path: string, private readonly eventsLimit = 10_000) {
    this.db = new Database(path);
    // Before the first write: SQLite gives the -wal and -shm files the database's mode.
    chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.stmt = {
      version: this.db.prepare<[string, string], { version: number }>('SELECT version FROM blueprints WHERE owner = ? AND name = ?'),
      putBlueprint: this.db.prepare(`INSERT INTO blueprints (owner, name, version, deleted, document, accepted_at)
        VALUES (@owner, @name, @version, @deleted, @document, @acceptedAt)
        ON CONFLICT (owner, name) DO UPDATE SET version = excluded.version, deleted = excluded.deleted,
          document = excluded.document, accepted_at = excluded.accepted_at`),
      blueprints: this.db.prepare<[], BlueprintRow>('SELECT * FROM blueprints ORDER BY name, owner'),
      workloads: this.db.prepare<[], WorkloadRow>('SELECT * FROM workloads ORDER BY blueprint, workload'),
      putWorkload: this.db.prepare(`INSERT OR REPLACE INTO workloads
        (id, owner, blueprint, workload, kind, state, health, restarts, attempt, last_exit, last_error, since, next_restart_at)
        VALUES (@id, @owner, @blueprint, @workload, @kind, @state, @health, @restarts, @attempt, @lastExit, @lastError, @since, @nextRestartAt)`),
      deleteWorkload: this.db.prepare<[string]>('DELETE FROM workloads WHERE id = ?'),
      addEvent: this.db.prepare(`INSERT INTO events (at, owner, blueprint, workload, from_state, to_state, reason)
        VALUES (@at, @owner, @blueprint, @workload, @from, @to, @reason)`),
      trimEvents: this.db.prepare<[number]>('DELETE FROM events WHERE seq <= ?'),
      events: this.db.prepare<[number, number], EventRow>('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
      eventsOf: this.db.prepare<[number, string, number], EventRow>('SELECT * FROM events WHERE seq > ? AND blueprint = ? ORDER BY seq LIMIT ?'),
    };
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(`store schema version ${current} is newer than this appliance knows (${MIGRATIONS.length}): refusing to run an older appliance on it`);
    }
    // Nothing written when up to date: a node whose disk is full still starts (and serves reads).
    if (current === MIGRATIONS.length) return;
    this.db.transaction(() => {
      MIGRATIONS.slice(current).forEach((sql) => this.db.exec(sql));
      this.db.pragma(`user_version = ${MIGRATIONS.length}`);
    })();
  }

  storedVersion(owner: string, name: string): number | null {
    return this.stmt.version.get(owner, name)?.version ?? null;
  }

  /** Stores the latest version of a blueprint (or its tombstone); durable on return. */
  putBlueprint(bp: Blueprint, acceptedAt: string): void {
    this.blueprintCache = null;
    this.withheld.delete(`${bp.owner}|${bp.name}`);
    this.write(() => this.stmt.putBlueprint.run({
      owner: bp.owner, name: bp.name, version: bp.version, deleted: bp.delete ? 1 : 0, document: JSON.stringify(bp), acceptedAt,
    }));
  }

  /** All stored blueprints but the withheld ones (shared objects: do not modify). */
  blueprints(): readonly StoredBlueprint[] {
    this.blueprintCache ??= this.stmt.blueprints.all().map(toBlueprint).filter((b) => !this.withheld.has(`${b.owner}|${b.name}`));
    return this.blueprintCache;
  }

  /**
   * Keeps a stored blueprint out of blueprints() (so out of the desired state) until a
   * newer version is stored; for this process only: the caller decides again at each start.
   */
  withhold(owner: string, name: string): void {
    this.blueprintCache = null;
    this.withheld.add(`${owner}|${name}`);
  }

  workloads(): WorkloadRecord[] {
    return this.stmt.workloads.all().map(toRecord);
  }

  putWorkload(record: WorkloadRecord): void {
    this.write(() => this.stmt.putWorkload.run(record));
  }

  deleteWorkload(id: string): void {
    this.write(() => this.stmt.deleteWorkload.run(id));
  }

  /** Appends an event, keeping only the newest `eventsLimit`; returns it with its seq. */
  appendEvent(event: NewEvent): ZoneEvent {
    return this.write(() => {
      const seq = Number(this.stmt.addEvent.run(event).lastInsertRowid);
      this.stmt.trimEvents.run(seq - this.eventsLimit);
      return { seq, ...event };
    });
  }

  events(options: { after?: number; blueprint?: string; limit?: number }): ZoneEvent[] {
    const after = options.after ?? 0;
    const limit = Math.min(options.limit ?? 1000, 10_000);
    const rows = options.blueprint === undefined ? this.stmt.events.all(after, limit) : this.stmt.eventsOf.all(after, options.blueprint, limit);
    return rows.map(toEvent);
  }

  /**
   * Runs `fn` in one transaction (one fsync for many writes); nested calls are savepoints.
   * Throws NO_SPACE (and rolls back) when the disk is full.
   */
  transaction<T>(fn: () => T): T {
    const outermost = !this.db.inTransaction;
    const mark = this.committed.length;
    let result: T;
    try {
      result = this.write(() => this.db.transaction(fn)());
    } catch (err) {
      this.committed.length = outermost ? 0 : mark;
      // It may have been read back inside the transaction that was rolled back.
      this.blueprintCache = null;
      throw err;
    }
    if (outermost) this.committed.splice(0).forEach((work) => work());
    return result;
  }

  /**
   * Runs `work` once what was written so far is committed: at once outside a transaction,
   * else after the outermost one commits; never when it rolls back. Memory that mirrors
   * the store is changed here, so a refused write leaves it as it was.
   */
  afterCommit(work: () => void): void {
    if (this.db.inTransaction) this.committed.push(work);
    else work();
  }

  /** `work` (a write), with a full disk turned into NO_SPACE. */
  private write<T>(work: () => T): T {
    try {
      return work();
    } catch (err) {
      throw noSpace(err) ?? err;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

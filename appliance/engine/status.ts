// The workload status machine: what a workload's record becomes when something happens
// to it. Pure (the time is an argument), so every transition is a row of a table test;
// the reconciler only persists what `next` returns (a change of state is an event).
import type { HealthState, ObservedState } from '../../drivers/contract.ts';
import { ranStably, restartDelayMs, waitingState, type BackoffPolicy } from '../../lib/backoff.ts';
import type { WorkloadRecord } from '../store.ts';

/** The step kinds that make a workload run (their outcome is recorded here). */
export type RunAction = 'create' | 'start' | 'restart' | 'replace';

export type Outcome =
  /** Listed running with no step planned. */
  | { kind: 'running'; health: HealthState | null; startedAt: string | null }
  /** Listed exited with no step planned (its restart policy keeps it so). */
  | { kind: 'exited'; exitCode: number | null; policy: string }
  /** Its engine cannot be asked now. */
  | { kind: 'engine-unavailable'; reason: string }
  /** A step is planned for it (a new one is pending from now). */
  | { kind: 'planned' }
  /** A restart is due but its backoff has not elapsed. */
  | { kind: 'waiting'; until: Date; attempt: number; reason: string; exitCode?: number | null }
  /** A restart (after a failure, or asked for) is under way: it is down meanwhile. */
  | { kind: 'restarting'; reason: string; exitCode?: number | null }
  /** Its removal is under way. */
  | { kind: 'removing'; reason: string }
  /**
   * A run step succeeded. `attempt` is the backoff exponent the step restarted it as
   * (absent when it was no restart after a failure).
   */
  | { kind: 'succeeded'; action: RunAction; reason: string; state: ObservedState; health: HealthState | null; attempt?: number }
  /** A run step failed: its engine was down, the spec cannot run as written, or anything else. */
  | { kind: 'failed'; action: RunAction; cause: 'engine-down' | 'unrunnable' | 'other'; message: string; attempt?: number }
  /** It is gone: removed, or no longer desired nor seen. */
  | { kind: 'removed'; reason: string };

/** Who the record is of, when there is none yet. */
export type RecordIdentity = Pick<WorkloadRecord, 'id' | 'owner' | 'blueprint' | 'workload' | 'kind'>;

export interface Transition {
  /** The record to keep; null: forget it. Equal to the one given when nothing changed. */
  record: WorkloadRecord | null;
  /** Why: the event's reason when the state changed. */
  reason: string;
}

type Patch = Partial<Omit<WorkloadRecord, 'id' | 'owner' | 'blueprint' | 'workload' | 'kind' | 'since'>>;

const isWaiting = (r: WorkloadRecord | null) => r?.state === 'backoff' || r?.state === 'crashloop';

function succeededReason(o: Extract<Outcome, { kind: 'succeeded' }>): string {
  if (o.attempt !== undefined || o.action === 'restart') return `restarted (${o.reason})`;
  if (o.action === 'create') return o.reason === 'new workload' ? 'created' : `created again (${o.reason})`;
  return `${o.action === 'replace' ? 'replaced' : 'started'} (${o.reason})`;
}

/**
 * The record after `outcome`. `current` is null for a workload with no record yet
 * (`who` says who it is). `since` moves to `now` whenever the state changes.
 */
export function next(current: WorkloadRecord | null, who: RecordIdentity, outcome: Outcome, now: Date, backoff: BackoffPolicy): Transition {
  const base: WorkloadRecord = current ?? {
    ...who, state: 'pending', health: null, restarts: 0, attempt: 0, lastExit: null, lastError: null, since: now.toISOString(), nextRestartAt: null,
  };
  const to = (patch: Patch, reason: string): Transition => {
    const record = { ...base, ...patch };
    if (current && record.state !== current.state) record.since = now.toISOString();
    return { record, reason };
  };
  const same = (reason: string): Transition => ({ record: current ?? base, reason });

  switch (outcome.kind) {
    case 'running': {
      const stable = ranStably(outcome.startedAt, now, backoff) && base.attempt > 0;
      const reason = !current ? 'adopted: already running' : current.state === 'unknown' ? 'engine back' : stable ? 'stable' : 'running';
      return to({ state: 'running', health: outcome.health, nextRestartAt: null, lastError: null, ...(stable ? { attempt: 0 } : {}) }, reason);
    }
    case 'exited':
      return to({ state: 'exited', health: null, lastExit: outcome.exitCode, nextRestartAt: null },
        `${outcome.exitCode === null ? 'exited' : `exited with code ${outcome.exitCode}`}; restart policy ${outcome.policy}`);
    case 'engine-unavailable':
      return to({ state: 'unknown', lastError: outcome.reason }, outcome.reason);
    case 'planned':
      return current ? same('planned') : to({}, 'accepted');
    case 'waiting':
      // Scheduled already: the pass that scheduled it said so.
      if (current?.nextRestartAt) return same(outcome.reason);
      return to({
        state: waitingState(outcome.attempt, backoff), attempt: outcome.attempt, nextRestartAt: outcome.until.toISOString(),
        lastError: outcome.reason, health: null, ...(outcome.exitCode !== undefined ? { lastExit: outcome.exitCode } : {}),
      }, `${outcome.reason}; restart ${outcome.attempt + 1} at ${outcome.until.toISOString()}`);
    case 'restarting':
      // Down while it restarts, so the restart is an event (and a new process row);
      // a workload waiting out its backoff shows that until it runs again.
      if (isWaiting(current)) return same(`restarting (${outcome.reason})`);
      return to({ state: 'pending', health: null, ...(outcome.exitCode !== undefined ? { lastExit: outcome.exitCode } : {}) }, `restarting (${outcome.reason})`);
    case 'removing':
      return to({ state: 'removing' }, outcome.reason);
    case 'succeeded': {
      const restarted = outcome.attempt !== undefined || outcome.action === 'restart';
      return to({
        state: outcome.state === 'running' ? 'running' : 'pending',
        health: outcome.health,
        restarts: base.restarts + (restarted ? 1 : 0),
        attempt: outcome.action === 'replace' ? 0 : (outcome.attempt ?? base.attempt) + (restarted ? 1 : 0),
        nextRestartAt: null,
        lastError: null,
      }, succeededReason(outcome));
    }
    case 'failed': {
      const why = `${outcome.action} failed: ${outcome.message}`;
      if (outcome.cause === 'engine-down') return to({ state: 'unknown', lastError: outcome.message }, outcome.message);
      // A spec the engine cannot run as written is retried slowly; other errors back off.
      const unrunnable = outcome.cause === 'unrunnable';
      const attempt = outcome.attempt ?? base.attempt;
      const delayMs = unrunnable ? backoff.maxMs : restartDelayMs(attempt, backoff);
      return to({
        state: unrunnable ? 'failed' : waitingState(attempt, backoff),
        lastError: outcome.message, nextRestartAt: new Date(now.getTime() + delayMs).toISOString(), attempt: attempt + 1,
      }, why);
    }
    case 'removed':
      return { record: null, reason: outcome.reason };
  }
}

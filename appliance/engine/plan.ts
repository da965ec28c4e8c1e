// The pure heart of the engine: from the desired workloads, what the drivers report
// and what the engine remembers, the steps that bring reality to the blueprint. No
// I/O and no clock of its own (time is an argument), so every case is a table test.
// A running workload whose spec hash matches plans no step: after an appliance
// restart it is adopted as it is, not restarted.
import type { ObservedWorkload, WorkloadIdentity, WorkloadSpec } from '../../drivers/contract.ts';
import type { WorkloadRecord } from '../store.ts';
import { DEFAULT_BACKOFF, ranStably, restartDelayMs, type BackoffPolicy } from '../../lib/backoff.ts';

/**
 * On a start or restart that brings back a failed workload: the backoff exponent it
 * counts as (the first restart, 0, is immediate), and the exit it follows.
 */
export interface Recovery {
  attempt: number;
  exitCode?: number | null;
}

export type Step =
  /** Missing from its engine: create and start it. */
  | { kind: 'create'; spec: WorkloadSpec; reason: string }
  /** Defined but not running (never started, or exited and due for a restart). */
  | { kind: 'start'; spec: WorkloadSpec; reason: string; recovery?: Recovery }
  /** Running but unhealthy (or its owner asked): stop it and start it again. */
  | { kind: 'restart'; spec: WorkloadSpec; reason: string; recovery: Recovery }
  /** Its spec hash differs from the desired one: remove it and create the desired one. */
  | { kind: 'replace'; spec: WorkloadSpec; reason: string }
  /** Ours but no longer desired. */
  | { kind: 'remove'; id: string; driver: string; identity: WorkloadIdentity; reason: string }
  /** A restart is due but its backoff has not elapsed; `attempt` is the backoff exponent used. */
  | { kind: 'wait'; spec: WorkloadSpec; until: Date; attempt: number; reason: string; exitCode?: number | null };

export interface Observed {
  /** What the drivers list, by engine-side id. */
  workloads: ReadonlyMap<string, ObservedWorkload>;
  /** Workload kinds whose engine cannot be asked now (unreachable, or no driver): nothing is planned for them. */
  unavailable: ReadonlySet<string>;
}

export interface PlanOptions {
  backoff?: BackoffPolicy;
  /** Workloads with a step in flight: planned again once it ends. */
  busy?: ReadonlySet<string>;
}

function wantsRestart(spec: WorkloadSpec, o: ObservedWorkload): boolean {
  switch (spec.definition.restart) {
    case 'always': return true;
    case 'on-failure': return o.oomKilled || (o.exitCode ?? 1) !== 0;
    case 'never': return false;
  }
}

/** Who a workload is on this node (records do not hold the node: they are all this node's). */
const identityKey = (w: Omit<WorkloadIdentity, 'node'>) => JSON.stringify([w.owner, w.blueprint, w.workload]);

function describeExit(o: ObservedWorkload): string {
  if (o.oomKilled) return 'killed: out of memory';
  return o.exitCode === null ? 'exited' : `exited with code ${o.exitCode}`;
}

export function planSteps(
  desired: readonly WorkloadSpec[],
  observed: Observed,
  records: ReadonlyMap<string, WorkloadRecord>,
  now: Date,
  options: PlanOptions = {},
): Step[] {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const busy = options.busy ?? new Set<string>();
  const steps: Step[] = [];

  /** A restart of a failed workload: at once the first time, then once its backoff has elapsed. */
  const afterBackoff = (spec: WorkloadSpec, kind: 'start' | 'restart', reason: string, run: ObservedWorkload, runEndedAt: Date): Step => {
    const r = records.get(spec.id);
    const exit = kind === 'start' ? { exitCode: run.exitCode } : {};
    if (r?.nextRestartAt) {
      const until = new Date(r.nextRestartAt);
      return now >= until ? { kind, spec, reason, recovery: { attempt: r.attempt, ...exit } } : { kind: 'wait', spec, until, attempt: r.attempt, reason, ...exit };
    }
    const attempt = ranStably(run.startedAt, runEndedAt, backoff) ? 0 : (r?.attempt ?? 0);
    const delayMs = restartDelayMs(attempt, backoff);
    if (delayMs === 0) return { kind, spec, reason, recovery: { attempt, ...exit } };
    return { kind: 'wait', spec, until: new Date(now.getTime() + delayMs), attempt, reason, ...exit };
  };

  const wanted = new Set(desired.map((d) => d.id));
  // A workload under another name than its own (an older appliance's): removed first,
  // and its replacement created once it is gone (its removal no longer in flight, its
  // record forgotten), so the two never hold its ports, or its /zone, at once.
  const renamed = new Set([
    ...[...observed.workloads.values()].filter((o) => !wanted.has(o.id)).map(identityKey),
    ...[...records.values()].filter((r) => !wanted.has(r.id) && busy.has(r.id)).map(identityKey),
  ]);

  for (const spec of desired) {
    if (busy.has(spec.id) || observed.unavailable.has(spec.definition.kind)) continue;
    const o = observed.workloads.get(spec.id);
    const r = records.get(spec.id);
    if (!o && renamed.has(identityKey(spec))) continue;
    if (!o) {
      // A create that failed before waits out its backoff; a new or vanished one goes now.
      const reason = !r || r.state === 'pending' ? 'new workload' : 'missing from its engine';
      const due = !r?.nextRestartAt || now >= new Date(r.nextRestartAt);
      steps.push(due ? { kind: 'create', spec, reason } : { kind: 'wait', spec, until: new Date(r.nextRestartAt ?? 0), attempt: r.attempt, reason });
    } else if (o.specHash !== spec.specHash) {
      steps.push({ kind: 'replace', spec, reason: 'spec changed' });
    } else if (o.state === 'running') {
      if (o.health === 'unhealthy' && spec.definition.restart !== 'never') steps.push(afterBackoff(spec, 'restart', 'unhealthy', o, now));
    } else if (o.state === 'created' || o.state === 'paused') {
      steps.push({ kind: 'start', spec, reason: o.state === 'created' ? 'not started' : 'paused' });
    } else if (wantsRestart(spec, o)) {
      steps.push(afterBackoff(spec, 'start', describeExit(o), o, o.finishedAt ? new Date(o.finishedAt) : now));
    }
  }

  const desiredIdentities = new Set(desired.map(identityKey));
  for (const o of observed.workloads.values()) {
    if (wanted.has(o.id) || busy.has(o.id)) continue;
    steps.push({
      kind: 'remove', id: o.id, driver: o.kind,
      identity: { node: o.node, owner: o.owner, blueprint: o.blueprint, workload: o.workload },
      reason: desiredIdentities.has(identityKey(o)) ? 'named by an older appliance: replaced under its own name' : 'not desired any more',
    });
  }
  return steps;
}

// Pure: what libvirt tells us of a domain -> the contract's ObservedWorkload, and the events
// between two polls of our domains (the binding has no event callbacks).
import type { DriverEvent, ObservedState, ObservedWorkload } from '../contract.ts';
import type { DomainMetadata } from './domain-xml.ts';

/** libvirt's virDomainState numbers. */
export const DomainStates = { NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7 } as const;

/** `hasRun`: the domain printed on its console, so shut off means it ran and ended. */
export function observedStateOf(state: number, hasRun: boolean): ObservedState {
  switch (state) {
    case DomainStates.RUNNING:
    case DomainStates.BLOCKED:
    case DomainStates.SHUTDOWN: // shutting down: still running until it is off
      return 'running';
    case DomainStates.PAUSED:
    case DomainStates.PMSUSPENDED:
      return 'paused';
    default:
      return hasRun ? 'exited' : 'created';
  }
}

export interface DomainSnapshot {
  metadata: DomainMetadata;
  name: string;
  state: number;
  /** libvirt's domain id: a new one on every start (null when off). */
  domainId: number | null;
  hasRun: boolean;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export function observedOf(d: DomainSnapshot): ObservedWorkload {
  const state = observedStateOf(d.state, d.hasRun);
  return {
    ...d.metadata,
    id: d.name,
    kind: 'vm',
    state,
    exitCode: state === 'exited' ? d.exitCode : null,
    startedAt: d.startedAt,
    finishedAt: state === 'exited' ? d.finishedAt : null,
    health: null,
    oomKilled: false,
  };
}

export interface PollView {
  state: ObservedState;
  domainId: number | null;
  exitCode: number | null;
}

/** Events that explain the change from `before` to `after` (maps keyed by domain name). */
export function domainEvents(before: Map<string, PollView>, after: Map<string, PollView>, at: Date): DriverEvent[] {
  const events: DriverEvent[] = [];
  for (const [id, now] of after) {
    const was = before.get(id);
    const restarted = was?.state === 'running' && now.state === 'running' && was.domainId !== now.domainId;
    if (restarted || (was?.state === 'running' && now.state !== 'running' && now.state !== 'paused')) {
      events.push({ type: 'exited', id, at, exitCode: restarted ? null : now.exitCode, oomKilled: false });
    }
    if (now.state === 'running' && (was?.state !== 'running' || restarted)) events.push({ type: 'started', id, at });
  }
  for (const [id, was] of before) {
    if (after.has(id)) continue;
    if (was.state === 'running') events.push({ type: 'exited', id, at, exitCode: null, oomKilled: false });
    events.push({ type: 'removed', id, at });
  }
  return events;
}

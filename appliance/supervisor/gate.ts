// The health gate of an upgrade, decided purely: the new release passes when its API
// answers and it reported its first full reconcile pass with the pseudokernel connected
// and no workload started or restarted; it fails at once when it exits or reports
// otherwise, and when the deadline passes first.

/** What a supervised appliance reports once its first full reconcile pass is done. */
export interface ReadyReport {
  type: 'ready';
  version: string;
  /** Its API, for the supervisor's own check that it answers. */
  url: string;
  /** connected; absent: the node runs without one (configured so); down: it should run and does not. */
  pseudokernel: 'connected' | 'absent' | 'down';
  /** Workloads it created again, started, restarted or replaced since it started: an upgrade must adopt, not restart. */
  workloadStarts: number;
}

export interface GateObservation {
  now: number;
  deadline: number;
  /** The gate's length, for the reason. */
  limitSeconds: number;
  /** How the new appliance exited, when it did. */
  exited: string | null;
  ready: ReadyReport | null;
  /** Its API answered GET /healthz since it reported. */
  apiAnswered: boolean;
}

export type GateVerdict = { kind: 'pass' } | { kind: 'wait' } | { kind: 'fail'; reason: string };

export function judgeGate(o: GateObservation): GateVerdict {
  if (o.exited !== null) return { kind: 'fail', reason: `the new appliance exited (${o.exited}) before it was healthy` };
  if (o.ready) {
    if (o.ready.workloadStarts > 0) return { kind: 'fail', reason: `the new appliance started or restarted ${o.ready.workloadStarts} workload(s) in its first pass instead of adopting them` };
    if (o.ready.pseudokernel === 'down') return { kind: 'fail', reason: 'the new appliance\'s pseudokernel is not connected' };
    if (o.apiAnswered) return { kind: 'pass' };
  }
  if (o.now >= o.deadline) {
    const missing = !o.ready ? 'no full reconcile pass reported' : 'its API did not answer';
    return { kind: 'fail', reason: `the new appliance was not healthy within ${o.limitSeconds} s (${missing})` };
  }
  return { kind: 'wait' };
}

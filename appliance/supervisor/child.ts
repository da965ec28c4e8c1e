// The appliance's side of the supervisor (when it runs as the supervisor's child, with
// an IPC channel): it reports its health once its first full reconcile pass is done,
// asks for a release it installed, and stops when its supervisor is gone (a killed
// supervisor's successor starts its own).
import type { ReadyReport } from './gate.ts';
import type { ReleaseRef } from '../release/state.ts';

export interface SupervisorLink {
  /** Asks the supervisor to switch to `to` (it stops this process first). */
  requestUpgrade(to: ReleaseRef): void;
}

/** The link to this process's supervisor; null when it runs without one. */
export function supervisorLink(): SupervisorLink | null {
  const send = process.send?.bind(process);
  if (!send) return null;
  return { requestUpgrade: (to) => send({ type: 'upgrade', to }) };
}

/** Reports `health` once it resolves and calls `stop` when the supervisor goes; nothing without a supervisor. */
export function reportToSupervisor(health: () => Promise<Omit<ReadyReport, 'type'>>, stop: (why: string) => void): void {
  if (!process.send) return;
  // Gone while this process started (killed at once): no disconnect event comes any more.
  if (!process.connected) {
    stop('supervisor gone');
    return;
  }
  process.once('disconnect', () => stop('supervisor gone'));
  void health().then((report) => process.send?.({ type: 'ready', ...report } satisfies ReadyReport));
}

// The event log: every transition is stored (with its seq, bounded by the store) and
// handed to live listeners. A listener that throws is logged and kept: one bad
// subscriber must not stop the others or the engine. Listeners hear an event once it is
// committed: an event the store refused (a full disk) is never told.
import type { Logger } from 'pino';
import type { NewEvent, Store } from './store.ts';
import type { ZoneEvent } from './types.ts';

export class EventLog {
  private readonly listeners = new Set<(event: ZoneEvent) => void>();

  constructor(private readonly store: Store, private readonly logger: Logger) {}

  record(event: Omit<NewEvent, 'at'> & { at?: string }): ZoneEvent {
    const stored = this.store.appendEvent({ ...event, at: event.at ?? new Date().toISOString() });
    this.store.afterCommit(() => this.publish(stored));
    return stored;
  }

  private publish(event: ZoneEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn({ err }, 'event listener failed');
      }
    }
  }

  subscribe(listener: (event: ZoneEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

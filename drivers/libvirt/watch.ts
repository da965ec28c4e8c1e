// The binding has no domain event callbacks, so events come from polling our domains and
// diffing two views (observed.ts); an unreachable libvirtd is reported once, and so is its return.
import { EngineUnavailableError, type DriverEvent } from '../contract.ts';
import { domainEvents, type PollView } from './observed.ts';

export class DomainPoller {
  private readonly listeners = new Set<(event: DriverEvent) => void>();
  private timer: NodeJS.Timeout | null = null;
  private view: Map<string, PollView> | null = null;
  private available = true;
  private running = false;

  constructor(private readonly poll: () => Promise<Map<string, PollView>>, private readonly intervalMs: number) {}

  subscribe(listener: (event: DriverEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.intervalMs);
      void this.tick();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.view = null;
  }

  private emit(event: DriverEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the others still get the event.
      }
    }
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const next = await this.poll();
      const at = new Date();
      if (!this.available) {
        this.available = true;
        this.emit({ type: 'engine', at, available: true });
      }
      // The first view is the baseline: what already runs is not news.
      if (this.view && this.timer) for (const event of domainEvents(this.view, next, at)) this.emit(event);
      if (this.timer) this.view = next;
    } catch (err) {
      if (err instanceof EngineUnavailableError && this.available) {
        this.available = false;
        this.emit({ type: 'engine', at: new Date(), available: false, reason: err.message });
      }
    } finally {
      this.running = false;
    }
  }
}

// What list() learnt of each container, kept while nothing can have changed it: a
// reconcile pass lists every workload, and inspecting each of 1,000 containers at
// every pass (a deploy wakes one per step) kept dockerd from creating the new ones.
// An entry holds while the events stream that was live when it was taken is still
// connected, no event of that container came since, the listing still shows it in the
// same state, and it is younger than MAX_AGE_MS (what no event tells is seen then).
import type { ObservedWorkload } from '../contract.ts';
import { observedStateOf } from './observed.ts';

export const MAX_AGE_MS = 30_000;

interface Entry {
  /** Docker's id: a container made again under the same name is another one. */
  dockerId: string;
  observed: ObservedWorkload | null;
  session: number;
  at: number;
}

export class ListedContainers {
  private readonly entries = new Map<string, Entry>();
  /** Bumped at every event; per container, the value at its latest event. */
  private touches = 0;
  private readonly touchedAt = new Map<string, number>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** An event of the container (by name) was read: what was learnt of it is stale. */
  touched(name: string): void {
    this.touchedAt.set(name, ++this.touches);
    this.entries.delete(name);
  }

  /** A mark to take before an inspect: `remember` drops what an event touched since. */
  mark(): number {
    return this.touches;
  }

  /** What was learnt of the container, when it still holds; undefined otherwise. */
  recall(name: string, summary: { Id: string; State: string }, session: number | null): ObservedWorkload | null | undefined {
    const entry = this.entries.get(name);
    if (!entry) return undefined;
    const holds = session !== null && entry.session === session && entry.dockerId === summary.Id && this.clock() - entry.at < MAX_AGE_MS &&
      (entry.observed === null || entry.observed.state === observedStateOf(summary.State));
    if (holds) return entry.observed;
    this.entries.delete(name);
    return undefined;
  }

  /** Keeps an inspect's result taken since `mark` under a live `session`, unless an event of the container came meanwhile. */
  remember(name: string, dockerId: string, observed: ObservedWorkload | null, mark: number, session: number | null): void {
    if (session === null || (this.touchedAt.get(name) ?? 0) > mark) return;
    this.entries.set(name, { dockerId, observed, session, at: this.clock() });
  }

  /** Forgets the containers no longer listed. */
  keepOnly(names: ReadonlySet<string>): void {
    for (const name of this.entries.keys()) if (!names.has(name)) this.entries.delete(name);
    for (const name of this.touchedAt.keys()) if (!names.has(name)) this.touchedAt.delete(name);
  }
}

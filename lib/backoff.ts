// Crash-loop backoff (per workload, and for the node's own nats-server): the first
// restart at once (as Docker's and systemd's), then a short delay, doubling, capped,
// and reset once it has run for a stable period. Pure arithmetic.
export interface BackoffPolicy {
  /** The delay before the second restart (the first is immediate); doubled for each one after. */
  firstMs: number;
  maxMs: number;
  /** Running this long without exiting counts as stable: the next failure starts over at firstMs. */
  stableMs: number;
  /** From this many restarts without a stable period, the state is `crashloop` (still retried). */
  crashloopAfter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { firstMs: 1000, maxMs: 5 * 60_000, stableMs: 10 * 60_000, crashloopAfter: 3 };

/**
 * The delay before restart number `attempt + 1` (attempt counts restarts since the last
 * stable period): none for the first, then firstMs, doubling, capped.
 */
export function restartDelayMs(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  if (!(attempt >= 1)) return 0;
  // 2 ** 40 already exceeds any cap; bounding the exponent keeps the number finite.
  return Math.min(policy.firstMs * 2 ** Math.min(attempt - 1, 40), policy.maxMs);
}

/** Whether a run from `startedAt` (ISO) until `until` lasted the stable period. */
export function ranStably(startedAt: string | null, until: Date, policy: BackoffPolicy = DEFAULT_BACKOFF): boolean {
  if (!startedAt) return false;
  const started = Date.parse(startedAt);
  return Number.isFinite(started) && until.getTime() - started >= policy.stableMs;
}

/** What a waiting workload shows: `backoff`, or `crashloop` once it keeps failing. */
export function waitingState(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): 'backoff' | 'crashloop' {
  return attempt >= policy.crashloopAfter ? 'crashloop' : 'backoff';
}

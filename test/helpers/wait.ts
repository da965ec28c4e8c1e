// Polls a condition with a bounded timeout: tests wait for what they expect, never sleep.

/** The least time past the deadline after which a try still running is taken as hung. */
const HUNG_AFTER_MS = 60_000;

export interface WaitOptions {
  timeoutMs: number;
  /** What is awaited, for the timeout message ("container x running"). */
  what: string;
  intervalMs?: number;
  /**
   * A try still running this long after the deadline is taken as hung, so that a try that
   * never ends fails the wait rather than the test file's timeout, which names no step.
   * Default: the timeout again, at least a minute (a slow try is not a hung one).
   */
  hungAfterMs?: number;
}

/**
 * Calls `fn` until it returns a value other than undefined, null or false, and returns
 * that value; rejects naming `what` after `timeoutMs`, with the error of the last try
 * if it threw (an error from an earlier try that later ones got past would mislead).
 */
export async function waitFor<T>(fn: () => T | Promise<T>, options: WaitOptions): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 50;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await settledBy(fn(), deadline + (options.hungAfterMs ?? Math.max(options.timeoutMs, HUNG_AFTER_MS)));
      lastError = undefined;
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** `value` if it settles before `hungAt`. */
async function settledBy<T>(value: T | Promise<T>, hungAt: number): Promise<T> {
  if (!(value instanceof Promise)) return value;
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('a try was still running: hung?')), Math.max(hungAt - Date.now(), 0));
  });
  try {
    return await Promise.race([value, hung]);
  } finally {
    clearTimeout(timer);
  }
}

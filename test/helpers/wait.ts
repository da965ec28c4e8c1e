// Polls a condition with a bounded timeout: tests wait for what they expect, never sleep.

export interface WaitOptions {
  timeoutMs: number;
  /** What is awaited, for the timeout message ("container x running"). */
  what: string;
  intervalMs?: number;
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
      const value = await fn();
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

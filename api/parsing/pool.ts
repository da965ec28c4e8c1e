// The API's parse workers: submitted bodies are parsed and verified in worker threads
// (./worker.ts), so that a large or hostile body never holds the thread that serves
// the API, runs the engine and answers FUSE. The pool's queue and the time a body may
// take are bounded; past them the client is told to retry.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { ZoneError } from '../../lib/errors.ts';
import type { BlueprintFormat } from '../../blueprints/parse.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import type { ParseResult, ParseTask, ParseWorkerData } from './worker.ts';

export interface ParsePoolOptions {
  /** Worker threads (default: the CPUs but one, at least 1, at most 4). */
  threads?: number;
  /** Bodies that may wait for a worker, besides those being parsed (default 128); past it 429 TOO_MANY. */
  maxQueue?: number;
  /** Time a body may take from its arrival to its verdict, waiting included (default 5 s); past it 503 UNAVAILABLE. */
  timeoutMs?: number;
  /** Heap of one worker in MiB (default 256); a body that needs more is refused, 413 TOO_LARGE. */
  heapMb?: number;
}

export const PARSE_POOL_DEFAULTS = { maxQueue: 128, timeoutMs: 5000, heapMb: 256, maxThreads: 4 } as const;

export interface ParsePool {
  /** The verified value of a body, or ZoneError (the parser's or the verifier's refusal, or a bound of the pool). */
  parse(body: Buffer, format: BlueprintFormat): Promise<unknown>;
  close(): Promise<void>;
}

/** What a blueprint must meet on this node, for the workers' checks before submit(). */
export interface ParseVerification {
  policy: TrustPolicy;
  nodeId: string;
}

/**
 * The pool starts its workers on the first body (a server that never takes one does not
 * pay for them). Loading a worker takes seconds on a busy machine: a body's time is
 * counted from when the first worker is ready, its wait in the queue included.
 */
export function createParsePool(verification: ParseVerification, options: ParsePoolOptions = {}): ParsePool {
  const threads = options.threads ?? Math.max(1, Math.min(availableParallelism() - 1, PARSE_POOL_DEFAULTS.maxThreads));
  const maxQueue = options.maxQueue ?? PARSE_POOL_DEFAULTS.maxQueue;
  const timeoutMs = options.timeoutMs ?? PARSE_POOL_DEFAULTS.timeoutMs;
  const heapMb = options.heapMb ?? PARSE_POOL_DEFAULTS.heapMb;
  let started: { pool: Piscina<ParseTask, ParseResult>; ready: Promise<unknown> } | null = null;
  // Counted here: piscina's maxQueue does not hold tasks that carry an AbortSignal.
  let inFlight = 0;

  function start() {
    const pool = new Piscina<ParseTask, ParseResult>({
      filename: new URL('./entry.mjs', import.meta.url).href,
      minThreads: threads, maxThreads: threads, idleTimeout: Infinity,
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
      workerData: { policy: verification.policy, nodeId: verification.nodeId } satisfies ParseWorkerData,
    });
    return { pool, ready: pool.run({ body: Buffer.from('{}'), format: 'json' }).catch(() => undefined) };
  }

  return {
    async parse(body, format) {
      if (inFlight >= threads + maxQueue) throw new ZoneError('TOO_MANY', `${maxQueue} blueprints are waiting to be parsed already; retry later`);
      started ??= start();
      const { pool, ready } = started;
      const deadline = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      void ready.then(() => {
        if (!deadline.signal.aborted) timer = setTimeout(() => deadline.abort(), timeoutMs);
      });
      let result: ParseResult;
      inFlight++;
      try {
        result = await pool.run({ body, format }, { signal: deadline.signal });
      } catch (err) {
        throw poolRefusal(err, { timeoutMs, heapMb });
      } finally {
        inFlight--;
        deadline.abort(); // a verdict came: no timer to start or to keep
        clearTimeout(timer);
      }
      if ('refusal' in result) throw new ZoneError(result.refusal.code, result.refusal.message, result.refusal.field);
      return result.value;
    },
    async close() {
      await started?.pool.destroy();
    },
  };
}

/** A failure of the pool as the client's answer; anything else stays an internal error. */
function poolRefusal(err: unknown, bounds: { timeoutMs: number; heapMb: number }): unknown {
  const e = err as Error & { code?: string };
  if (e.name === 'AbortError') {
    // The worker that was parsing it is ended with it, so a body cannot hold one for longer.
    return new ZoneError('UNAVAILABLE', `the blueprint was not parsed and verified within ${bounds.timeoutMs} ms (the node is busy, or the body is too complex); retry later`);
  }
  if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') return new ZoneError('TOO_LARGE', `parsing the blueprint needed more than ${bounds.heapMb} MiB`);
  return err;
}

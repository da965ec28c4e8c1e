// nats-server 2.9 does not answer API requests about a stream that has no leader yet
// (just created by another node, or its leader's server went away): the request times
// out. Idempotent requests are asked again, a bounded number of times. And a stream
// another server has just made can be unknown to this one for a moment, until the stream's
// assignment reaches it: its stream API answers "stream not found", and a publish to the
// stream's subjects finds no responders (nothing stored): both asked again too.
import { setTimeout as delay } from 'node:timers/promises';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { RequestError, TimeoutError } from '@nats-io/transport-node';

const ATTEMPTS = 3;

/** `request()`, asked again after a timeout; the last failure names `what`. */
export async function retryingTimeouts<T>(what: string, request: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (!isTimeout(err)) throw err;
      if (attempt === ATTEMPTS) throw new Error(`${what}: JetStream did not answer ${ATTEMPTS} times (a stream without a leader?)`, { cause: err });
    }
  }
}

const FOUND_ATTEMPTS = 20;
const FOUND_PAUSE_MS = 50;

/** `request()` on a stream made through another server, asked again while this one does not know the stream yet. */
export async function retryingStreamNotFound<T>(request: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      const notYet = (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) || isNoResponders(err);
      if (!notYet || attempt === FOUND_ATTEMPTS) throw err;
      await delay(FOUND_PAUSE_MS * attempt);
    }
  }
}

/**
 * The keys of `kv` matching `filter` (all without one), each once, listed again after a
 * timeout; `what` names the listing. A key written while the listing runs can come twice
 * (the listing is a consumer over the stream, and the write is a newer message of it).
 */
export function kvKeys(what: string, kv: KV, filter?: string): Promise<string[]> {
  return retryingTimeouts(what, async () => {
    const keys = new Set<string>();
    for await (const key of await kv.keys(filter)) keys.add(key);
    return [...keys];
  });
}

/** A JetStream publish no stream took (the client calls it "jetstream is not enabled"). */
function isNoResponders(err: unknown): boolean {
  return err instanceof Error && err.cause instanceof RequestError && err.cause.isNoResponders();
}

function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError);
}

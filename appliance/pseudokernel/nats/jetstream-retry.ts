// nats-server 2.9 does not answer API requests about a stream that has no leader yet
// (just created by another node, or its leader's server went away): the request times
// out. Idempotent requests are asked again, a bounded number of times. And a stream
// another server has just made can be unknown to this one for a moment, until the stream's
// assignment reaches it: its stream API answers "stream not found", and a publish to the
// stream's subjects finds no responders (nothing stored): both asked again too.
import { setTimeout as delay } from 'node:timers/promises';
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
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

/**
 * Opens (making them where missing) buckets of `what`: asked again after a timeout, and
 * while a stream is unknown here that another server has just made (several nodes open an
 * owner's buckets at once).
 */
export function retryingOpen<T>(what: string, open: () => Promise<T>): Promise<T> {
  return retryingTimeouts(what, () => retryingStreamNotFound(open));
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

/** Requests in flight at once when a listing looks at each subject's last message. */
const LISTING_GETS = 64;

/**
 * The last message of each subject of `stream` matching `filter`, as the stream's leader
 * has them: the subjects it holds messages on (one request), then each one's last message
 * (requests to the leader too). Not a consumer, which may sit on a follower that lags or is
 * catching up (see placed-consumer.ts) and show what was removed or miss what was written.
 */
export async function lastMessages(jsm: JetStreamManager, stream: string, filter: string): Promise<StoredMsg[]> {
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  const subjects = Object.keys(info.state.subjects ?? {});
  const messages: StoredMsg[] = [];
  for (let from = 0; from < subjects.length; from += LISTING_GETS) {
    const last = await Promise.all(subjects.slice(from, from + LISTING_GETS).map((subject) => jsm.streams.getMessage(stream, { last_by_subj: subject })));
    for (const message of last) if (message) messages.push(message);
  }
  return messages;
}

/**
 * The keys of `kv` matching `filter` (all without one) that hold a value (not a delete or
 * purge marker), each once, as the stream's leader has them (lastMessages); listed again
 * after a timeout, `what` naming the listing.
 */
export function kvKeys(what: string, kv: KV, filter = '>'): Promise<string[]> {
  const { jsm, stream, prefix } = bucketOf(kv);
  return retryingTimeouts(what, async () => (await lastMessages(jsm, stream, `${prefix}.${filter}`)).flatMap((message) => {
    const operation = message.header?.get('KV-Operation');
    return operation === 'DEL' || operation === 'PURGE' ? [] : [message.subject.slice(prefix.length + 1)];
  }));
}

/** The bucket behind a KV handle of @nats-io/kv (its Bucket keeps them public, its KV type does not name them). */
function bucketOf(kv: KV): { jsm: JetStreamManager; stream: string; prefix: string } {
  const bucket = kv as Partial<{ jsm: JetStreamManager; stream: string; prefix: string }>;
  if (!bucket.jsm || !bucket.stream || !bucket.prefix) throw new Error('a KV handle of @nats-io/kv was expected');
  return { jsm: bucket.jsm, stream: bucket.stream, prefix: bucket.prefix };
}

/** A JetStream publish no stream took (the client calls it "jetstream is not enabled"). */
function isNoResponders(err: unknown): boolean {
  return err instanceof Error && err.cause instanceof RequestError && err.cause.isNoResponders();
}

function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError);
}

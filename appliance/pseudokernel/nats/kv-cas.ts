// Compare-and-set on one key of a KV bucket that holds in a cluster. nats-server before 2.9.21
// checks a publish's expected last subject sequence against the stream's stored messages only
// (nats-io/nats-server#4320): two writes expecting the same revision, both in flight at the
// stream leader, are both accepted, and both writers take the old value as theirs (one
// discards a file version the other has just moved elsewhere). Each write from a revision
// therefore carries the message id `<key>@<revision>`: the leader's duplicate detection
// counts messages still in flight, so of the writes leaving one revision it stores the first
// and answers every other as a duplicate, which is a lost compare-and-set.
import { setTimeout as delay } from 'node:timers/promises';
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers } from '@nats-io/transport-node';
import { retryingStreamNotFound } from './jetstream-retry.ts';

/** How long a lost write waits for the winner's to be readable (it may still be in flight). */
const WINNER_WAIT_MS = 2_000;
const WINNER_POLL_MS = 5;

export interface KvKey {
  js: JetStreamClient;
  kv: KV;
  bucket: string;
  key: string;
}

/**
 * Puts `value` (null: a delete marker) at the key if its revision is still `revision` (null:
 * if it has no value, none ever or a delete marker); false if not. The stream remembers a
 * message id for its duplicate window (2 minutes), far longer than a write is in flight; a
 * key never returns to a revision it left, but to 0 (none), which a create handles below.
 */
export async function compareAndSet(at: KvKey, value: string | null, revision: number | null): Promise<boolean> {
  return (await compareAndSetRevision(at, value, revision)) !== null;
}

/** As compareAndSet, answering the key's new revision when the value was stored (null when not). */
export async function compareAndSetRevision(at: KvKey, value: string | null, revision: number | null): Promise<number | null> {
  if (revision !== null) return storedAt(await publishFrom(at, value, revision));
  const created = await publishFrom(at, value, 0);
  if (typeof created === 'number') return created;
  // A key deleted before keeps its delete marker: created from the marker's revision. (Its
  // first create's message id answers as a duplicate for 2 minutes, before the revision is checked.)
  const stored = await at.kv.get(at.key);
  if (!stored || stored.operation === 'PUT') return null;
  return storedAt(await publishFrom(at, value, stored.revision));
}

function storedAt(outcome: number | 'changed' | 'lost'): number | null {
  return typeof outcome === 'number' ? outcome : null;
}

/** The revision stored at; `changed`: the key is past `revision`; `lost`: another write from `revision` was stored first. */
async function publishFrom({ js, kv, bucket, key }: KvKey, value: string | null, revision: number): Promise<number | 'changed' | 'lost'> {
  const h = headers();
  if (value === null) h.set('KV-Operation', 'DEL');
  h.set('Nats-Expected-Last-Subject-Sequence', String(revision));
  try {
    // A bucket made through another server a moment ago may not take publishes here yet.
    const ack = await retryingStreamNotFound(() => js.publish(`$KV.${bucket}.${key}`, value ?? new Uint8Array(0), { headers: h, msgID: `${key}@${revision}` }));
    if (!ack.duplicate) return ack.seq;
  } catch (err) {
    if (isConflict(err)) return 'changed';
    throw err;
  }
  // The winner's write may still be in flight: the caller reads the key again, so wait until it shows.
  for (const deadline = Date.now() + WINNER_WAIT_MS; Date.now() < deadline; await delay(WINNER_POLL_MS)) {
    if (((await kv.get(key))?.revision ?? 0) !== revision) break;
  }
  return 'lost';
}

function isConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError
    && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

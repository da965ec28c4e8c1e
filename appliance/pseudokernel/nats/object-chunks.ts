// An object of a JetStream object store written and read by its chunks, in the store's
// own layout (ADR-20: chunks on $O.<bucket>.C.<nuid> and the object's info on
// $O.<bucket>.M.<name> in stream OBJ_<bucket>), so the store's info() and get() know it.
// Written with a bounded window of publishes in flight (the client's put() waits for each
// chunk's ack before it sends the next: one round trip per chunk), read through a
// consumer that delivers a few ahead (the client's get() is several times slower on large
// objects), and checked against the object's own size and sha256 once read.
import { createHash, randomBytes } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { ObjectInfo } from '@nats-io/obj';
import { placedOrderedConsumer } from './placed-consumer.ts';

const READ_AHEAD_CHUNKS = 8;

/**
 * Chunk size of the objects putObject writes, the object store's own. Chunks of 512 KiB
 * wrote no faster and read through FUSE at half the rate (bench/zonefs.ts, 2026-11-30).
 */
const OBJECT_CHUNK_BYTES = 128 * 1024;
/** Chunks published and not yet acknowledged, at most: the bytes a writer holds in memory. */
const PUBLISH_WINDOW = 32;

export interface PutObjectOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  bucket: string;
  name: string;
  timeoutMs?: number;
}

/**
 * Stores the bytes of `source` as object `name` (its info published last, so the object
 * exists whole or not at all); on failure the chunks already stored are purged.
 */
export async function putObject(options: PutObjectOptions, source: AsyncIterable<Uint8Array>): Promise<{ size: number; chunks: number }> {
  const { js, jsm, bucket, name, timeoutMs } = options;
  const nuid = randomBytes(16).toString('hex');
  const chunkSubject = `$O.${bucket}.C.${nuid}`;
  const hash = createHash('sha256');
  const inFlight: Promise<unknown>[] = [];
  let failed: unknown = null;
  let size = 0;
  let chunks = 0;
  let chunk = Buffer.allocUnsafe(OBJECT_CHUNK_BYTES);
  let filled = 0;
  const publish = async (payload: Buffer) => {
    hash.update(payload);
    size += payload.length;
    chunks++;
    // Publishes of one connection reach the stream in the order they were sent.
    const ack = js.publish(chunkSubject, payload, timeoutMs ? { timeout: timeoutMs } : undefined);
    ack.catch((err: unknown) => { failed ??= err; });
    inFlight.push(ack);
    if (inFlight.length >= PUBLISH_WINDOW) await inFlight.shift();
  };
  try {
    for await (const data of source) {
      let from = 0;
      while (from < data.length) {
        const n = Math.min(data.length - from, OBJECT_CHUNK_BYTES - filled);
        chunk.set(data.subarray(from, from + n), filled);
        filled += n;
        from += n;
        if (filled === OBJECT_CHUNK_BYTES) {
          // A fresh buffer for the next chunk: the one published may still be queued for sending.
          await publish(chunk);
          chunk = Buffer.allocUnsafe(OBJECT_CHUNK_BYTES);
          filled = 0;
        }
        if (failed) throw failed;
      }
    }
    if (filled > 0) await publish(chunk.subarray(0, filled));
    await Promise.all(inFlight);
    const info = {
      name, bucket, nuid, size, chunks, mtime: new Date().toISOString(), deleted: false, description: '',
      digest: `SHA-256=${paddedBase64Url(hash.digest())}`,
      options: { max_chunk_size: OBJECT_CHUNK_BYTES },
    };
    const h = headers();
    h.set('Nats-Rollup', 'sub');
    await js.publish(`$O.${bucket}.M.${paddedBase64Url(name)}`, JSON.stringify(info), { headers: h, ...(timeoutMs ? { timeout: timeoutMs } : {}) });
    return { size, chunks };
  } catch (err) {
    await Promise.allSettled(inFlight);
    await jsm.streams.purge(`OBJ_${bucket}`, { filter: chunkSubject }).catch(() => undefined);
    throw err;
  }
}

/** Padded base64url: how the object store names an object's meta subject, and writes its digest. */
export function paddedBase64Url(value: string | Buffer): string {
  return (typeof value === 'string' ? Buffer.from(value, 'utf8') : value).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/** The object's bytes, chunk by chunk; `damaged(size)` is thrown at the end when they are not the object's. */
export async function* objectChunks(js: JetStreamClient, bucket: string, info: ObjectInfo, damaged: (size: number) => Error): AsyncGenerator<Uint8Array> {
  if (info.chunks === 0) return;
  // One filter subject as a string: a list needs nats-server 2.10.
  const consumer = await placedOrderedConsumer(js, `OBJ_${bucket}`, { filter_subjects: `$O.${bucket}.C.${info.nuid}` });
  const messages = await consumer.consume({ max_messages: READ_AHEAD_CHUNKS });
  const hash = createHash('sha256');
  let chunks = 0;
  let size = 0;
  try {
    for await (const message of messages) {
      hash.update(message.data);
      size += message.data.length;
      yield message.data;
      if (++chunks === info.chunks) break;
    }
  } finally {
    await messages.close();
    // Best effort: an ordered consumer left behind expires on the server by itself.
    consumer.delete().catch(() => undefined);
  }
  const expected = Buffer.from(info.digest.replace(/^SHA-256=/i, ''), 'base64');
  if (size !== info.size || !hash.digest().equals(expected)) throw damaged(size);
}

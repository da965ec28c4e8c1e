// An object of a JetStream object store read by its chunks through a consumer that
// reads a few ahead (the client's get() is several times slower on large objects), and
// checked against the object's own size and sha256 once read.
import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { ObjectInfo } from '@nats-io/obj';

const READ_AHEAD_CHUNKS = 8;

/** The object's bytes, chunk by chunk; `damaged(size)` is thrown at the end when they are not the object's. */
export async function* objectChunks(js: JetStreamClient, bucket: string, info: ObjectInfo, damaged: (size: number) => Error): AsyncGenerator<Uint8Array> {
  if (info.chunks === 0) return;
  // The object store's layout (ADR-20): chunks on $O.<bucket>.C.<nuid> in stream OBJ_<bucket>.
  // One filter subject as a string: a list needs nats-server 2.10.
  const consumer = await js.consumers.get(`OBJ_${bucket}`, { filter_subjects: `$O.${bucket}.C.${info.nuid}` });
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

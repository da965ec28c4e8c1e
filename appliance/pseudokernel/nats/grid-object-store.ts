// A JetStream object store of the whole grid (clustered with the nodes' nats-servers, so
// any node reads what another stored), bounded in bytes: the release store and the image
// store are each one.
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, StorageType, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { lastMessages, retryingTimeouts } from './jetstream-retry.ts';
import { boundStream } from './owner-quota.ts';

/**
 * Chunks of a grid store's objects: the client publishes each and waits for its ack
 * (replicated), so the default 128 KiB chunks make a 100 MiB object 800 round trips;
 * these stay under nats-server's default max_payload (1 MiB) with room for the headers.
 */
export const GRID_OBJECT_CHUNK_BYTES = 960 * 1024;

/**
 * Opens object store `bucket`, made where missing (its first user decides the
 * replicas), and bounds it to `maxBytes` (an existing one keeps its options otherwise).
 */
export async function openGridObjectStore(nc: NatsConnection, bucket: string, options: { replicas: number; maxBytes: number }): Promise<ObjectStore> {
  const [objects, jsm] = await Promise.all([
    new Objm(jetstream(nc)).create(bucket, { replicas: options.replicas, storage: StorageType.File, max_bytes: options.maxBytes }),
    jetstreamManager(nc),
  ]);
  await boundStream(jsm, `OBJ_${bucket}`, options.maxBytes);
  return objects;
}

/** What a listing of a grid store says of an object. */
export type StoredObject = Pick<ObjectInfo, 'name' | 'description' | 'size'>;

/**
 * The objects of `store` (none deleted), as its stream's leader has them: not the client's
 * list(), a consumer that may sit on a lagging replica and miss what another node has just
 * stored (see lastMessages); listed again after a timeout, `what` naming the listing.
 */
export function storedObjects(what: string, store: ObjectStore): Promise<StoredObject[]> {
  const { jsm, stream, name } = store as Partial<{ jsm: JetStreamManager; stream: string; name: string }>;
  if (!jsm || !stream || !name) throw new Error('an object store handle of @nats-io/obj was expected');
  return retryingTimeouts(what, async () => (await lastMessages(jsm, stream, `$O.${name}.M.>`)).flatMap((message) => {
    const info = message.json<Partial<ObjectInfo>>();
    return info.deleted || typeof info.name !== 'string' ? [] : [{ name: info.name, description: info.description ?? '', size: Number(info.size ?? 0) }];
  }));
}

// A JetStream object store of the whole grid (clustered with the nodes' nats-servers, so
// any node reads what another stored), bounded in bytes: the release store and the image
// store are each one.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
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

// The contents of an owner's files: one immutable object per written version, in a
// JetStream object store. A version that was replaced or unlinked is discarded, and
// deleted once no reader holds it. Readers hold a version through a row in a KV bucket
// with a TTL, refreshed while they read: a reader that died stops holding it after the
// TTL. Reads stream the object's chunks with backpressure (the client's own get()
// pushes the whole object into memory as fast as it arrives).
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { ObjectInfo, ObjectStore } from '@nats-io/obj';
import type { Logger } from 'pino';
import { FsError, type FileVersion } from '../interfaces.ts';
import { ChunkedVersion, type ChunkIndex } from './file-version.ts';
import { kvKeys, retryingTimeouts } from '../nats/jetstream-retry.ts';
import { objectChunks, paddedBase64Url, putObject } from '../nats/object-chunks.ts';
import { placedOrderedConsumer } from '../nats/placed-consumer.ts';

export interface GridObjectsParts {
  js: JetStreamClient;
  jsm: JetStreamManager;
  files: ObjectStore;
  filesBucket: string;
  /** Where discarded versions are marked (`gc.<object>`), until deleted. */
  namespace: KV;
  namespaceBucket: string;
  /** A KV bucket whose TTL is `leaseMs`. */
  readers: KV;
  readersBucket: string;
  leaseMs: number;
  logger: Logger;
}

/** Key prefix of the versions discarded but not deleted yet. */
const DISCARDED = 'gc';

export class GridObjects {
  private sweptAt = 0;

  constructor(private readonly parts: GridObjectsParts) {}

  /** Stores the bytes of `source` as a new object. */
  async put(source: AsyncIterable<Uint8Array>): Promise<{ name: string; size: number }> {
    const name = randomBytes(16).toString('hex');
    const { size } = await putObject({ js: this.parts.js, jsm: this.parts.jsm, bucket: this.parts.filesBucket, name }, source);
    return { name, size };
  }

  /**
   * The object's bytes, held against deletion until the stream closes; null when it was
   * discarded before the hold was taken (the caller looks the path up again).
   */
  async open(name: string, path: string): Promise<Readable | null> {
    const held = await this.holdVersion(name, path);
    if (!held) return null;
    const stream = Readable.from(this.chunks(held.info, path), { objectMode: false });
    stream.once('close', () => void held.release());
    return stream;
  }

  /** As open(), read by range: nothing is fetched but the index of its chunks until it is read. */
  async openVersion(name: string, path: string): Promise<FileVersion | null> {
    const held = await this.holdVersion(name, path);
    if (!held) return null;
    try {
      const index = await retryingTimeouts(`indexing the content of ${path}`, () => this.chunkIndex(held.info));
      return new ChunkedVersion(this.parts.js, this.parts.jsm, index, path, held.release);
    } catch (err) {
      await held.release();
      throw err;
    }
  }

  /** The object's info with a hold on it, or null when it was discarded first; release() lets go (once). */
  private async holdVersion(name: string, path: string): Promise<{ info: ObjectInfo; release(): Promise<void> } | null> {
    // Its info while the hold is taken (an object never changes); whether it was discarded only once the hold is in place.
    const infoFetched = retryingTimeouts(`opening the content of ${path}`, () => this.parts.files.info(name));
    infoFetched.catch(() => undefined);
    const lease = await this.hold(name);
    let info: ObjectInfo | null;
    try {
      const found = await infoFetched;
      const discarded = await retryingTimeouts(`opening the content of ${path}`, () => this.isDiscarded(name));
      // info() answers for a deleted object too (size 0, no chunks): discarded, not an empty file.
      info = discarded || !found || found.deleted ? null : found;
    } catch (err) {
      await lease.release();
      throw err;
    }
    if (!info) {
      await lease.release();
      return null;
    }
    let released: Promise<void> | null = null;
    // Letting go of a hold can make this version collectable, and no other.
    const release = () => (released ??= lease.release().then(async () => {
      if (await this.isDiscarded(name)) await this.collectUnheld(name);
    }).catch((err: unknown) => {
      this.parts.logger.warn({ err, object: name, path }, 'releasing a file version after reading failed; it is collected later');
    }));
    return { info, release };
  }

  /** Where each chunk of the object is in the stream: its headers only, none of its bytes. */
  private async chunkIndex(info: ObjectInfo): Promise<ChunkIndex> {
    const stream = `OBJ_${this.parts.filesBucket}`;
    const subject = `$O.${this.parts.filesBucket}.C.${info.nuid}`;
    const index: ChunkIndex = { stream, subject, seqs: [], offsets: [], size: info.size };
    if (info.chunks === 0) return index;
    const consumer = await placedOrderedConsumer(this.parts.js, stream, { filter_subjects: subject, headers_only: true });
    const messages = await consumer.consume({ max_messages: 1000 });
    let offset = 0;
    try {
      for await (const message of messages) {
        index.seqs.push(message.seq);
        index.offsets.push(offset);
        offset += Number(message.headers?.get('Nats-Msg-Size') ?? NaN);
        if (index.seqs.length === info.chunks) break;
      }
    } finally {
      await messages.close();
      consumer.delete().catch(() => undefined);
    }
    if (offset !== info.size) throw new FsError('EIO', `the content of object ${info.name} is damaged: its chunks hold ${offset} bytes, its info says ${info.size}`);
    return index;
  }

  /**
   * `name` is no longer referenced: deleted now, or when its last reader is done. The
   * versions discarded before and still there (their reader died) are swept at most once
   * a lease: a sweep lists every discarded version, too much for each small file written.
   */
  async discard(name: string): Promise<void> {
    await this.parts.namespace.put(discardedKey(name), '');
    await this.collectUnheld(name);
    if (Date.now() - this.sweptAt < this.parts.leaseMs) return;
    this.sweptAt = Date.now();
    await this.collect();
  }

  /** Deletes every discarded object that no reader holds (also those whose reader died). */
  async collect(): Promise<void> {
    const discarded = (await kvKeys(`listing discarded file versions in ${this.parts.namespaceBucket}`, this.parts.namespace, `${DISCARDED}.*`))
      .map((key) => key.slice(DISCARDED.length + 1));
    for (const name of discarded) await this.collectUnheld(name);
  }

  /** Deletes discarded version `name` unless a reader holds it. */
  private async collectUnheld(name: string): Promise<void> {
    if (await this.held(name)) return;
    // Purges only, no delete(): delete() publishes a "deleted" record first, which a store
    // at its max_bytes refuses, and a full store must still be able to free space.
    const info = await this.parts.files.info(name);
    const stream = `OBJ_${this.parts.filesBucket}`;
    // An empty version (every created file's first) has no chunks to purge.
    if (info && info.chunks > 0) await this.parts.jsm.streams.purge(stream, { filter: `$O.${this.parts.filesBucket}.C.${info.nuid}` });
    await this.parts.jsm.streams.purge(stream, { filter: `$O.${this.parts.filesBucket}.M.${paddedBase64Url(name)}` });
    // A purge, not a KV delete: a delete would leave a marker per discarded object forever.
    await this.parts.jsm.streams.purge(`KV_${this.parts.namespaceBucket}`, { filter: `$KV.${this.parts.namespaceBucket}.${discardedKey(name)}` });
  }

  private async isDiscarded(name: string): Promise<boolean> {
    return (await this.parts.namespace.get(discardedKey(name))) !== null;
  }

  /** One request, no consumer: a released hold is purged (no delete marker stays), an expired one aged out. */
  private held(name: string): Promise<boolean> {
    const { jsm, readersBucket } = this.parts;
    return retryingTimeouts(`looking for readers of file version ${name}`, async () => {
      const { state } = await jsm.streams.info(`KV_${readersBucket}`, { subjects_filter: `$KV.${readersBucket}.${name}.*` });
      return Object.keys(state.subjects ?? {}).length > 0;
    });
  }

  private async hold(name: string): Promise<{ release(): Promise<void> }> {
    const { readers, leaseMs, logger } = this.parts;
    const key = `${name}.${randomBytes(8).toString('hex')}`;
    await readers.put(key, '');
    const refresh = setInterval(() => {
      readers.put(key, '').catch((err: unknown) => logger.warn({ err, object: name }, 'refreshing a reader\'s hold on a file version failed'));
    }, leaseMs / 3);
    // An open file must not keep the appliance process alive.
    refresh.unref();
    return {
      release: async () => {
        clearInterval(refresh);
        await this.parts.jsm.streams.purge(`KV_${this.parts.readersBucket}`, { filter: `$KV.${this.parts.readersBucket}.${key}` });
      },
    };
  }

  private chunks(info: ObjectInfo, path: string): AsyncGenerator<Uint8Array> {
    return objectChunks(this.parts.js, this.parts.filesBucket, info, (size) => new FsError('EIO',
      `the content of ${path} is damaged: object ${info.name} should have ${info.size} bytes with ${info.digest}, read ${size} bytes with another digest`));
  }
}

function discardedKey(name: string): string {
  return `${DISCARDED}.${name}`;
}

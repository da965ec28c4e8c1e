// The grid's release store: one JetStream object store for the whole grid (clustered with
// the nodes' nats-servers), so one upload of a bundle to any node is enough and every
// other node fetches it from there, offline grids included. An object is a bundle as a
// node received it, named by its version; its description says which release it is (the
// digest of its signed manifest). Only appliances write it (the nats-server takes only
// the node's own client key; no owner or workload holds one), and only with a bundle
// they verified; a node that fetches one verifies it again as if it were uploaded
// (install.ts), so an object changed in the store is refused all the same.
import { Readable } from 'node:stream';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { ZoneError } from '../../lib/errors.ts';
import { retryingTimeouts } from '../pseudokernel/nats/jetstream-retry.ts';
import { objectChunks } from '../pseudokernel/nats/object-chunks.ts';
import { GRID_OBJECT_CHUNK_BYTES, openGridObjectStore, storedObjects, type StoredObject } from '../pseudokernel/nats/grid-object-store.ts';
import { MAX_BUNDLE_BYTES } from './install.ts';
import { VERSION_PATTERN } from './manifest.ts';

const RELEASES_BUCKET = 'zone-releases';
/** Releases kept: the newest stored; older ones go when another is stored. */
const KEPT = 3;
/** Room for KEPT bundles of the largest size a node takes, and one being written. */
export const RELEASE_STORE_BYTES = (KEPT + 1) * MAX_BUNDLE_BYTES;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const VERSION = new RegExp(VERSION_PATTERN);

/** What an object's description says of it. */
export interface StoredRelease { version: string; digest: string; size: number; storedAt: string; storedBy: string }

export class GridReleases {
  private constructor(private readonly js: JetStreamClient, private readonly objects: ObjectStore) {}

  /** Opens the grid's release bucket (made where missing; its first user decides the replicas). */
  static async open(nc: NatsConnection, replicas: number): Promise<GridReleases> {
    const objects = await retryingTimeouts('opening the grid\'s release store', () => openGridObjectStore(nc, RELEASES_BUCKET, { replicas, maxBytes: RELEASE_STORE_BYTES }));
    return new GridReleases(jetstream(nc), objects);
  }

  /** Every release stored, newest stored first. */
  async list(): Promise<StoredRelease[]> {
    const infos = await storedObjects('listing the grid\'s releases', this.objects);
    return infos.flatMap((info) => describedBy(info) ?? []).sort((a, b) => b.storedAt.localeCompare(a.storedAt));
  }

  /** The stored release `ref` names (a version, or `sha256:` the digest of its signed manifest); null when there is none. */
  async find(ref: string): Promise<StoredRelease | null> {
    if (VERSION.test(ref)) {
      const info = await this.objects.info(ref);
      return info && !info.deleted ? describedBy(info) : null;
    }
    if (!DIGEST.test(ref)) throw new ZoneError('INVALID', `release: "${ref}" is neither a version (MAJOR.MINOR.PATCH) nor a digest (sha256: and 64 hex digits)`, '/release');
    return (await this.list()).find((r) => r.digest === ref) ?? null;
  }

  /** Stores the bundle `source` as release `release` (replacing a bundle of that version), then drops all but the newest few. */
  async put(release: Omit<StoredRelease, 'storedAt' | 'size'>, source: Readable, now: Date): Promise<void> {
    const description = JSON.stringify({ ...release, storedAt: now.toISOString() });
    await this.objects.put({ name: release.version, description, options: { max_chunk_size: GRID_OBJECT_CHUNK_BYTES } }, Readable.toWeb(source) as ReadableStream<Uint8Array>);
    for (const old of (await this.list()).slice(KEPT)) await this.objects.delete(old.version);
  }

  /** The bytes of the stored bundle of `version`, checked at their end against the object's own sha256. */
  async read(version: string): Promise<Readable> {
    const info = await this.objects.info(version);
    if (!info || info.deleted) throw new ZoneError('NOT_FOUND', `release ${version} is not in the grid's release store`, '/release');
    return Readable.from(objectChunks(this.js, RELEASES_BUCKET, info, (size) => new ZoneError('SIGNATURE', `release ${version} is damaged in the grid's store: read ${size} of ${info.size} bytes, or another sha256`, '/release')));
  }
}

/** An object's description as a StoredRelease; null for one that is not (nothing of ours). */
function describedBy(info: StoredObject): StoredRelease | null {
  try {
    const d = JSON.parse(info.description ?? '') as Partial<StoredRelease>;
    if (d.version !== info.name || typeof d.digest !== 'string' || !DIGEST.test(d.digest) || typeof d.storedAt !== 'string') return null;
    return { version: d.version, digest: d.digest, size: info.size, storedAt: d.storedAt, storedBy: String(d.storedBy ?? '') };
  } catch {
    return null;
  }
}

/** The grid's release store as a node holds it: its connection made and the bucket opened at first use (again after a failure). */
export interface ReleaseGrid {
  store(): Promise<GridReleases>;
  close(): Promise<void>;
}

export function releaseGridOf(connect: () => Promise<NatsConnection>, replicas: number): ReleaseGrid {
  let nc: NatsConnection | null = null;
  let opened: Promise<GridReleases> | null = null;
  return {
    store() {
      opened ??= (async () => {
        nc ??= await connect();
        return GridReleases.open(nc, replicas);
      })().catch((err: unknown) => {
        opened = null;
        throw err;
      });
      return opened;
    },
    async close() {
      await opened?.catch(() => undefined);
      await nc?.close();
    },
  };
}

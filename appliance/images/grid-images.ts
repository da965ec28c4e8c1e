// The grid's image store: one JetStream object store for the whole grid (clustered with
// the nodes' nats-servers, so any node reads what another stored), content-addressed:
// an owner's image is the object `<owner id>.<digest hex>`, stored once however often it
// is pushed. Which nodes use an image lives beside it, in a KV bucket of
// `<owner id>.<digest hex>.<node>` -> when that node last saw a blueprint pin it: the
// garbage collector (gc.ts) keeps what any node still uses.
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { ZoneError } from '../../lib/errors.ts';
import { ownerIdOf } from '../pseudokernel/nats/buckets.ts';
import { GRID_OBJECT_CHUNK_BYTES, openGridObjectStore, storedObjects, type StoredObject } from '../pseudokernel/nats/grid-object-store.ts';
import { kvKeys, retryingTimeouts } from '../pseudokernel/nats/jetstream-retry.ts';
import type { ImageKind } from '../../drivers/contract.ts';
import { objectChunks } from '../pseudokernel/nats/object-chunks.ts';
import type { ImageUse, StoredImage } from './gc.ts';

const IMAGES_BUCKET = 'zone-images';
const USES_BUCKET = 'zone-image-uses';
const USES_BYTES = 16 * 2 ** 20;

/** What an image's object says of it (its description, as JSON; images stored before VM disks have no kind: containers). */
interface ImageMeta { owner: string; name: string; kind: ImageKind; size: number; pushedAt: string }

export interface ImageRow extends ImageMeta {
  digest: string;
  /** The nodes whose blueprints pin it, with when each last saw it pinned. */
  usedBy: { node: string; at: string }[];
}

export class GridImages {
  private constructor(private readonly js: JetStreamClient, private readonly objects: ObjectStore, private readonly useTable: KV) {}

  /** Opens the grid's buckets (made where missing; their first user decides the replicas). */
  static async open(nc: NatsConnection, options: { replicas: number; maxBytes: number }): Promise<GridImages> {
    const js = jetstream(nc);
    return retryingTimeouts('opening the grid\'s image store', async () => {
      const [objects, uses] = await Promise.all([
        openGridObjectStore(nc, IMAGES_BUCKET, options),
        new Kvm(js).create(USES_BUCKET, { history: 1, replicas: options.replicas, allow_direct: false, max_bytes: USES_BYTES }),
      ]).catch((err: unknown) => { throw storeFull(err, 'making the grid\'s image store'); });
      return new GridImages(js, objects, uses);
    });
  }

  /** `owner`'s images (every owner's: none given), with the nodes that use them. */
  async list(owner?: string): Promise<ImageRow[]> {
    const prefix = owner === undefined ? '' : `${ownerIdOf(owner)}.`;
    const infos = (await storedObjects('listing the grid\'s images', this.objects)).filter((info) => info.name.startsWith(prefix));
    const uses = await this.uses();
    return infos.flatMap((info) => {
      const meta = metaOf(info);
      if (!meta) return [];
      const key = info.name;
      const usedBy = uses.filter((u) => u.object === key).map((u) => ({ node: u.node, at: new Date(u.atMs).toISOString() }));
      return [{ ...meta, digest: `sha256:${key.slice(key.indexOf('.') + 1)}`, usedBy }];
    }).sort((a, b) => a.pushedAt.localeCompare(b.pushedAt));
  }

  /** Bytes `owner`'s images take. */
  async usage(owner: string): Promise<number> {
    return (await this.list(owner)).reduce((sum, image) => sum + image.size, 0);
  }

  async has(owner: string, digest: string): Promise<boolean> {
    return (await this.kindOf(owner, digest)) !== null;
  }

  /** What `owner`'s image `digest` is; null when the owner has none of that digest. */
  async kindOf(owner: string, digest: string): Promise<ImageKind | null> {
    const info = await this.objects.info(objectName(owner, digest));
    return info && !info.deleted ? metaOf(info)?.kind ?? null : null;
  }

  /** Stores `source` as `owner`'s image `digest` unless it is there already (a push again stores nothing). */
  async put(owner: string, digest: string, meta: Omit<ImageMeta, 'owner'>, source: () => Readable): Promise<{ stored: boolean }> {
    if (await this.has(owner, digest)) return { stored: false };
    const description = JSON.stringify({ ...meta, owner } satisfies ImageMeta);
    await this.objects.put({ name: objectName(owner, digest), description, options: { max_chunk_size: GRID_OBJECT_CHUNK_BYTES } }, Readable.toWeb(source()) as ReadableStream<Uint8Array>)
      .catch((err: unknown) => { throw storeFull(err, `storing image ${digest}`); });
    return { stored: true };
  }

  /**
   * Writes `owner`'s image `digest` to `path`, checked against the object's own sha256;
   * false when there is none. The chunks come through a consumer that reads ahead a few
   * (the client's get() is several times slower on large objects).
   */
  async fetch(owner: string, digest: string, path: string): Promise<boolean> {
    const info = await this.objects.info(objectName(owner, digest));
    if (!info || info.deleted) return false;
    const chunks = objectChunks(this.js, IMAGES_BUCKET, info, (size) => new Error(`image ${digest} is damaged in the grid's store: read ${size} of ${info.size} bytes, or another sha256`));
    await pipeline(Readable.from(chunks), createWriteStream(path, { mode: 0o600 }));
    return true;
  }

  async remove(object: string): Promise<void> {
    await this.objects.delete(object);
    for (const key of await kvKeys('listing an image\'s uses', this.useTable, `${object}.*`)) await this.useTable.purge(key);
  }

  /** `node` uses these images now. */
  async markUsed(node: string, images: readonly { owner: string; digest: string }[], now: Date): Promise<void> {
    for (const image of images) await this.useTable.put(`${objectName(image.owner, image.digest)}.${node}`, String(now.getTime()));
  }

  /** Forgets these uses (older than the grace period: they keep nothing). */
  async forget(uses: readonly ImageUse[]): Promise<void> {
    for (const use of uses) await this.useTable.purge(`${use.object}.${use.node}`);
  }

  /** Every stored image, as the collector sees it. */
  async stored(): Promise<StoredImage[]> {
    return (await storedObjects('listing the grid\'s images', this.objects)).flatMap((info) => {
      const meta = metaOf(info);
      return meta ? [{ object: info.name, pushedAtMs: Date.parse(meta.pushedAt) }] : [];
    });
  }

  /** Every node's last use of every image. */
  uses(): Promise<ImageUse[]> {
    return retryingTimeouts('reading the image uses', async () => {
      const rows: ImageUse[] = [];
      for (const key of await kvKeys('listing the image uses', this.useTable)) {
        const entry = await this.useTable.get(key);
        const parts = key.split('.');
        if (!entry || parts.length !== 3) continue;
        rows.push({ object: `${parts[0]}.${parts[1]}`, node: parts[2]!, atMs: Number(entry.string()) });
      }
      return rows;
    });
  }
}

export function objectName(owner: string, digest: string): string {
  return `${ownerIdOf(owner)}.${digest.replace(/^sha256:/, '')}`;
}

function metaOf(info: StoredObject): ImageMeta | null {
  try {
    const meta = JSON.parse(info.description ?? '') as Omit<ImageMeta, 'kind'> & { kind?: unknown };
    if (typeof meta.owner !== 'string' || typeof meta.pushedAt !== 'string') return null;
    return { ...meta, kind: meta.kind === 'disk' ? 'disk' : 'container' };
  } catch {
    return null;
  }
}

/** JetStream's "full" as the API's NO_SPACE, naming the bound. */
function storeFull(err: unknown, what: string): unknown {
  const text = err instanceof Error ? `${err.message} ${err.cause instanceof Error ? err.cause.message : ''}` : '';
  if (/maximum bytes exceeded|insufficient storage|storage resources|no space left/i.test(text)) {
    return new ZoneError('NO_SPACE', `${what}: the grid's image store is full (limits.imageStoreBytes, or the node's JetStream storage); images no blueprint uses are removed after images.gcGraceSeconds`);
  }
  return err;
}

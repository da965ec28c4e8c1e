// GridFs on NATS JetStream for one owner: the namespace is a KV bucket (one key per
// path, a token per path component, so a directory's children are `<key>.*`), and
// the contents are immutable objects (objects.ts). A write stores the new
// content first and then swaps the path's entry with a compare-and-set on its
// revision, so a reader sees the old or the new version whole. JetStream 2.9 has no
// multi-key transactions: a rename of a directory moves its entries one by one.
import type { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, StorageType } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { FsError, type ErrnoName, type FileVersion, type FsEntry, type GridFs } from '../interfaces.ts';
import { GridObjects } from './objects.ts';
import { boundStream, DEFAULT_OWNER_QUOTA, noSpaceError, type OwnerQuota } from '../nats/owner-quota.ts';
import { bucketsOf, checkReplicas, textOfToken, tokenOf, type OwnerBuckets } from '../nats/buckets.ts';
import { kvKeys, retryingTimeouts } from '../nats/jetstream-retry.ts';

export interface NatsGridFsOptions {
  /** `ed25519:BASE64`: every owner has buckets of its own. */
  owner: string;
  /** Copies of every bucket: 1 on a lone node, up to 3 in a cluster (at most the number of servers). */
  replicas: number;
  logger: Logger;
  /** How long a reader that stopped refreshing its hold (it died) keeps an old file version alive. */
  readerLeaseMs?: number;
  /** The max_bytes of the owner's buckets (DEFAULT_OWNER_QUOTA otherwise). */
  quota?: OwnerQuota;
}

const StoredEntry = Type.Object({
  type: Type.Union([Type.Literal('file'), Type.Literal('dir'), Type.Literal('fifo')]),
  size: Type.Integer({ minimum: 0 }),
  mtimeMs: Type.Number(),
  mode: Type.Integer({ minimum: 0, maximum: 0o7777 }),
  /** The object holding a file's content. */
  object: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$' })),
});
type StoredEntry = Static<typeof StoredEntry>;

interface Found {
  entry: StoredEntry;
  revision: number;
}

const ROOT_KEY = 'fs';
const DEFAULT_READER_LEASE_MS = 60_000;
/** Compare-and-set attempts before giving up on a path others keep changing. */
const MAX_ATTEMPTS = 20;
// Keys travel in a NATS protocol line (4 KiB by default) with the subject prefix and a reply inbox.
const MAX_KEY_LENGTH = 3000;

export class NatsGridFs implements GridFs {
  /** Creates the owner's buckets where missing (their first user decides their replicas) and `/`. */
  static async open(nc: NatsConnection, options: NatsGridFsOptions): Promise<NatsGridFs> {
    checkReplicas(options.replicas);
    const buckets = bucketsOf(options.owner);
    const leaseMs = options.readerLeaseMs ?? DEFAULT_READER_LEASE_MS;
    const quota = options.quota ?? DEFAULT_OWNER_QUOTA;
    const js = jetstream(nc);
    const kvm = new Kvm(js);
    return retryingTimeouts(`opening the shared files of ${options.owner}`, async () => {
      // Gets from the stream leader, not from any replica: a path's entry is read as last written.
      const kvBound = { max_bytes: quota.ownerKvBytes };
      const [namespace, readers, files, jsm] = await Promise.all([
        kvm.create(buckets.namespace, { history: 1, replicas: options.replicas, allow_direct: false, ...kvBound }),
        kvm.create(buckets.readers, { history: 1, replicas: options.replicas, allow_direct: false, ttl: leaseMs, ...kvBound }),
        new Objm(js).create(buckets.files, { replicas: options.replicas, storage: StorageType.File, max_bytes: quota.ownerBytes }),
        jetstreamManager(nc),
      ]).catch((err: unknown) => { throw noSpaceError(err, `making the shared storage of ${options.owner}`, quota); });
      await Promise.all([
        boundStream(jsm, `KV_${buckets.namespace}`, quota.ownerKvBytes),
        boundStream(jsm, `KV_${buckets.readers}`, quota.ownerKvBytes),
        boundStream(jsm, `OBJ_${buckets.files}`, quota.ownerBytes),
      ]);
      const objects = new GridObjects({
        js, jsm, files, filesBucket: buckets.files, namespace, namespaceBucket: buckets.namespace, readers, leaseMs, logger: options.logger,
      });
      const fs = new NatsGridFs(buckets, namespace, objects, quota, options.logger);
      await fs.ensureRoot();
      return fs;
    });
  }

  private constructor(
    readonly buckets: OwnerBuckets,
    private readonly namespace: KV,
    private readonly objects: GridObjects,
    private readonly quota: OwnerQuota,
    private readonly logger: Logger,
  ) {}

  async stat(path: string): Promise<FsEntry | null> {
    const found = await this.lookup(path);
    return found ? publicEntry(found.entry) : null;
  }

  async list(dir: string): Promise<string[]> {
    const found = await this.lookup(dir);
    if (!found) throw await this.notFound(dir);
    if (found.entry.type !== 'dir') throw fsError('ENOTDIR', dir, 'is a file, not a directory');
    return (await this.childKeys(keyOf(dir))).map((key) => textOfToken(key.slice(key.lastIndexOf('.') + 1))).sort();
  }

  read(path: string): Promise<Readable> {
    return this.current(path, (object) => this.objects.open(object, path));
  }

  open(path: string): Promise<FileVersion> {
    return this.current(path, (object) => this.objects.openVersion(object, path));
  }

  /** `opened` of the file's current object; null from it means replaced meanwhile, and the new version is the one. */
  private async current<T>(path: string, opened: (object: string) => Promise<T | null>): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (found.entry.type === 'dir') throw fsError('EISDIR', path, 'is a directory');
      const result = await opened(objectOf(found.entry, path));
      if (result) return result;
    }
    throw fsError('EAGAIN', path, `was replaced ${MAX_ATTEMPTS} times while being opened`);
  }

  async write(path: string, source: Readable, mode?: number): Promise<void> {
    if (path === '/') throw fsError('EISDIR', path, 'is the root directory');
    await this.parentOf(path);
    let found = await this.lookup(path);
    if (found?.entry.type === 'dir') throw fsError('EISDIR', path, 'is a directory');
    const object = await this.objects.put(source).catch((err: unknown) => { throw noSpaceError(err, path, this.quota); });
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const entry: StoredEntry = { type: 'file', size: object.size, mtimeMs: Date.now(), mode: mode ?? found?.entry.mode ?? 0o644, object: object.name };
        if (await this.swap(path, entry, found?.revision ?? null)) {
          if (found?.entry.object) await this.discard(found.entry.object, path);
          return;
        }
        found = await this.lookup(path);
        if (found?.entry.type === 'dir') throw fsError('EISDIR', path, 'became a directory while being written');
      }
      throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while being written`);
    } catch (err) {
      // A swap that timed out may have been applied: then the write took effect.
      const now = await this.lookup(path).catch(() => undefined);
      if (now?.entry.object === object.name) {
        if (found?.entry.object) await this.discard(found.entry.object, path);
        return;
      }
      // Unknown (JetStream unreachable): a version left behind costs storage, deleting a referenced one a file.
      if (now !== undefined) await this.discard(object.name, path);
      throw err;
    }
  }

  async mkdir(path: string, mode = 0o755): Promise<void> {
    if (path === '/') throw fsError('EEXIST', path, 'is the root directory');
    await this.parentOf(path);
    const found = await this.lookup(path);
    if (found) throw fsError('EEXIST', path, `exists already (a ${found.entry.type === 'dir' ? 'directory' : 'file'})`);
    const dir: StoredEntry = { type: 'dir', size: 0, mtimeMs: Date.now(), mode };
    if (!(await this.swap(path, dir, null))) throw fsError('EEXIST', path, 'was created by another writer meanwhile');
  }

  async mkfifo(path: string, mode = 0o644): Promise<void> {
    if (path === '/') throw fsError('EEXIST', path, 'is the root directory');
    await this.parentOf(path);
    if (await this.lookup(path)) throw fsError('EEXIST', path, 'exists already');
    const fifo: StoredEntry = { type: 'fifo', size: 0, mtimeMs: Date.now(), mode };
    if (!(await this.swap(path, fifo, null))) throw fsError('EEXIST', path, 'was created by another writer meanwhile');
  }

  async rmdir(path: string): Promise<void> {
    if (path === '/') throw fsError('EBUSY', path, 'is the root directory');
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (found.entry.type !== 'dir') throw fsError('ENOTDIR', path, 'is a file, not a directory');
      if ((await this.childKeys(keyOf(path))).length > 0) throw fsError('ENOTEMPTY', path, 'is not empty');
      if (await this.remove(path, found.revision)) return;
    }
    throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while being removed`);
  }

  async unlink(path: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (found.entry.type === 'dir') throw fsError('EISDIR', path, 'is a directory');
      if (await this.remove(path, found.revision)) {
        if (found.entry.type !== 'fifo') await this.discard(objectOf(found.entry, path), path);
        return;
      }
    }
    throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while being unlinked`);
  }

  async chmod(path: string, mode: number): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (await this.swap(path, { ...found.entry, mode, mtimeMs: Date.now() }, found.revision)) return;
    }
    throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while its mode was being set`);
  }

  async rename(from: string, to: string): Promise<void> {
    if (from === '/' || to === '/') throw fsError('EBUSY', from === '/' ? from : to, 'is the root directory');
    if (to.startsWith(`${from}/`)) throw fsError('EINVAL', to, `is inside ${from}: a directory cannot move into itself`);
    const source = await this.lookup(from);
    if (!source) throw await this.notFound(from);
    if (from === to) return;
    await this.parentOf(to);
    const target = await this.lookup(to);
    if (source.entry.type !== 'dir') {
      if (target?.entry.type === 'dir') throw fsError('EISDIR', to, `is a directory; ${from} is a file`);
    } else {
      if (target && target.entry.type !== 'dir') throw fsError('ENOTDIR', to, `is a file; ${from} is a directory`);
      if (target && (await this.childKeys(keyOf(to))).length > 0) throw fsError('ENOTEMPTY', to, 'is a directory that is not empty');
    }
    if (!(await this.swap(to, source.entry, target?.revision ?? null))) {
      throw fsError('EAGAIN', to, 'was changed by another writer during the rename');
    }
    if (source.entry.type === 'dir') await this.moveBelow(from, to);
    if (!(await this.remove(from, source.revision))) {
      // Changed meanwhile: it is someone else's now; `to` has the version we moved.
      this.logger.warn({ from, to }, 'rename: the source changed during the rename and was left in place');
    }
    if (target?.entry.object) await this.discard(target.entry.object, to);
  }

  /** Moves every entry below directory `from` below `to`: parents first in, children first out. */
  private async moveBelow(from: string, to: string): Promise<void> {
    const fromKey = keyOf(from);
    const toKey = keyOf(to);
    const keys = await this.keysMatching(`${fromKey}.>`);
    const depth = (key: string) => key.split('.').length;
    keys.sort((a, b) => depth(a) - depth(b));
    for (const key of keys) {
      const entry = await this.namespace.get(key);
      if (entry?.operation === 'PUT') await this.namespace.put(toKey + key.slice(fromKey.length), entry.value);
    }
    for (const key of keys.reverse()) await this.namespace.delete(key);
  }

  private async ensureRoot(): Promise<void> {
    try {
      await this.namespace.create(ROOT_KEY, JSON.stringify({ type: 'dir', size: 0, mtimeMs: Date.now(), mode: 0o755 } satisfies StoredEntry));
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  private async lookup(path: string): Promise<Found | null> {
    const stored = await retryingTimeouts(`looking up ${path}`, () => this.namespace.get(keyOf(path)));
    if (!stored || stored.operation !== 'PUT') return null;
    let entry: unknown;
    try {
      entry = stored.json();
    } catch {
      entry = null;
    }
    if (!Value.Check(StoredEntry, entry)) throw fsError('EIO', path, `has an entry that is not one (key ${stored.key} in ${this.buckets.namespace})`);
    return { entry, revision: stored.revision };
  }

  /** Puts the entry if the path's entry is still at `revision` (null: if it has none); false if not. */
  private async swap(path: string, entry: StoredEntry, revision: number | null): Promise<boolean> {
    const value = JSON.stringify(entry);
    try {
      if (revision === null) await this.namespace.create(keyOf(path), value);
      else await this.namespace.put(keyOf(path), value, { previousSeq: revision });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw noSpaceError(err, path, this.quota);
    }
  }

  private async remove(path: string, revision: number): Promise<boolean> {
    try {
      await this.namespace.delete(keyOf(path), { previousSeq: revision });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** A written file's old version: failing to discard it leaks storage, not the write. */
  private async discard(object: string, path: string): Promise<void> {
    await this.objects.discard(object).catch((err: unknown) => {
      this.logger.warn({ err, object, path }, 'discarding an old file version failed; it is collected with the next one');
    });
  }

  /** The parent directory of `path`, or the error that says why there is none. */
  private async parentOf(path: string): Promise<void> {
    const parent = parentPath(path);
    const found = await this.lookup(parent);
    if (!found) throw await this.notFound(parent);
    if (found.entry.type !== 'dir') throw fsError('ENOTDIR', parent, 'is a file, not a directory');
  }

  /** ENOTDIR when an ancestor of the missing `path` is a file, ENOENT otherwise. */
  private async notFound(path: string): Promise<Error> {
    for (let ancestor = parentPath(path); ancestor !== '/'; ancestor = parentPath(ancestor)) {
      const found = await this.lookup(ancestor);
      if (found && found.entry.type !== 'dir') return fsError('ENOTDIR', path, `cannot exist: ${ancestor} is a file`);
      if (found) break;
    }
    return fsError('ENOENT', path, 'does not exist');
  }

  private childKeys(key: string): Promise<string[]> {
    return this.keysMatching(`${key}.*`);
  }

  private keysMatching(filter: string): Promise<string[]> {
    return kvKeys(`listing ${filter} in ${this.buckets.namespace}`, this.namespace, filter);
  }
}

function publicEntry({ type, size, mtimeMs, mode }: StoredEntry): FsEntry {
  return { type, size, mtimeMs, mode };
}

function objectOf(entry: StoredEntry, path: string): string {
  if (!entry.object) throw fsError('EIO', path, 'is a file without content (its entry names no object)');
  return entry.object;
}

/** `fs` for `/`, then one token per component: `/a/b` -> `fs.YQ.Yg`. */
export function keyOf(path: string): string {
  if (path === '/') return ROOT_KEY;
  const parts = path.split('/');
  if (parts.length < 2 || parts[0] !== '' || parts.slice(1).some((part) => part === '' || part === '.' || part === '..' || part.includes('\0'))) {
    throw fsError('EINVAL', path, 'is not an absolute, normalised path');
  }
  const key = [ROOT_KEY, ...parts.slice(1).map(tokenOf)].join('.');
  if (key.length > MAX_KEY_LENGTH) throw fsError('ENAMETOOLONG', path.slice(0, 64), 'is too long (this path and the rest)');
  return key;
}

function parentPath(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

function fsError(code: ErrnoName, path: string, what: string): FsError {
  return new FsError(code, `${path} ${what}`);
}

function isConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError
    && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

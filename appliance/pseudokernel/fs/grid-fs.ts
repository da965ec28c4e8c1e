// GridFs on NATS JetStream for one owner: the namespace is a KV bucket (one key per
// path, a token per path component, so a directory's children are `<key>.*`), and
// the contents are immutable objects (objects.ts), but for small files, whose content
// is kept in their entry (one write per file, no object). A path's key holds its entry's
// attributes (type, mode, owner, times, object, a symlink's target) until the entry gets
// a second name (link): then they move to an inode record `ino.<id>` with a link count,
// and each name's key points at it. A write stores the new content first and then swaps
// the entry's attributes with a compare-and-set on their key's revision, so a reader
// sees the old or the new version whole. JetStream 2.9 has no multi-key transactions:
// a rename of a directory moves its entries one by one.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, StorageType } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { FsError, type ErrnoName, type FileVersion, type FsEntry, type FsOwner, type FsUsage, type GridFs } from '../interfaces.ts';
import { GridObjects } from './objects.ts';
import { boundStream, DEFAULT_OWNER_QUOTA, noSpaceError, type OwnerQuota } from '../nats/owner-quota.ts';
import { bucketsOf, checkReplicas, textOfToken, tokenOf, type OwnerBuckets } from '../nats/buckets.ts';
import { kvKeys, retryingOpen, retryingTimeouts } from '../nats/jetstream-retry.ts';
import { compareAndSet, compareAndSetRevision } from '../nats/kv-cas.ts';

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

/**
 * A file of at most this many bytes keeps its content in its entry: its write is one
 * compare-and-set, its open one get. Small, as an entry is read by every lookup and
 * the namespace has a quota of its own (limits.ownerKvBytes).
 */
const INLINE_BYTES = 1024;
/** Entries this GridFs wrote last (path -> what it stored, at which revision), for the next write to the path. */
const REMEMBERED_ENTRIES = 256;

/** Linux's limits: a name of at most NAME_MAX bytes, a symlink's target of fewer than PATH_MAX. */
const NAME_MAX = 255;
const PATH_MAX = 4096;
const ENTRY_TYPES = ['file', 'dir', 'symlink', 'fifo', 'socket'] as const;
const LINKABLE_TYPES = ['file', 'symlink', 'fifo', 'socket'] as const;

/** An entry's attributes: inline in its path's key, or in an inode record once it has several names. */
const StoredEntry = Type.Object({
  type: Type.Union(ENTRY_TYPES.map((type) => Type.Literal(type))),
  size: Type.Integer({ minimum: 0 }),
  mtimeMs: Type.Number(),
  mode: Type.Integer({ minimum: 0, maximum: 0o7777 }),
  /** The object holding a file's content (none: empty, or in `data`). */
  object: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$' })),
  /** A small file's content, base64 (INLINE_BYTES at most), in place of an object. */
  data: Type.Optional(Type.String({ maxLength: 4 * Math.ceil(INLINE_BYTES / 3), contentEncoding: 'base64' })),
  /** A symlink's target. */
  target: Type.Optional(Type.String({ maxLength: PATH_MAX })),
  // Entries written before ownership and times were kept have none: root's, times of mtimeMs.
  uid: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xfffffffe })),
  gid: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xfffffffe })),
  atimeMs: Type.Optional(Type.Number()),
  ctimeMs: Type.Optional(Type.Number()),
  /** A directory's subdirectories, for its link count (2 + this); none in directories made before it was kept. */
  subdirs: Type.Optional(Type.Integer({ minimum: 0 })),
  /** The inode number stat reports, the same under every name and after a rename (48 random bits). */
  ino: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 48 })),
});
type StoredEntry = Static<typeof StoredEntry>;

/** A path's key of an entry with hard links: the inode record `ino.<inode>` keeps its attributes and link count. */
const LinkRef = Type.Object({
  type: Type.Union(LINKABLE_TYPES.map((type) => Type.Literal(type))),
  inode: Type.String({ pattern: '^[0-9a-f]{32}$' }),
});
type LinkRef = Static<typeof LinkRef>;
const PathValue = Type.Union([LinkRef, StoredEntry]);
type PathValue = StoredEntry | LinkRef;

const Inode = Type.Object({ ...StoredEntry.properties, nlink: Type.Integer({ minimum: 1 }) });
type Inode = Static<typeof Inode>;

interface Found {
  /** The attributes, wherever they are kept. */
  entry: StoredEntry;
  /** The revision of the path's key. */
  revision: number;
  /** An entry with hard links: its inode record (id, revision, link count). */
  inode: { id: string; revision: number; nlink: number } | null;
}

const ROOT_KEY = 'fs';
const SETGID = 0o2000;
const INODE_PREFIX = 'ino';
const DEFAULT_READER_LEASE_MS = 60_000;
/** Compare-and-set attempts before giving up on a path others keep changing. */
const MAX_ATTEMPTS = 20;
// Keys travel in a NATS protocol line with the subject prefix and a reply inbox: the servers'
// max_control_line (server-config.ts) leaves room for a PATH_MAX path in base64 tokens.
const MAX_KEY_LENGTH = 8000;

export class NatsGridFs implements GridFs {
  /** Creates the owner's buckets where missing (their first user decides their replicas) and `/`. */
  static async open(nc: NatsConnection, options: NatsGridFsOptions): Promise<NatsGridFs> {
    checkReplicas(options.replicas);
    const buckets = bucketsOf(options.owner);
    const leaseMs = options.readerLeaseMs ?? DEFAULT_READER_LEASE_MS;
    const quota = options.quota ?? DEFAULT_OWNER_QUOTA;
    const js = jetstream(nc);
    const kvm = new Kvm(js);
    return retryingOpen(`opening the shared files of ${options.owner}`, async () => {
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
        js, jsm, files, filesBucket: buckets.files, namespace, namespaceBucket: buckets.namespace, readers, readersBucket: buckets.readers, leaseMs, logger: options.logger,
      });
      const fs = new NatsGridFs(buckets, namespace, objects, js, jsm, quota, options.logger);
      await fs.ensureRoot();
      return fs;
    });
  }

  /**
   * What this GridFs stored last at a path, as it stored it: a write of a file just created
   * or written here swaps against it at once, with no lookup (a compare-and-set on its
   * revision fails if anything changed it since, and the write then looks it up).
   */
  private readonly remembered = new Map<string, { entry: StoredEntry; revision: number }>();

  private constructor(
    readonly buckets: OwnerBuckets,
    private readonly namespace: KV,
    private readonly objects: GridObjects,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly quota: OwnerQuota,
    private readonly logger: Logger,
  ) {}

  async stat(path: string): Promise<FsEntry | null> {
    const found = await this.lookup(path);
    return found ? publicEntry(found) : null;
  }

  async list(dir: string): Promise<string[]> {
    const found = await this.lookup(dir);
    if (!found) throw await this.notFound(dir);
    if (found.entry.type !== 'dir') throw fsError('ENOTDIR', dir, 'is not a directory');
    return (await this.childKeys(keyOf(dir))).map((key) => textOfToken(key.slice(key.lastIndexOf('.') + 1))).sort();
  }

  read(path: string): Promise<Readable> {
    return this.current(path, (object) => this.objects.open(object, path), (content) => Readable.from(content.length > 0 ? [content] : []));
  }

  open(path: string): Promise<FileVersion> {
    return this.current(path, (object) => this.objects.openVersion(object, path), inlineVersion);
  }

  /**
   * `opened` of the file's current object; null from it means replaced meanwhile, and the
   * new version is the one. A file with no object has its content (none, or small) in its entry: `inline` of it.
   */
  private async current<T>(path: string, opened: (object: string) => Promise<T | null>, inline: (content: Buffer) => T): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (found.entry.type === 'dir') throw fsError('EISDIR', path, 'is a directory');
      if (found.entry.type !== 'file') throw fsError('EINVAL', path, `is a ${found.entry.type}, not a file`);
      if (!found.entry.object) return inline(inlineContent(found.entry, path));
      const result = await opened(found.entry.object);
      if (result) return result;
    }
    throw fsError('EAGAIN', path, `was replaced ${MAX_ATTEMPTS} times while being opened`);
  }

  async write(path: string, source: Readable, mode?: number, owner?: FsOwner): Promise<void> {
    if (path === '/') throw fsError('EISDIR', path, 'is the root directory');
    const remembered = this.remembered.get(path);
    let found: Found | null;
    if (remembered) {
      found = { ...remembered, inode: null };
    } else {
      // Both at once: a small file's write is a handful of round trips, each counts.
      [, found] = await Promise.all([this.parentOf(path), this.lookup(path)]);
      checkWritable(found, path);
    }
    const content = await this.store(source).catch((err: unknown) => { throw noSpaceError(err, path, this.quota); });
    const object = 'object' in content ? content.object.name : undefined;
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const now = Date.now();
        const { object: _old, data: _oldData, ...kept } = found?.entry ?? { ...newAttributes(owner, now), type: 'file' as const };
        const entry: StoredEntry = {
          ...kept, type: 'file', mtimeMs: now, ctimeMs: now, mode: mode ?? found?.entry.mode ?? 0o644,
          ...('object' in content ? { size: content.object.size, object: content.object.name } : inlineAttributes(content.data)),
        };
        const revision = await this.putAttributes(path, found, entry);
        if (revision !== null) {
          this.remember(path, found?.inode ? null : { entry, revision });
          if (found?.entry.object) await this.discard(found.entry.object, path);
          if (!found) await this.touchParent(path, now);
          return;
        }
        this.remembered.delete(path);
        found = await this.lookup(path);
        checkWritable(found, path);
        // Gone meanwhile (the lookup that remembered entries spare did not see the parent).
        if (!found) await this.parentOf(path);
      }
      throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while being written`);
    } catch (err) {
      this.remembered.delete(path);
      if (!object) throw err;
      // A swap that timed out may have been applied: then the write took effect.
      const now = await this.lookup(path).catch(() => undefined);
      if (now?.entry.object === object) {
        if (found?.entry.object) await this.discard(found.entry.object, path);
        return;
      }
      // Unknown (JetStream unreachable): a version left behind costs storage, deleting a referenced one a file.
      if (now !== undefined) await this.discard(object, path);
      throw err;
    }
  }

  /** The bytes of `source`: kept to go in the entry when they end within INLINE_BYTES, stored as a new object otherwise. */
  private async store(source: Readable): Promise<{ data: Buffer } | { object: { name: string; size: number } }> {
    const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let size = 0;
    while (size <= INLINE_BYTES) {
      const { value, done } = await chunks.next();
      if (done) return { data: Buffer.concat(head, size) };
      head.push(value);
      size += value.length;
    }
    async function* all(): AsyncGenerator<Buffer> {
      yield* head;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
    }
    return { object: await this.objects.put(all()) };
  }

  /** What was stored at `path` (null: nothing worth remembering), for the next write there. */
  private remember(path: string, stored: { entry: StoredEntry; revision: number } | null): void {
    this.remembered.delete(path);
    if (!stored) return;
    this.remembered.set(path, stored);
    // The oldest first: a Map iterates in insertion order.
    if (this.remembered.size > REMEMBERED_ENTRIES) this.remembered.delete(this.remembered.keys().next().value!);
  }

  async mkdir(path: string, mode = 0o755, owner?: FsOwner): Promise<void> {
    if (path === '/') throw fsError('EEXIST', path, 'is the root directory');
    const now = Date.now();
    await this.createEntry(path, { ...newAttributes(owner, now), type: 'dir', mode });
  }

  async mknod(path: string, type: 'file' | 'fifo' | 'socket', mode: number, owner: FsOwner): Promise<FsEntry> {
    if (path === '/') throw fsError('EEXIST', path, 'is the root directory');
    return publicEntry({ entry: await this.createEntry(path, { ...newAttributes(owner, Date.now()), type, mode }), inode: null });
  }

  async symlink(target: string, path: string, owner: FsOwner): Promise<void> {
    if (path === '/') throw fsError('EEXIST', path, 'is the root directory');
    const size = Buffer.byteLength(target);
    if (size === 0) throw fsError('ENOENT', path, 'cannot be a symlink to an empty target');
    if (size >= PATH_MAX) throw fsError('ENAMETOOLONG', path, `cannot be a symlink to a target of ${size} bytes (PATH_MAX is ${PATH_MAX})`);
    await this.createEntry(path, { ...newAttributes(owner, Date.now()), type: 'symlink', mode: 0o777, size, target });
  }

  async readlink(path: string): Promise<string> {
    const found = await this.lookup(path);
    if (!found) throw await this.notFound(path);
    if (found.entry.type !== 'symlink' || found.entry.target === undefined) throw fsError('EINVAL', path, 'is not a symlink');
    return found.entry.target;
  }

  /** A new name for an entry that has none yet (EEXIST when it exists, or appears meanwhile): the entry as stored. */
  private async createEntry(path: string, entry: StoredEntry): Promise<StoredEntry> {
    const [parent, found] = await Promise.all([this.parentFound(path), this.lookup(path)]);
    // A setgid directory gives its group to what is made in it, and its setgid bit to directories (as Linux does).
    if (parent.entry.mode & SETGID) entry = { ...entry, gid: parent.entry.gid ?? 0, mode: entry.type === 'dir' ? entry.mode | SETGID : entry.mode };
    if (found) throw fsError('EEXIST', path, `exists already (a ${found.entry.type})`);
    // The parent's times are set while the entry is made, but its count of subdirectories only once one was.
    const subdirs = entry.type === 'dir' ? 1 : 0;
    const [revision] = await Promise.all([this.swap(path, entry, null), subdirs === 0 && this.touchParent(path, entry.mtimeMs, 0, parent)]);
    if (revision === null) throw fsError('EEXIST', path, 'was created by another writer meanwhile');
    if (entry.type === 'file') this.remember(path, { entry, revision });
    if (subdirs > 0) await this.touchParent(path, entry.mtimeMs, subdirs, parent);
    return entry;
  }

  async rmdir(path: string): Promise<void> {
    if (path === '/') throw fsError('EBUSY', path, 'is the root directory');
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (found.entry.type !== 'dir') throw fsError('ENOTDIR', path, 'is not a directory');
      if ((await this.childKeys(keyOf(path))).length > 0) throw fsError('ENOTEMPTY', path, 'is not empty');
      if (await this.remove(path, found.revision)) return this.touchParent(path, Date.now(), -1);
    }
    throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while being removed`);
  }

  async unlink(path: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (found.entry.type === 'dir') throw fsError('EISDIR', path, 'is a directory');
      if (await this.remove(path, found.revision)) {
        await this.letGo(found, path);
        return this.touchParent(path, Date.now());
      }
    }
    throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while being unlinked`);
  }

  async link(existing: string, path: string): Promise<void> {
    await this.parentOf(path);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const source = await this.lookup(existing);
      if (!source) throw await this.notFound(existing);
      if (source.entry.type === 'dir') throw fsError('EPERM', existing, 'is a directory: directories have no hard links');
      if (await this.lookup(path)) throw fsError('EEXIST', path, 'exists already');
      const now = Date.now();
      const inode = source.inode?.id ?? randomBytes(16).toString('hex');
      const counted = source.inode
        ? await this.putInode(inode, { ...source.entry, ctimeMs: now, nlink: source.inode.nlink + 1 }, source.inode.revision)
        : await this.firstLink(existing, source, inode, now);
      if (!counted) continue;
      const ref: LinkRef = { type: source.entry.type, inode };
      if (!(await this.swap(path, ref, null))) {
        await this.dropLink(inode, path);
        throw fsError('EEXIST', path, 'was created by another writer meanwhile');
      }
      return this.touchParent(path, now);
    }
    throw fsError('EAGAIN', existing, `was changed by others ${MAX_ATTEMPTS} times while being linked`);
  }

  /** Moves an inline entry's attributes into a new inode record with two links, and points its path there. */
  private async firstLink(path: string, source: Found, inode: string, now: number): Promise<boolean> {
    if (!(await this.putInode(inode, { ...source.entry, ctimeMs: now, nlink: 2 }, null))) return false;
    if (await this.swap(path, { type: source.entry.type as LinkRef['type'], inode }, source.revision)) return true;
    await this.namespace.delete(inodeKey(inode));
    return false;
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.change(path, 'its mode was being set', (entry, now) => ({ ...entry, mode, ctimeMs: now }));
  }

  async chown(path: string, uid: number | undefined, gid: number | undefined): Promise<void> {
    await this.change(path, 'its owner was being set', (entry, now) => ({ ...entry, uid: uid ?? entry.uid, gid: gid ?? entry.gid, ctimeMs: now }));
  }

  async utimens(path: string, atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void> {
    await this.change(path, 'its times were being set', (entry, now) => ({ ...entry, atimeMs: atimeMs ?? entry.atimeMs, mtimeMs: mtimeMs ?? entry.mtimeMs, ctimeMs: now }));
  }

  async usage(): Promise<FsUsage> {
    const info = await this.jsm.streams.info(`OBJ_${this.buckets.files}`);
    return { totalBytes: this.quota.ownerBytes, usedBytes: info.state.bytes };
  }

  /** Sets an entry's attributes to `changed` of them, compare-and-set against other writers. */
  private async change(path: string, what: string, changed: (entry: StoredEntry, now: number) => StoredEntry): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await this.lookup(path);
      if (!found) throw await this.notFound(path);
      if (await this.putAttributes(path, found, changed(withDefaults(found.entry), Date.now()))) return;
    }
    throw fsError('EAGAIN', path, `was changed by others ${MAX_ATTEMPTS} times while ${what}`);
  }

  /**
   * POSIX rename, atomic for the target: `to` names its old entry until it names the moved
   * one. The source's key is taken away first (compare-and-set), so from then on the entry is
   * this rename's alone: a concurrent write of `from` elsewhere then fails its swap and
   * creates `from` anew instead of discarding the version `to` now names. The target is then
   * swapped against its revision, again after any concurrent write of `to`, so `to` is always
   * one whole version (the moved one, or a write that came after it).
   */
  async rename(from: string, to: string): Promise<void> {
    if (from === '/' || to === '/') throw fsError('EBUSY', from === '/' ? from : to, 'is the root directory');
    if (to.startsWith(`${from}/`)) throw fsError('EINVAL', to, `is inside ${from}: a directory cannot move into itself`);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const source = await this.lookup(from);
      if (!source) throw await this.notFound(from);
      if (from === to) return;
      await this.parentOf(to);
      let target = await this.lookup(to);
      await this.checkReplaceable(source, target, from, to);
      if (source.inode && source.inode.id === target?.inode?.id) return;
      if (!(await this.remove(from, source.revision))) continue;
      const now = Date.now();
      const moved: PathValue = source.inode ? { type: source.entry.type as LinkRef['type'], inode: source.inode.id } : { ...source.entry, ctimeMs: now };
      for (let placing = 0; placing < MAX_ATTEMPTS; placing++) {
        if (await this.swap(to, moved, target?.revision ?? null)) {
          if (source.entry.type === 'dir') await this.moveBelow(from, to);
          if (target) await this.letGo(target, to);
          // A directory moved between directories, or one replaced, changes their link counts.
          const dirs = (found: Found | null) => (found?.entry.type === 'dir' ? 1 : 0);
          const sameParent = parentPath(from) === parentPath(to);
          await this.touchParent(from, now, (sameParent ? 0 : -dirs(source)) - (sameParent ? dirs(target) : 0));
          if (!sameParent) await this.touchParent(to, now, dirs(source) - dirs(target));
          return;
        }
        target = await this.lookup(to);
        await this.checkReplaceable(source, target, from, to).catch(async (err: unknown) => {
          await this.swap(from, moved, null);
          throw err;
        });
      }
      await this.swap(from, moved, null);
      throw fsError('EAGAIN', to, `was changed by others ${MAX_ATTEMPTS} times during the rename`);
    }
    throw fsError('EAGAIN', from, `was changed by others ${MAX_ATTEMPTS} times during the rename`);
  }

  /** Whether `source` may replace `target` (none: a new name), as rename(2) says. */
  private async checkReplaceable(source: Found, target: Found | null, from: string, to: string): Promise<void> {
    if (!target) return;
    if (source.entry.type !== 'dir') {
      if (target.entry.type === 'dir') throw fsError('EISDIR', to, `is a directory; ${from} is not`);
      return;
    }
    if (target.entry.type !== 'dir') throw fsError('ENOTDIR', to, `is not a directory; ${from} is one`);
    if ((await this.childKeys(keyOf(to))).length > 0) throw fsError('ENOTEMPTY', to, 'is a directory that is not empty');
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

  /** What a name removed (unlink, or replaced by a rename) held: its version, or one link of its inode. */
  private async letGo(found: Found, path: string): Promise<void> {
    if (found.inode) await this.dropLink(found.inode.id, path);
    else if (found.entry.object) await this.discard(found.entry.object, path);
  }

  /** One name fewer for an inode: the last one removes the record and its content. */
  private async dropLink(inode: string, path: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const record = await this.inodeAt(inode, path);
      if (!record) return;
      const { nlink, ...entry } = record.value;
      if (nlink <= 1) {
        if (await this.removeKey(inodeKey(inode), record.revision)) {
          if (entry.object) await this.discard(entry.object, path);
          return;
        }
      } else if (await this.putInode(inode, { ...entry, ctimeMs: Date.now(), nlink: nlink - 1 }, record.revision)) {
        return;
      }
    }
    this.logger.warn({ inode, path }, 'unlink: the link count of an inode kept changing; it is left one too high');
  }

  /**
   * A directory's content changed: its mtime and ctime, and its count of subdirectories by
   * `subdirs`. The times are best effort (a concurrent change set them too); the count is
   * retried as any change is.
   */
  private async touchParent(path: string, now: number, subdirs = 0, known?: Found): Promise<void> {
    const parent = parentPath(path);
    try {
      for (let attempt = 0; attempt < (subdirs === 0 ? 3 : MAX_ATTEMPTS); attempt++) {
        // The parent as its caller just read it, the first time: when it changed since, the swap fails and it is read again.
        const found = attempt === 0 && known ? known : await this.lookup(parent);
        if (!found || found.entry.type !== 'dir') return;
        const { entry } = found;
        if (subdirs === 0 && entry.mtimeMs >= now && (entry.ctimeMs ?? 0) >= now) return;
        const counted = subdirs === 0 ? {} : { subdirs: Math.max(0, (entry.subdirs ?? 0) + subdirs) };
        if (await this.swap(parent, { ...entry, mtimeMs: Math.max(now, entry.mtimeMs), ctimeMs: Math.max(now, entry.ctimeMs ?? 0), ...counted }, found.revision)) return;
      }
    } catch (err) {
      this.logger.warn({ err, path: parent }, 'setting the change time of a directory failed');
    }
  }

  private async ensureRoot(): Promise<void> {
    // Every workload of the owner, whatever its user, may make entries here (sticky, as /tmp).
    // Nodes opening the owner's files at once create it at once: a compare-and-set as every other.
    if (await this.swap('/', { ...newAttributes(undefined, Date.now()), type: 'dir', mode: 0o1777 }, null)) return;
    // A root stored before owners were kept (none recorded) was everyone's in effect: it stays so.
    const root = await this.lookup('/');
    if (root && root.entry.uid === undefined) await this.swap('/', { ...newAttributes(undefined, Date.now()), ...root.entry, uid: 0, gid: 0, mode: 0o1777 }, root.revision);
  }

  private async lookup(path: string): Promise<Found | null> {
    const stored = await retryingTimeouts(`looking up ${path}`, () => this.namespace.get(keyOf(path)));
    if (!stored || stored.operation !== 'PUT') return null;
    const value = jsonOf(stored.json.bind(stored));
    if (!Value.Check(PathValue, value)) throw fsError('EIO', path, `has an entry that is not one (key ${stored.key} in ${this.buckets.namespace})`);
    if (!('inode' in value)) return { entry: value, revision: stored.revision, inode: null };
    // Gone meanwhile: the last name was unlinked between the two reads.
    const record = await this.inodeAt(value.inode, path);
    if (!record) return null;
    const { nlink, ...entry } = record.value;
    return { entry, revision: stored.revision, inode: { id: value.inode, revision: record.revision, nlink } };
  }

  private async inodeAt(inode: string, path: string): Promise<{ value: Inode; revision: number } | null> {
    const stored = await retryingTimeouts(`looking up the inode of ${path}`, () => this.namespace.get(inodeKey(inode)));
    if (!stored || stored.operation !== 'PUT') return null;
    const value = jsonOf(stored.json.bind(stored));
    if (!Value.Check(Inode, value)) throw fsError('EIO', path, `has an inode record that is not one (key ${stored.key} in ${this.buckets.namespace})`);
    return { value, revision: stored.revision };
  }

  /** Puts `entry` where `found` keeps its attributes, if unchanged since (none: creates the path): the new revision of that key, null if not. */
  private putAttributes(path: string, found: Found | null, entry: StoredEntry): Promise<number | null> {
    if (found?.inode) return this.putInode(found.inode.id, { ...entry, nlink: found.inode.nlink }, found.inode.revision);
    return this.swap(path, entry, found?.revision ?? null);
  }

  private putInode(inode: string, record: Inode, revision: number | null): Promise<number | null> {
    return this.putKey(inodeKey(inode), JSON.stringify(record), revision, `the inode of ${inode}`);
  }

  /** Puts the path's value if its key is still at `revision` (null: if it has none): its new revision, null if not. */
  private swap(path: string, value: PathValue, revision: number | null): Promise<number | null> {
    return this.putKey(keyOf(path), JSON.stringify(value), revision, path);
  }

  private async putKey(key: string, value: string, revision: number | null, what: string): Promise<number | null> {
    try {
      return await compareAndSetRevision(this.keyAt(key), value, revision);
    } catch (err) {
      throw noSpaceError(err, what, this.quota);
    }
  }

  private remove(path: string, revision: number): Promise<boolean> {
    return this.removeKey(keyOf(path), revision);
  }

  private removeKey(key: string, revision: number): Promise<boolean> {
    return compareAndSet(this.keyAt(key), null, revision);
  }

  private keyAt(key: string) {
    return { js: this.js, kv: this.namespace, bucket: this.buckets.namespace, key };
  }

  /** A written file's old version: failing to discard it leaks storage, not the write. */
  private async discard(object: string, path: string): Promise<void> {
    await this.objects.discard(object).catch((err: unknown) => {
      this.logger.warn({ err, object, path }, 'discarding an old file version failed; it is collected with the next one');
    });
  }

  /** The parent directory of `path`, or the error that says why there is none. */
  private async parentOf(path: string): Promise<StoredEntry> {
    return (await this.parentFound(path)).entry;
  }

  private async parentFound(path: string): Promise<Found> {
    const parent = parentPath(path);
    const found = await this.lookup(parent);
    if (!found) throw await this.notFound(parent);
    if (found.entry.type !== 'dir') throw fsError('ENOTDIR', parent, 'is not a directory');
    return found;
  }

  /** ENOTDIR when an ancestor of the missing `path` is not a directory, ENOENT otherwise. */
  private async notFound(path: string): Promise<Error> {
    for (let ancestor = parentPath(path); ancestor !== '/'; ancestor = parentPath(ancestor)) {
      const found = await this.lookup(ancestor);
      if (found && found.entry.type !== 'dir') return fsError('ENOTDIR', path, `cannot exist: ${ancestor} is not a directory`);
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

/** A version of content kept in memory: a small file's, from its entry (or none: a file made by mknod or creat and not written yet). */
function inlineVersion(content: Buffer): FileVersion {
  return { size: content.length, read: async (position, length) => content.subarray(position, position + length), close: async () => {} };
}

/** The content a file without an object keeps in its entry. */
function inlineContent(entry: StoredEntry, path: string): Buffer {
  const content = Buffer.from(entry.data ?? '', 'base64');
  if (content.length !== entry.size) throw fsError('EIO', path, `has an entry whose content is damaged: ${content.length} bytes, its size says ${entry.size}`);
  return content;
}

/** The attributes of content kept in the entry (none when empty). */
function inlineAttributes(content: Buffer): Pick<StoredEntry, 'size' | 'data'> {
  return content.length > 0 ? { size: content.length, data: content.toString('base64') } : { size: 0 };
}

function checkWritable(found: Found | null, path: string): void {
  if (found?.entry.type === 'dir') throw fsError('EISDIR', path, 'is a directory');
  if (found && found.entry.type !== 'file') throw fsError('EINVAL', path, `is a ${found.entry.type}, not a file`);
}

function newAttributes(owner: FsOwner | undefined, now: number): Omit<StoredEntry, 'type' | 'mode'> {
  return { size: 0, uid: owner?.uid ?? 0, gid: owner?.gid ?? 0, atimeMs: now, mtimeMs: now, ctimeMs: now, ino: randomBytes(6).readUIntBE(0, 6) || 1 };
}

function withDefaults(entry: StoredEntry): StoredEntry {
  return { ...entry, uid: entry.uid ?? 0, gid: entry.gid ?? 0, atimeMs: entry.atimeMs ?? entry.mtimeMs, ctimeMs: entry.ctimeMs ?? entry.mtimeMs };
}

function publicEntry({ entry, inode }: Pick<Found, 'entry' | 'inode'>): FsEntry {
  const { type, size, mtimeMs, mode, uid, gid, atimeMs, ctimeMs, target, ino, subdirs } = withDefaults(entry);
  const nlink = type === 'dir' ? 2 + (subdirs ?? 0) : (inode?.nlink ?? 1);
  return { type, size, mtimeMs, mode, uid, gid, atimeMs, ctimeMs, nlink, ...(target === undefined ? {} : { target }), ...(ino === undefined ? {} : { ino }) };
}

function jsonOf(json: () => unknown): unknown {
  try {
    return json();
  } catch {
    return null;
  }
}

function inodeKey(inode: string): string {
  return `${INODE_PREFIX}.${inode}`;
}

/** `fs` for `/`, then one token per component: `/a/b` -> `fs.YQ.Yg`. */
export function keyOf(path: string): string {
  if (path === '/') return ROOT_KEY;
  const parts = path.split('/');
  if (parts.length < 2 || parts[0] !== '' || parts.slice(1).some((part) => part === '' || part === '.' || part === '..' || part.includes('\0'))) {
    throw fsError('EINVAL', path, 'is not an absolute, normalised path');
  }
  const long = parts.find((part) => Buffer.byteLength(part) > NAME_MAX);
  if (long !== undefined) throw fsError('ENAMETOOLONG', `${path.slice(0, 64)}...`, `has a name of ${Buffer.byteLength(long)} bytes (NAME_MAX is ${NAME_MAX})`);
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

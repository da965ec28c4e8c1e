// The FUSE adapter: fuse-native's callback operations over a ZoneFs. Each answers once:
// 0 and a value, a byte count, or a negative errno. A failure without a POSIX code (a
// bug, GridFs unreachable) is answered EIO and logged, as the workload only sees the errno.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { constants as os } from 'node:os';
import type Fuse from '../../../vendor/fuse-native/index.js';
import type { Logger } from 'pino';
import type { FsEntry, FsOwner, FsUsage } from '../interfaces.ts';
import { errnoOf } from './errno.ts';
import type { ZoneFs } from './zone-fs.ts';

const TYPE_BITS: Record<FsEntry['type'], number> = {
  file: constants.S_IFREG,
  dir: constants.S_IFDIR,
  symlink: constants.S_IFLNK,
  // The kernel of the node that opens a FIFO or a socket makes it: the mount never sees the bytes.
  fifo: constants.S_IFIFO,
  socket: constants.S_IFSOCK,
};
const BLOCK = 4096;
/** chown(2)'s "leave it as it is". */
const UNCHANGED_ID = 0xffffffff;

/** An inode number for what has none of its own (the views, entries stored before inode numbers): 48 bits of the path's hash. */
function inoOfPath(path: string): number {
  return createHash('sha256').update(path).digest().readUIntBE(0, 6) || 1;
}

function statOf(entry: FsEntry, path: string): Fuse.Stat {
  return {
    ino: entry.ino ?? inoOfPath(path),
    mode: TYPE_BITS[entry.type] | entry.mode,
    size: entry.size,
    nlink: entry.nlink ?? (entry.type === 'dir' ? 2 : 1),
    uid: entry.uid ?? 0,
    gid: entry.gid ?? 0,
    blksize: BLOCK,
    blocks: Math.ceil(entry.size / 512),
    atime: entry.atimeMs ?? entry.mtimeMs,
    mtime: entry.mtimeMs,
    ctime: entry.ctimeMs ?? entry.mtimeMs,
  };
}

function statfsOf({ totalBytes, usedBytes }: FsUsage): Fuse.StatFs {
  const blocks = Math.min(Math.floor(totalBytes / BLOCK), 0xffffffff);
  const free = Math.max(0, Math.min(blocks, Math.floor((totalBytes - usedBytes) / BLOCK)));
  // Entries are not counted against a bound of their own: plenty, as statvfs(3) needs a figure.
  return { bsize: BLOCK, frsize: BLOCK, blocks, bfree: free, bavail: free, files: 0xffffffff, ffree: 0xfffffff0, favail: 0xfffffff0, fsid: 0, flag: 0, namemax: 255 };
}

const idOf = (id: number) => (id === UNCHANGED_ID ? undefined : id);

/**
 * `caller` gives the credentials of the request whose operation is being called: it is read
 * at the call, before anything is awaited (the next request may set it). `onFifo` hears of
 * every FIFO getattr finds: the kernel looks a path up (no entry cache here) before it
 * opens it, and the open of a FIFO never reaches this mount.
 */
export function fuseOperations(zfs: ZoneFs, logger: Logger, caller: () => Fuse.Caller, onFifo?: () => void): Fuse.Operations {
  const codeOf = (op: string, path: string, err: unknown): number => {
    const errno = errnoOf(err);
    if (errno !== null) return errno;
    logger.warn({ err, op, path }, `/zone: ${op} ${path} failed`);
    return -os.errno.EIO;
  };
  // Promise.resolve().then(work): a synchronous throw (an unknown handle) is answered too.
  const answer = <T>(op: string, path: string, work: () => Promise<T>, cb: (code: number, value?: T) => void): void => {
    Promise.resolve().then(work).then((value) => cb(0, value), (err: unknown) => cb(codeOf(op, path, err)));
  };
  const count = (op: string, path: string, work: () => Promise<number>, cb: (bytesOrCode: number) => void): void => {
    Promise.resolve().then(work).then(cb, (err: unknown) => cb(codeOf(op, path, err)));
  };
  return {
    getattr: (path, cb) => answer('getattr', path, async () => {
      const entry = await zfs.getattr(path);
      if (entry.type === 'fifo') onFifo?.();
      return statOf(entry, path);
    }, cb),
    access: (path, mode, cb) => answer('access', path, () => zfs.access(path, mode), cb),
    readdir: (path, cb) => answer('readdir', path, async () => ['.', '..', ...(await zfs.readdir(path))], cb),
    open: (path, flags, cb) => answer('open', path, () => zfs.open(path, flags), cb),
    create: (path, mode, cb) => {
      const owner = ownerOf(caller());
      answer('create', path, () => zfs.create(path, mode, owner), cb);
    },
    read: (path, fd, buf, len, pos, cb) => count('read', path, () => zfs.read(fd, buf, len, pos), cb),
    write: (path, fd, buf, len, pos, cb) => count('write', path, () => zfs.write(fd, buf, len, pos), cb),
    flush: (path, fd, cb) => answer('flush', path, () => zfs.flush(fd), cb),
    release: (path, fd, cb) => answer('release', path, () => zfs.release(fd), cb),
    truncate: (path, size, cb) => answer('truncate', path, () => zfs.truncate(path, size), cb),
    ftruncate: (path, fd, size, cb) => answer('ftruncate', path, () => zfs.ftruncate(fd, size), cb),
    utimens: (path, atime, mtime, cb) => answer('utimens', path, () => zfs.utimens(path, atime, mtime), cb),
    chmod: (path, mode, cb) => answer('chmod', path, () => zfs.chmod(path, mode), cb),
    chown: (path, uid, gid, cb) => answer('chown', path, () => zfs.chown(path, idOf(uid), idOf(gid)), cb),
    mkdir: (path, mode, cb) => {
      const owner = ownerOf(caller());
      answer('mkdir', path, () => zfs.mkdir(path, mode, owner), cb);
    },
    mknod: (path, mode, _dev, cb) => {
      const owner = ownerOf(caller());
      answer('mknod', path, () => zfs.mknod(path, mode, owner), cb);
    },
    rmdir: (path, cb) => answer('rmdir', path, () => zfs.rmdir(path), cb),
    unlink: (path, cb) => answer('unlink', path, () => zfs.unlink(path), cb),
    rename: (from, to, cb) => answer('rename', `${from} -> ${to}`, () => zfs.rename(from, to), cb),
    link: (existing, path, cb) => answer('link', path, () => zfs.link(existing, path), cb),
    symlink: (target, path, cb) => {
      const owner = ownerOf(caller());
      answer('symlink', path, () => zfs.symlink(target, path, owner), cb);
    },
    readlink: (path, cb) => answer('readlink', path, () => zfs.readlink(path), cb),
    statfs: (path, cb) => answer('statfs', path, async () => statfsOf(await zfs.statfs()), cb),
  };
}

function ownerOf({ uid, gid }: Fuse.Caller): FsOwner {
  return { uid, gid };
}

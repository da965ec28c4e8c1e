// The FUSE adapter: fuse-native's callback operations over a ZoneFs. Each answers once:
// 0 and a value, a byte count, or a negative errno. A failure without a POSIX code (a
// bug, GridFs unreachable) is answered EIO and logged, as the workload only sees the errno.
import { constants } from 'node:fs';
import { constants as os } from 'node:os';
import type Fuse from 'fuse-native';
import type { Logger } from 'pino';
import { FsError, type FsEntry } from '../interfaces.ts';
import { errnoOf } from './errno.ts';
import type { ZoneFs } from './zone-fs.ts';

const FILE_TYPES = { dir: constants.S_IFDIR, file: constants.S_IFREG, fifo: constants.S_IFIFO } as const;

function statOf(entry: FsEntry): Fuse.Stat {
  return {
    mode: FILE_TYPES[entry.type] | entry.mode,
    size: entry.size,
    nlink: entry.type === 'dir' ? 2 : 1,
    uid: 0,
    gid: 0,
    blksize: 4096,
    blocks: Math.ceil(entry.size / 512),
    atime: entry.mtimeMs,
    mtime: entry.mtimeMs,
    ctime: entry.mtimeMs,
  };
}

export function fuseOperations(zfs: ZoneFs, logger: Logger): Fuse.Operations {
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
    getattr: (path, cb) => answer('getattr', path, async () => statOf(await zfs.getattr(path)), cb),
    access: (path, mode, cb) => answer('access', path, () => zfs.access(path, mode), cb),
    readdir: (path, cb) => answer('readdir', path, async () => ['.', '..', ...(await zfs.readdir(path))], cb),
    open: (path, flags, cb) => answer('open', path, () => zfs.open(path, flags), cb),
    create: (path, mode, cb) => answer('create', path, () => zfs.create(path, mode), cb),
    read: (path, fd, buf, len, pos, cb) => count('read', path, () => zfs.read(fd, buf, len, pos), cb),
    write: (path, fd, buf, len, pos, cb) => count('write', path, () => zfs.write(fd, buf, len, pos), cb),
    flush: (path, fd, cb) => answer('flush', path, () => zfs.flush(fd), cb),
    release: (path, fd, cb) => answer('release', path, () => zfs.release(fd), cb),
    truncate: (path, size, cb) => answer('truncate', path, () => zfs.truncate(path, size), cb),
    ftruncate: (path, fd, size, cb) => answer('ftruncate', path, () => zfs.ftruncate(fd, size), cb),
    utimens: (path, _atime, _mtime, cb) => answer('utimens', path, () => zfs.utimens(path), cb),
    chmod: (path, mode, cb) => answer('chmod', path, () => zfs.chmod(path, mode), cb),
    // FIFOs only: device nodes are refused as in an unprivileged container.
    mknod: (path, mode, _dev, cb) => answer('mknod', path, async () => {
      if ((mode & constants.S_IFMT) !== constants.S_IFIFO) throw new FsError('EPERM', `${path}: only FIFOs can be made here, not device nodes`);
      await zfs.mkfifo(path, mode);
    }, cb),
    mkdir: (path, mode, cb) => answer('mkdir', path, () => zfs.mkdir(path, mode), cb),
    rmdir: (path, cb) => answer('rmdir', path, () => zfs.rmdir(path), cb),
    unlink: (path, cb) => answer('unlink', path, () => zfs.unlink(path), cb),
    rename: (from, to, cb) => answer('rename', `${from} -> ${to}`, () => zfs.rename(from, to), cb),
    link: (_target, path, cb) => answer('link', path, () => zfs.link(path), cb),
    symlink: (_target, path, cb) => answer('symlink', path, () => zfs.link(path), cb),
  };
}

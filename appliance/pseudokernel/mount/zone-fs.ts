// What a /zone mount does, as async operations on paths and open files: `fs/` is the
// owner's GridFs, `proc/` and `self/` are read-only views, the rest does not exist. The
// FUSE adapter (fuse-ops.ts) turns these into callbacks and errnos.
import { constants } from 'node:fs';
import { join } from 'node:path';
import { FsError, type FsEntry, type FsOwner, type FsUsage, type GridFs, type ProcTable, type SelfInfo } from '../interfaces.ts';
import { ContentFile, HandleTable, publishEmpty, VersionFile, WritableFile, type OpenFile } from './open-files.ts';
import { ProcSnapshots } from './proc-view.ts';
import { locate, lookup, ROOT_NAMES, selfView, type Place, type ViewNode } from './tree.ts';

export interface ZoneFsOptions {
  grid: GridFs;
  proc: ProcTable;
  self: SelfInfo;
  /** A private directory for the local copies of files open for writing. */
  scratchDir: string;
  /** Open files the mount holds at most (ENFILE past it). */
  maxOpenFiles: number;
  /** Bytes the local copies of files open for writing hold together at most (ENOSPC past it). */
  maxScratchBytes: number;
}

const PERMISSION_BITS = 0o7777;
const NODE_TYPES = new Map<number, 'file' | 'fifo' | 'socket' | 'device'>([
  [constants.S_IFREG, 'file'], [0, 'file'], [constants.S_IFIFO, 'fifo'], [constants.S_IFSOCK, 'socket'],
  [constants.S_IFCHR, 'device'], [constants.S_IFBLK, 'device'],
]);

/** libfuse's name for a file unlinked while still open (`.fuse_hidden` + 16 hex digits). */
function isHiddenName(gridPath: string): boolean {
  return /\/\.fuse_hidden[0-9a-f]{16}$/.test(gridPath);
}

function entryOf(node: ViewNode): FsEntry {
  return node.type === 'dir'
    ? { type: 'dir', size: 0, mode: 0o555, mtimeMs: node.mtimeMs }
    : { type: 'file', size: node.content.length, mode: 0o444, mtimeMs: node.mtimeMs };
}

function readOnly(path: string): FsError {
  return new FsError('EROFS', `${path} is read-only (only /fs can be changed)`);
}

function unmounting(): FsError {
  return new FsError('ENOTCONN', 'the /zone mount is being unmounted');
}

function notFound(path: string): FsError {
  return new FsError('ENOENT', `${path} does not exist`);
}

export class ZoneFs {
  private readonly grid: GridFs;
  private readonly handles: HandleTable;
  private readonly procs: ProcSnapshots;
  private readonly self: ViewNode;
  private readonly mountedAtMs = Date.now();
  private copies = 0;
  private closed = false;

  constructor(private readonly options: ZoneFsOptions) {
    this.grid = options.grid;
    this.handles = new HandleTable(options.maxOpenFiles);
    this.procs = new ProcSnapshots(options.proc, options.self.node);
    this.self = selfView(options.self, this.mountedAtMs);
  }

  async getattr(path: string): Promise<FsEntry> {
    const place = locate(path);
    if (place.area === 'root') return { type: 'dir', size: 0, mode: 0o555, mtimeMs: this.mountedAtMs };
    if (place.area === 'fs') {
      const writer = this.handles.writers(place.path).at(-1);
      const created = writer?.createdEntry();
      if (created) return created;
      // A file open for writing here: its local size and mtime, the rest as GridFs keeps it.
      const open = writer?.entry();
      const entry = await this.grid.stat(place.path);
      if (!entry) {
        if (open) return open;
        throw notFound(path);
      }
      return open ? { ...entry, size: open.size, mtimeMs: open.mtimeMs } : entry;
    }
    return entryOf(await this.viewNode(place, path));
  }

  async access(path: string, mode: number): Promise<void> {
    await this.getattr(path);
    if (mode & constants.W_OK && locate(path).area !== 'fs') throw readOnly(path);
  }

  async readdir(path: string): Promise<string[]> {
    const place = locate(path);
    if (place.area === 'root') return ROOT_NAMES;
    if (place.area === 'fs') return this.grid.list(place.path);
    const node = await this.viewNode(place, path);
    if (node.type !== 'dir') throw new FsError('ENOTDIR', `${path} is a file`);
    return [...node.entries.keys()];
  }

  async open(path: string, flags: number): Promise<number> {
    const place = locate(path);
    const writing = (flags & (constants.O_WRONLY | constants.O_RDWR)) !== 0;
    this.handles.checkRoom();
    if (place.area === 'fs') {
      if (!writing) {
        if (this.closed) throw unmounting();
        return this.hold(new VersionFile(await this.grid.open(place.path)));
      }
      const entry = await this.getattr(path);
      if (entry.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
      return this.hold(new WritableFile(this.grid, place.path, entry, this.copyPath()));
    }
    const node = await this.viewNode(place, path);
    if (writing) throw readOnly(path);
    if (node.type !== 'file') throw new FsError('EISDIR', `${path} is a directory`);
    return this.hold(new ContentFile(node.content));
  }

  /** A descriptor for `file`; when the table filled up meanwhile, the file is let go and ENFILE thrown. */
  private async hold(file: OpenFile): Promise<number> {
    try {
      return this.handles.add(file);
    } catch (err) {
      await (file instanceof WritableFile ? file.close() : file.release());
      throw err;
    }
  }

  /** Called for a name that does not exist yet: the empty file exists at once, as creat() makes it exist. */
  async create(path: string, mode: number, owner: FsOwner): Promise<number> {
    const gridPath = this.writablePath(path);
    this.handles.checkRoom();
    const copyPath = this.copyPath();
    const entry = await this.grid.mknod(gridPath, 'file', mode & PERMISSION_BITS, owner);
    return this.hold(WritableFile.created(this.grid, gridPath, entry, copyPath));
  }

  read(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return this.handles.get(fd).read(buf, len, pos);
  }

  write(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const file = this.writable(fd);
    this.checkScratch(file, pos + len);
    return file.write(buf, len, pos, Date.now());
  }

  flush(fd: number): Promise<void> {
    return this.handles.get(fd).flush();
  }

  async release(fd: number): Promise<void> {
    const file = this.handles.get(fd);
    this.handles.remove(fd);
    await file.release();
  }

  /** By path: a file open for writing here is truncated in its local copy, any other is published truncated. */
  async truncate(path: string, size: number): Promise<void> {
    const gridPath = this.writablePath(path);
    this.checkFileSize(size);
    const open = this.handles.writers(gridPath).at(-1);
    if (open) {
      this.checkScratch(open, size);
      return open.truncate(size, Date.now());
    }
    const entry = await this.fileEntry(path);
    if (size > this.options.maxScratchBytes) throw this.scratchFull(size);
    if (size === 0) return publishEmpty(this.grid, gridPath, entry.mode);
    await this.republish(gridPath, entry, (file) => file.truncate(size, Date.now()));
  }

  ftruncate(fd: number, size: number): Promise<void> {
    this.checkFileSize(size);
    const file = this.writable(fd);
    this.checkScratch(file, size);
    return file.truncate(size, Date.now());
  }

  /**
   * A workload must not fill the host's disk through local copies it never closes: growing
   * `file` to `size` is refused once the mount's copies would pass maxScratchBytes (a file
   * larger than that could not be published anyway, as it is the owner's quota).
   */
  private checkScratch(file: WritableFile, size: number): void {
    const growth = size - file.entry().size;
    if (growth <= 0) return;
    const held = this.handles.writtenBytes();
    if (held + growth > this.options.maxScratchBytes) throw this.scratchFull(held + growth);
  }

  /** No file can be larger than the owner's quota: truncating past it is EFBIG, as past a file system's largest file. */
  private checkFileSize(size: number): void {
    if (size > this.options.maxScratchBytes) throw new FsError('EFBIG', `a file of ${size} bytes is larger than the owner's quota (limits.ownerBytes = ${this.options.maxScratchBytes})`);
  }

  private scratchFull(bytes: number): FsError {
    return new FsError('ENOSPC', `files open for writing in this /zone mount would hold ${bytes} bytes, more than the owner's quota (limits.ownerBytes = ${this.options.maxScratchBytes})`);
  }

  /** Times in ms since the epoch; undefined leaves one as it is. The kernel checked who may (default_permissions). */
  utimens(path: string, atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void> {
    return this.grid.utimens(this.attributesOf(this.writablePath(path)), atimeMs, mtimeMs);
  }

  /** An open file's writer also publishes with the new mode; a file unlinked while open has only that. */
  async chmod(path: string, mode: number): Promise<void> {
    const gridPath = this.attributesOf(this.writablePath(path));
    const open = this.handles.writers(gridPath).at(-1);
    if (open) await open.chmod(mode & PERMISSION_BITS);
    await this.grid.chmod(gridPath, mode & PERMISSION_BITS).catch((err: unknown) => {
      if (!open || (err as FsError).code !== 'ENOENT') throw err;
    });
  }

  /** POSIX's rules (only root gives a file away, a member's chgrp, setuid/setgid cleared) are the kernel's: default_permissions. */
  chown(path: string, uid: number | undefined, gid: number | undefined): Promise<void> {
    return this.grid.chown(this.attributesOf(this.writablePath(path)), uid, gid);
  }

  mkdir(path: string, mode: number, owner: FsOwner): Promise<void> {
    return this.grid.mkdir(this.changeablePath(path), mode & PERMISSION_BITS, owner);
  }

  /** Regular files, FIFOs and sockets; device nodes are refused as in an unprivileged container. */
  async mknod(path: string, mode: number, owner: FsOwner): Promise<void> {
    const gridPath = this.changeablePath(path);
    const type = NODE_TYPES.get(mode & constants.S_IFMT);
    if (type === 'device') throw new FsError('EPERM', `${path}: device nodes cannot be made in /zone`);
    if (!type) throw new FsError('EINVAL', `${path}: mknod of file type 0o${(mode & constants.S_IFMT).toString(8)}`);
    await this.grid.mknod(gridPath, type, mode & PERMISSION_BITS, owner);
  }

  /** The target is stored as given: the kernel resolves it in the workload's view, never this process. */
  symlink(target: string, path: string, owner: FsOwner): Promise<void> {
    return this.grid.symlink(target, this.changeablePath(path), owner);
  }

  async readlink(path: string): Promise<string> {
    const place = locate(path);
    if (place.area !== 'fs') throw new FsError('EINVAL', `${path} is not a symlink`);
    return this.grid.readlink(place.path);
  }

  link(existing: string, path: string): Promise<void> {
    return this.grid.link(this.attributesOf(this.changeablePath(existing)), this.changeablePath(path));
  }

  /** The owner's quota and what its files use of it. */
  statfs(): Promise<FsUsage> {
    return this.grid.usage();
  }

  rmdir(path: string): Promise<void> {
    return this.grid.rmdir(this.changeablePath(path));
  }

  /** The hidden name of a file unlinked while open exists only here: libfuse unlinks it after the last close. */
  async unlink(path: string): Promise<void> {
    const gridPath = this.attributesOf(this.changeablePath(path));
    if (!isHiddenName(gridPath)) await this.grid.unlink(gridPath);
  }

  /**
   * Files open for writing here follow the rename. libfuse unlinks an open file (or one a
   * rename replaces) by renaming it to a hidden name: for GridFs that is the unlink, and
   * the open file lives on here under the hidden name, never published again.
   */
  async rename(from: string, to: string): Promise<void> {
    const source = this.changeablePath(from);
    const target = this.attributesOf(this.changeablePath(to));
    const moved = this.handles.writers(source, true);
    for (const file of moved) file.attributesChanged();
    if (isHiddenName(target)) {
      await this.grid.unlink(source);
      for (const file of moved) file.orphan();
    } else {
      await this.grid.rename(source, target);
    }
    for (const file of moved) file.path = target + file.path.slice(source.length);
  }

  /** Unmounting: open files are dropped without publishing (their writers are cut off mid-way), and no new one opens. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.handles.drain().map((file) => (file instanceof WritableFile ? file.close() : file.release())));
  }

  private async viewNode(place: Place, path: string): Promise<ViewNode> {
    if (place.area !== 'proc' && place.area !== 'self') throw notFound(path);
    const node = lookup(place.area === 'self' ? this.self : await this.procs.view(), place.rest);
    if (!node) throw notFound(path);
    return node;
  }

  /** The GridFs path of a path below /fs (itself included), or EROFS. */
  private writablePath(path: string): string {
    const place = locate(path);
    if (place.area !== 'fs') throw readOnly(path);
    return place.path;
  }

  /** `gridPath`, whose entry's attributes change: the files open for writing at it ask GridFs for them from now on. */
  private attributesOf(gridPath: string): string {
    for (const file of this.handles.writers(gridPath)) file.attributesChanged();
    return gridPath;
  }

  /** As writablePath, without /fs itself (it cannot be created, removed or renamed). */
  private changeablePath(path: string): string {
    const gridPath = this.writablePath(path);
    if (gridPath === '/') throw readOnly(path);
    return gridPath;
  }

  private async fileEntry(path: string): Promise<FsEntry> {
    const entry = await this.getattr(path);
    if (entry.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    return entry;
  }

  /** Applies `change` to a local copy of a file not open here and publishes it. */
  private async republish(gridPath: string, entry: FsEntry, change: (file: WritableFile) => Promise<void>): Promise<void> {
    const file = new WritableFile(this.grid, gridPath, entry, this.copyPath());
    try {
      await change(file);
      await file.publish();
    } finally {
      await file.close();
    }
  }

  private writable(fd: number): WritableFile {
    const file = this.handles.get(fd);
    if (!(file instanceof WritableFile)) throw new FsError('EBADF', `handle ${fd} is not open for writing`);
    return file;
  }

  private copyPath(): string {
    if (this.closed) throw unmounting();
    return join(this.options.scratchDir, `copy-${++this.copies}`);
  }
}
